"""Part 5 on the CPU: the IDX loader, download checks, the U-Net, training with checkpoints and
resume, sample-quality metrics, the command line."""
import gzip
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import scoregen_lite as sg
from scoregen_lite import data as sgd
from scoregen_lite import mnist as sgm


def write_idx(folder: Path, split="train", n=12, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    (img_name, _), (lab_name, _) = sgd.MNIST_FILES[split]
    blobs = {img_name: struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + images.tobytes(),
             lab_name: struct.pack(">HBBI", 0, 8, 1, n) + labels.tobytes()}
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as fh:
                fh.write(blob)
        else:
            (folder / name).write_bytes(blob)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_loader_reads_idx_written_here(tmp_path, gz):
    images, labels = write_idx(tmp_path, gz=gz)
    x, y = sgd.mnist("train", root=tmp_path, download=False)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(images).float())
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    raw, _ = sgd.mnist("train", root=tmp_path, download=False, as_float=False)
    assert raw.dtype == torch.uint8 and raw.shape == (12, 28, 28)


def test_loader_uses_scoregen_data(tmp_path, monkeypatch):
    write_idx(tmp_path / "mnist", split="test", n=5)
    monkeypatch.setenv("SCOREGEN_DATA", str(tmp_path))
    assert sgd.mnist_dir() == tmp_path / "mnist"
    x, _ = sgd.mnist("test", download=False)
    assert len(x) == 5


def test_bad_idx_rejected(tmp_path):
    bad = tmp_path / "x"
    bad.write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="not an MNIST IDX file"):
        sgd.read_idx(bad)


def test_offline_error_says_what_to_do(tmp_path):
    with pytest.raises(sgd.MNISTNotFound) as info:
        sgd.mnist("train", root=tmp_path / "empty", mirrors=[f"file://{tmp_path}/no-such-mirror/"])
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "empty") in msg and "SCOREGEN_DATA" in msg
    with pytest.raises(sgd.MNISTNotFound, match="download=False"):
        sgd.mnist("test", root=tmp_path, download=False)


def test_download_verifies_checksum(tmp_path):
    mirror = tmp_path / "mirror"
    write_idx(mirror)
    name = "train-images-idx3-ubyte"
    good_md5 = hashlib.md5((mirror / f"{name}.gz").read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    with pytest.raises(sgd.ChecksumError, match="expected the official 0+"):
        sgd._download(dest, name, "0" * 32, [f"file://{mirror}/"])
    assert not list(dest.glob("*"))  # nothing half-written is left behind
    path = sgd._download(dest, name, good_md5, [f"file://{mirror}/"])
    assert path.exists() and sgd.read_idx(path).shape == (12, 28, 28)


def test_shared_subset_loads(shared_mnist):
    x, y = sgd.mnist("train", root=shared_mnist, download=False)
    assert x.shape == (10_000, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    counts = torch.bincount(y, minlength=10).tolist()
    assert counts == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_unet_shapes_and_time_conditioning():
    sde = sg.sde.VESDE.tutorial(25.0)
    net = sg.unet.ScoreUNet(sde)
    assert 1_000_000 < sg.nets.count_parameters(net) < 1_200_000  # ~1.1M, as the reference
    x = torch.randn(4, 1, 28, 28)
    out_a = net(x, torch.full((4,), 0.2))
    out_b = net(x, torch.full((4,), 0.8))
    assert out_a.shape == x.shape
    assert not torch.allclose(out_a, out_b)  # t changes the output
    # the output is divided by std_t: with the last layer giving exactly 1, the net returns 1 / std_t
    small = sg.unet.ScoreUNet(sde, channels=(8, 16, 32, 64), embed_dim=16)
    with torch.no_grad():
        small.tconv1.weight.zero_()
        small.tconv1.bias.fill_(1.0)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    assert torch.allclose(small(x, t)[:, 0, 5, 5], 1 / sde.marginal_std(t), rtol=1e-5)
    with pytest.raises(ValueError, match=r"x has shape \(4, 28, 28\); ScoreUNet expects \(n, 1, 28, 28\)"):
        net(x[:, 0], 0.5)
    with pytest.raises(ValueError, match="channels=.* is invalid"):
        sg.unet.ScoreUNet(sde, channels=(8, 16))


def test_tutorial_sde_matches_published_formula():
    sde = sg.sde.VESDE.tutorial(25.0)
    t = torch.tensor([0.01, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(sde.marginal_std(t), torch.sqrt((25 ** (2 * t) - 1) / (2 * np.log(25))))
    assert torch.allclose(sde.diffusion(t), 25**t)


@pytest.fixture
def tiny_data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(256, 1, 28, 28, generator=g)


def tiny_config(**kw):
    return replace(sg.image_training.QUICK_CPU, batch_size=16, warmup_steps=2, **kw)


def test_training_step_and_checkpoint_round_trip(tmp_path, tiny_data):
    cfg = tiny_config(n_steps=6, checkpoint_every=3)
    net, ema, info = sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "c.pt", device="cpu", progress=False)
    assert info["steps"] == 6 and len(info["losses"]) == 6 and all(np.isfinite(info["losses"]))
    loaded, sde, config = sg.checkpoints.ScoreModel.load(tmp_path / "c.pt", device="cpu", use_ema=False)
    x, t = torch.rand(2, 1, 28, 28), torch.full((2,), 0.5)
    assert torch.allclose(loaded(x, t), net(x, t), atol=1e-6)
    assert config == cfg
    with_ema, _, _ = sg.checkpoints.ScoreModel.load(tmp_path / "c.pt", device="cpu")
    assert not torch.allclose(with_ema(x, t), net(x, t))  # EMA weights differ from the last ones
    with pytest.raises(FileNotFoundError, match="train first"):
        sg.checkpoints.load_checkpoint(tmp_path / "missing.pt")


def test_resume_after_interruption_gives_same_loss_curve(tmp_path, tiny_data):
    cfg = tiny_config(n_steps=12, checkpoint_every=4)
    _, _, straight = sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "a.pt", device="cpu", progress=False)
    _, _, first = sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "b.pt", device="cpu", progress=False,
                                        stop_after=8)
    assert first["steps"] == 8
    _, _, resumed = sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "b.pt", device="cpu", progress=False,
                                          log=lambda m: None)
    assert resumed["losses"] == straight["losses"]


def test_interrupted_training_keeps_last_checkpoint_readable(tmp_path, tiny_data, monkeypatch):
    cfg = tiny_config(n_steps=10, checkpoint_every=2)
    calls = {"n": 0}
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(KeyboardInterrupt):
        sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "k.pt", device="cpu", progress=False)
    state = sg.checkpoints.load_checkpoint(tmp_path / "k.pt")
    assert state["step"] == 6 and not list(tmp_path.glob("*.tmp*"))


def test_train_images_rejects_bad_data():
    with pytest.raises(ValueError, match=r"data has shape \(4, 28, 28\)"):
        sg.image_training.train_images(torch.rand(4, 28, 28), tiny_config(n_steps=1), device="cpu", progress=False)


def test_frechet_distance_known_inputs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5000, 8, generator=g, dtype=torch.float64)
    assert abs(sg.evaluation.frechet_distance(a, a)) < 1e-6
    b = a + 2.0  # mean shift by 2 in 8 dims: distance 8 * 4 = 32
    assert sg.evaluation.frechet_distance(a, b) == pytest.approx(32.0, rel=1e-6)
    c = 3 * torch.randn(5000, 8, generator=g, dtype=torch.float64)  # std 1 vs 3: 8 * (1 - 3)^2 = 32
    assert sg.evaluation.frechet_distance(a, c) == pytest.approx(32.0, rel=0.05)


def _with_moments(z, mean, cov):
    """Exactly this mean and covariance: whiten z empirically, then colour it."""
    z = z - z.mean(0)
    w = torch.linalg.cholesky(torch.cov(z.T))
    white = torch.linalg.solve_triangular(w, z.T, upper=False).T
    return mean + white @ torch.linalg.cholesky(cov).T


def _fd_2x2(mu_a, cov_a, mu_b, cov_b):
    """Closed form in 2D: for a 2x2 SPD M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), and
    M = S_a^1/2 S_b S_a^1/2 has tr M = tr(S_a S_b), det M = det S_a det S_b."""
    tr_sqrt = math.sqrt(torch.trace(cov_a @ cov_b) + 2 * math.sqrt(torch.det(cov_a) * torch.det(cov_b)))
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt)


def test_frechet_distance_non_isotropic_closed_form():
    """Correlated, anisotropic covariances with a closed-form answer (2D, then the same blocks inside 6D).
    A diagonal-only implementation (|mu_a - mu_b|^2 + sum (s_a - s_b)^2 over the variances) gives 3.33
    instead of 6.74 in the 2D case and fails; so does a missing factor 2 on the cross term."""
    g = torch.Generator().manual_seed(0)
    rot = torch.tensor([[math.cos(0.6), -math.sin(0.6)], [math.sin(0.6), math.cos(0.6)]], dtype=torch.float64)
    cov_a = torch.tensor([[4.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
    cov_b = rot @ torch.diag(torch.tensor([0.3, 6.0], dtype=torch.float64)) @ rot.T
    mu_a, mu_b = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.0, 0.3], dtype=torch.float64)
    a = _with_moments(torch.randn(3000, 2, generator=g, dtype=torch.float64), mu_a, cov_a)
    b = _with_moments(torch.randn(4000, 2, generator=g, dtype=torch.float64), mu_b, cov_b)
    want = _fd_2x2(mu_a, cov_a, mu_b, cov_b)
    assert sg.evaluation.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert sg.evaluation.frechet_distance(b, a) == pytest.approx(want, rel=1e-9)   # symmetric
    # three independent 2D blocks in 6D: the distance adds up
    blocks = [(cov_a, cov_b), (cov_b, torch.eye(2, dtype=torch.float64) * 2), (cov_a, cov_a)]
    big_a = torch.block_diag(*[p for p, _ in blocks])
    big_b = torch.block_diag(*[q for _, q in blocks])
    mean_a, mean_b = torch.zeros(6, dtype=torch.float64), torch.linspace(-1, 1, 6, dtype=torch.float64)
    a6 = _with_moments(torch.randn(5000, 6, generator=g, dtype=torch.float64), mean_a, big_a)
    b6 = _with_moments(torch.randn(5000, 6, generator=g, dtype=torch.float64), mean_b, big_b)
    want6 = sum(_fd_2x2(mean_a[2 * i:2 * i + 2], p, mean_b[2 * i:2 * i + 2], q) for i, (p, q) in enumerate(blocks))
    assert sg.evaluation.frechet_distance(a6, b6) == pytest.approx(want6, rel=1e-9)


def test_class_histogram_check():
    ref = torch.full((10,), 0.1, dtype=torch.float64)
    assert sg.evaluation.histogram_ok(ref + 0.025 * torch.tensor([1, -1] * 5), ref)
    assert not sg.evaluation.histogram_ok(ref + 0.035 * torch.tensor([1, -1] * 5), ref)
    h = sg.evaluation.class_histogram(torch.tensor([0, 0, 1, 9]))
    assert h.tolist()[:2] == [0.5, 0.25] and h[9] == 0.25


def test_classifier_and_evaluation_on_tiny_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREGEN_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    # two easy "classes": bright top half vs bright bottom half
    x = torch.zeros(400, 1, 28, 28)
    y = torch.arange(400) % 2
    x[y == 0, :, :14] = 1.0
    x[y == 1, :, 14:] = 1.0
    x = (x + 0.1 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    clf = sg.evaluation.mnist_classifier(x, y, epochs=2, device="cpu")
    assert list(tmp_path.glob("mnist_classifier_*.pt"))  # cached
    again = sg.evaluation.mnist_classifier(x, y, epochs=2, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(clf.parameters(), again.parameters()))
    res = sg.evaluation.evaluate_images(x[:200], x[200:], clf)
    assert res["frechet"] < 5 and res["histogram_ok"]


@pytest.mark.slow
def test_cli_quick_train_sample_evaluate(tmp_path, shared_mnist, classifier_cache):
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent), SCOREGEN_CACHE=str(classifier_cache), SCOREGEN_QUICK="1")
    run = lambda *a: subprocess.run([sys.executable, "-m", "scoregen_lite", *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=600)
    r = run("train-mnist", "--out", str(tmp_path), "--steps", "30", "--limit", "500")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "checkpoint.pt").exists() and json.loads((tmp_path / "train.json").read_text())["steps"] == 30
    r = run("sample", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path), "--n", "8", "--steps", "5")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "samples.npy").shape == (8, 1, 28, 28) and (tmp_path / "samples.png").exists()
    r = run("evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path), "--n", "50",
            "--steps", "5", "--n-likelihood", "2")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"frechet", "histogram", "bits_per_dim", "sampling_seconds", "nfe"} <= set(metrics)
    r = run("sample", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path))
    assert r.returncode == 2 and "train first" in r.stderr


@pytest.mark.slow
def test_cli_fast_samplers_guidance_and_inpainting(tmp_path, shared_mnist, classifier_cache):
    """The notebook-08/09 command lines on the shipped checkpoints: --sampler edm/dpm, --label with --guidance,
    inpaint with RePaint; and the errors a user meets first."""
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent), SCOREGEN_CACHE=str(classifier_cache))
    run = lambda *a: subprocess.run([sys.executable, "-m", "scoregen_lite", *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=600)
    ckpt = sg.artifacts.checkpoints_dir()
    r = run("sample", "--checkpoint", str(ckpt / "mnist_ve.pt"), "--sampler", "edm", "--churn", "40", "--n", "4",
            "--out", str(tmp_path / "edm"))
    assert r.returncode == 0 and "35 evaluations" in r.stdout, r.stderr
    r = run("sample", "--checkpoint", str(ckpt / "mnist_cond.pt"), "--label", "7", "--guidance", "2", "--sampler", "dpm",
            "--steps", "10", "--n", "4", "--out", str(tmp_path / "seven"))
    assert r.returncode == 0 and "10 evaluations" in r.stdout, r.stderr
    assert np.load(tmp_path / "seven" / "samples.npy").shape == (4, 1, 28, 28)
    r = run("inpaint", "--mask", "left", "--n", "4", "--steps", "10", "--resample", "3", "--out", str(tmp_path / "ip"))
    assert r.returncode == 0 and "RePaint x3" in r.stdout and "classified as the original" in r.stdout, r.stderr
    assert np.load(tmp_path / "ip" / "inpainted.npy").shape == (4, 1, 28, 28) and (tmp_path / "ip" / "inpainted.png").exists()
    r = run("sample", "--checkpoint", str(ckpt / "mnist_ve.pt"), "--guidance", "2", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "guidance=2.0 needs a label" in r.stderr
    r = run("sample", "--checkpoint", str(ckpt / "mnist_ve.pt"), "--sampler", "edm", "--steps", "1", "--out", str(tmp_path))
    assert r.returncode == 2 and "n_steps=1" in r.stderr


def test_cli_offline_message(tmp_path):
    env = dict(os.environ, SCOREGEN_DATA=str(tmp_path), SCOREGEN_QUICK="1")
    code = ("import scoregen_lite.images.data as d; d.MNIST_MIRRORS[:] = ['file:///nonexistent/'];"
            "from scoregen_lite.images.cli import main; raise SystemExit(main(['train-mnist', '--out', '"
            + str(tmp_path / 'o') + "']))")
    r = subprocess.run([sys.executable, "-c", code],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "MNIST train files not found" in r.stderr and "SCOREGEN_DATA" in r.stderr


@pytest.mark.slow
def test_benchmark_script_runs_tiny(tmp_path, shared_mnist):
    """The GPU benchmark's own code path, at tiny size on the CPU (no timing claims)."""
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist_gpu.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--skip-reference", "--out", str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "mnist_gpu.json").read_text())
    assert res["ours"]["em"]["n"] == 200 and "Frechet distance" in (tmp_path / "mnist_gpu.txt").read_text()
    assert res["ours"]["edm"]["nfe"] == 35 and res["ours"]["edm_churn"]["churn"] == 40.0 and res["ours"]["dpm"]["nfe"] == 20
    assert "vs_em" in res["ours"]["edm_churn"] and "EDM Heun-18 + capped churn" in (tmp_path / "mnist_gpu.txt").read_text()


def test_split_holds_out_last_digits_without_test_files(tmp_path):
    """Offline (no test files): the last n_heldout training digits are held out and never trained on."""
    images, labels = write_idx(tmp_path, n=40)
    split = sgd.mnist_split(root=tmp_path, n_heldout=10, download=False)
    assert split.heldout == "train[-10:]" and len(split.x_train) == 30 and len(split.x_held) == 10
    assert torch.equal(split.y_held, torch.from_numpy(labels[-10:].astype(np.int64)))
    assert not any(torch.equal(h, t) for h in split.x_held for t in split.x_train)
    with pytest.raises(ValueError, match="cannot hold out n_heldout=30"):
        sgd.mnist_split(root=tmp_path, n_heldout=30, download=False)


def test_split_uses_official_test_files_when_present(tmp_path):
    write_idx(tmp_path, n=40)
    write_idx(tmp_path, split="test", n=7, seed=1)
    split = sgd.mnist_split(root=tmp_path, download=False)
    assert split.heldout == "test" and len(split.x_train) == 40 and len(split.x_held) == 7


def test_evaluate_refuses_digits_the_model_trained_on():
    """A checkpoint trained with the official test files held out (so on all 60,000 training digits)
    must not be scored on the offline subset's last 500 training digits, and an old checkpoint that
    does not say what it held out is refused too."""
    split = sgd.MNISTSplit(None, None, None, None, "train[-500:]")
    sgm.check_heldout({"heldout": "train[-500:]"}, split)
    for meta in ({"heldout": "test"}, {}, None):
        with pytest.raises(sgm.HeldoutError, match="held-out digits"):
            sgm.check_heldout(meta, split)


@pytest.mark.slow
def test_classifier_has_learned_and_frechet_grows_with_corruption(shared_mnist, classifier_cache, monkeypatch):
    """The metrics classifier must have learned (an untrained one scores ~10 % and passed the old tests):
    held-out accuracy > 96 % (97.6 % measured; an untrained one gets 4 %); and the Frechet distance of held-out
    digits to training digits grows under known corruptions: a 2-pixel shift, a blur, noise of std 0.1 and then
    0.3 (measured: 5.9 clean; 44, 120, 12.6, 126)."""
    monkeypatch.setenv("SCOREGEN_CACHE", str(classifier_cache))
    split = sgd.mnist_split(root=shared_mnist, download=False)
    clf = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device="cpu")   # the default 5 epochs
    acc = sg.evaluation.accuracy(clf, split.x_held, split.y_held)
    assert acc > 0.96, acc
    ref = split.x_train[:2000]
    fd = lambda x: sg.evaluation.evaluate_images(x.clamp(0, 1), ref, clf)["frechet"]  # noqa: E731
    g = torch.Generator().manual_seed(0)
    held = split.x_held
    blur = torch.nn.functional.avg_pool2d(held, 3, stride=1, padding=1)
    clean, shifted, blurred = fd(held), fd(torch.roll(held, 2, dims=3)), fd(blur)
    noisy1 = fd(held + 0.1 * torch.randn(held.shape, generator=g))
    noisy3 = fd(held + 0.3 * torch.randn(held.shape, generator=g))
    assert clean < 0.5 * min(shifted, blurred, noisy1), (clean, shifted, blurred, noisy1)
    assert noisy1 < noisy3


def test_conditional_unet_labels_and_null_label():
    sde = sg.sde.VESDE.tutorial(25.0)
    torch.manual_seed(0)
    net = sg.unet.ScoreUNet(sde, channels=(8, 16, 32, 64), embed_dim=16, n_classes=10)
    with torch.no_grad():
        net.label_embed.weight.normal_()  # distinct label vectors (as after training)
    x, t = torch.randn(3, 1, 28, 28), torch.full((3,), 0.3)
    assert net.null_label == 10
    out3, out7 = net(x, t, 3), net(x, t, torch.tensor([7, 7, 7]))
    assert out3.shape == x.shape and not torch.allclose(out3, out7)
    assert torch.equal(net(x, t), net(x, t, 10))                    # None is the null label
    mixed = net(x, t, torch.tensor([3, 7, 10]))
    assert torch.allclose(mixed[0], out3[0]) and torch.allclose(mixed[1], out7[1])
    with pytest.raises(ValueError, match="unconditional"):
        sg.unet.ScoreUNet(sde, channels=(8, 16, 32, 64), embed_dim=16)(x, t, 3)
    with pytest.raises(ValueError, match="n_classes=-1 is invalid"):
        sg.unet.ScoreUNet(sde, n_classes=-1)


def test_conditional_training_drops_labels(tiny_data):
    """Class-conditional training needs labels, and label dropout sends the null label to the network
    (about label_dropout of the time), so it also learns the unconditional score."""
    cfg = tiny_config(n_steps=4, n_classes=10, label_dropout=0.5)
    with pytest.raises(ValueError, match="pass labels"):
        sg.image_training.train_images(tiny_data, cfg, device="cpu", progress=False, log=lambda m: None)
    seen = []
    real = sg.unet.ScoreUNet.forward

    def spy(self, x, t, y=None):
        seen.append(torch.as_tensor(y).clone())
        return real(self, x, t, y)

    labels = torch.arange(len(tiny_data)) % 10
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sg.unet.ScoreUNet, "forward", spy)
        sg.image_training.train_images(tiny_data, cfg, labels=labels, device="cpu", progress=False, log=lambda m: None)
    ys = torch.cat(seen)
    null = (ys == 10).double().mean().item()
    assert 0.3 < null < 0.7 and set(ys.tolist()) - {10} <= set(range(10))


@pytest.mark.parametrize("capability, bf16, want", [((9, 0), True, torch.bfloat16), ((8, 0), True, torch.bfloat16),
                                                     ((7, 5), False, torch.float16), ((6, 0), False, torch.float16)])
def test_precision_by_cuda_capability(monkeypatch, capability, bf16, want):
    """H100/A100 get bfloat16; a T4 (7.5) or a P100 (6.0) gets float16 with a gradient scaler."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    dtype, why = sg.precision(torch.device("cuda"))
    assert dtype == want and f"{capability[0]}.{capability[1]}" in why


def test_precision_on_mps_and_cpu_and_requests():
    assert sg.precision(torch.device("mps"))[0] == torch.float32
    assert sg.precision(torch.device("cpu"))[0] == torch.float32
    assert sg.precision("cpu", "bf16")[0] == torch.bfloat16
    with pytest.raises(ValueError, match="precision='fp16' is not supported on the CPU"):
        sg.precision("cpu", "fp16")
    with pytest.raises(ValueError, match="precision='half' is not one of"):
        sg.precision("cpu", "half")


def test_training_runs_in_each_precision_branch(tiny_data, monkeypatch):
    """The float16 branch (gradient scaler) and the bfloat16 branch run end to end, forced on this CPU by
    patching the precision choice the way an old or a new GPU would answer; each says what it chose."""
    real = sg.precision
    for dtype in (torch.float16, torch.bfloat16):
        monkeypatch.setattr(sg.runtime, "precision", lambda device=None, requested="auto", d=dtype: (d, f"{d} (patched)"))
        logs = []
        net, _, info = sg.image_training.train_images(tiny_data, tiny_config(n_steps=3, amp=True), device="cpu",
                                             progress=False, log=logs.append)
        assert info["precision"] == str(dtype).replace("torch.", "") and any("patched" in m for m in logs)
        assert all(np.isfinite(info["losses"]))
    monkeypatch.setattr(sg.runtime, "precision", real)
    logs = []
    sg.image_training.train_images(tiny_data, tiny_config(n_steps=1), device="cpu", progress=False, log=logs.append)
    assert logs[0].startswith("precision: fp32")


@pytest.mark.slow
def test_cpu_benchmark_script_runs_tiny(tmp_path, shared_mnist, classifier_cache):
    """The CPU benchmark's own code path at toy size (no timing claims): it writes the JSON the README
    renders, with the target read from the committed GPU run."""
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent), SCOREGEN_CACHE=str(classifier_cache))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist_cpu.py"
    out = tmp_path / "mnist_cpu_tiny.json"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--out", str(out)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["target_frechet"] == 20.0 and res["reference_frechet"] == pytest.approx(79.746, abs=1e-3)
    assert res["heldout"] == "train[-500:]" and res["quality"]["reference_digits"].startswith("held-out")
    assert res["quality"]["n_samples"] == 64 and res["train"]["steps"] == 20 and "CPU" in res["device"]
    assert res["config"]["precond"] == "edm" and res["config"]["noise"] == "lognormal"   # the adopted recipe
    table = sg.results.cpu_benchmark_table(tmp_path)
    assert "| edm |" in table and "to held-out digits, 64 samples" in table and "reference recipe" not in table


def test_sampling_says_its_precision(monkeypatch):
    """sample_batched runs the network under the autocast dtype sg.precision picks and says so (forced
    here to the float16 branch an older GPU gets: autocast on this CPU with bfloat16 standing in)."""
    net = lambda x, t: -x  # noqa: E731
    said, timings = [], {}
    sg.samplers.sample_batched(net, sg.sde.VESDE.tutorial(25.0), 2, n_steps=2, device="cpu", log=said.append,
                               timings=timings)
    assert said == ["sampling precision: fp32 (CPU)"] and timings["precision"] == "fp32 (CPU)"
    seen = []
    spy = lambda x, t: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))) or -x  # noqa: E731
    sg.samplers.sample_batched(spy, sg.sde.VESDE.tutorial(25.0), 2, n_steps=2, device="cpu")
    assert {e for e, _ in seen} == {False}
    seen.clear()
    monkeypatch.setattr(sg.runtime, "precision", lambda device=None, requested="auto": (torch.bfloat16, "bf16 (patched)"))
    sg.samplers.sample_batched(spy, sg.sde.VESDE.tutorial(25.0), 2, n_steps=2, device="cpu", log=said.append)
    assert said[-1] == "sampling precision: bf16 (patched)" and set(seen) == {(True, torch.bfloat16)}


def test_init_from_starts_at_the_given_ema_weights(tmp_path, tiny_data):
    """--init-from: the new run starts from the first run's EMA weights (not its last ones, not fresh
    ones), with step 0 and a fresh optimizer; a different network is refused by name."""
    cfg = tiny_config(n_steps=6, checkpoint_every=3)
    first, ema, _ = sg.image_training.train_images(tiny_data, cfg, checkpoint=tmp_path / "a.pt", device="cpu", progress=False)
    ema_net, _, _ = sg.checkpoints.ScoreModel.load(tmp_path / "a.pt", device="cpu")
    x, t = torch.rand(2, 1, 28, 28), torch.full((2,), 0.5)
    fine = replace(cfg, n_steps=0)
    net0, _, info = sg.image_training.train_images(tiny_data, fine, checkpoint=tmp_path / "b.pt", device="cpu",
                                          progress=False, init=tmp_path / "a.pt", log=lambda m: None)
    assert info["steps"] == 0
    assert torch.allclose(net0(x, t), ema_net(x, t), atol=1e-6)          # the EMA weights ...
    assert not torch.allclose(net0(x, t), first.eval()(x, t), atol=1e-4)  # ... not the last ones
    _, _, more = sg.image_training.train_images(tiny_data, replace(cfg, n_steps=3), checkpoint=tmp_path / "c.pt",
                                       device="cpu", progress=False, init=tmp_path / "a.pt", log=lambda m: None)
    assert more["steps"] == 3 and more["resumed_from_step"] == 0
    with pytest.raises(ValueError, match="different network"):
        sg.image_training.train_images(tiny_data, replace(cfg, embed_dim=cfg.embed_dim * 2), device="cpu", progress=False,
                              init=tmp_path / "a.pt", log=lambda m: None)


@pytest.mark.slow
def test_guidance_benchmark_script_runs_tiny(tmp_path, shared_mnist, classifier_cache):
    """benchmarks/guidance_cpu.py's own code path on a tiny class-conditional run (no claims): one row per
    scale, the target marked at notebook 09's scale, rendered by sg.results.guidance_table; --manifest refuses
    anything but the shipped model."""
    cfg = sgm.config_for(True, conditional=True, n_steps=4)
    sgm.train_model(tmp_path / "cond", cfg, root=shared_mnist, device="cpu", progress=False, log=lambda m: None,
                    limit=200)
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent), SCOREGEN_CACHE=str(classifier_cache))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "guidance_cpu.py"
    out = tmp_path / "guidance_cpu_tiny.json"
    args = [sys.executable, str(script), "--tiny", "--checkpoint", str(tmp_path / "cond" / "checkpoint.pt"),
            "--scales", "1", str(sgm.GUIDANCE_SCALE), "--out", str(out)]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [row["scale"] for row in res["rows"]] == [1.0, sgm.GUIDANCE_SCALE] and res["n"] == 20
    assert all(row["n"] == 20 and 0 <= row["accuracy"] <= 1 for row in res["rows"])
    assert res["chosen_scale"] == sgm.GUIDANCE_SCALE and res["meets_target"] in (True, False)
    table = sg.results.guidance_table(tmp_path)
    assert f"| {sgm.GUIDANCE_SCALE:g} (notebook 09) |" in table and "not the checkpoint shipped now" in table
    r = subprocess.run(args + ["--manifest"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "--manifest measures the shipped" in r.stderr
