"""Part 5 on the CPU: the IDX loader, download checks, the U-Net, training with checkpoints and
resume, sample-quality metrics, the command line."""
import gzip
import hashlib
import json
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

SHARED = Path(os.environ.get("SCOREGEN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "mnist"
have_shared = (SHARED / "train-images-idx3-ubyte.gz").exists()


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


@pytest.mark.skipif(not have_shared, reason="the offline MNIST subset (../shared/data/mnist) is not here")
def test_shared_subset_loads():
    x, y = sgd.mnist("train", root=SHARED, download=False)
    assert x.shape == (10_000, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    counts = torch.bincount(y, minlength=10).tolist()
    assert counts == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_unet_shapes_and_time_conditioning():
    sde = sg.sde.VESDE.tutorial(25.0)
    net = sg.nets.ScoreUNet(sde)
    assert 1_000_000 < sg.nets.count_parameters(net) < 1_200_000  # ~1.1M, as the reference
    x = torch.randn(4, 1, 28, 28)
    out_a = net(x, torch.full((4,), 0.2))
    out_b = net(x, torch.full((4,), 0.8))
    assert out_a.shape == x.shape
    assert not torch.allclose(out_a, out_b)  # t changes the output
    # the output is divided by std_t: with the last layer giving exactly 1, the net returns 1 / std_t
    small = sg.nets.ScoreUNet(sde, channels=(8, 16, 32, 64), embed_dim=16)
    with torch.no_grad():
        small.tconv1.weight.zero_()
        small.tconv1.bias.fill_(1.0)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    assert torch.allclose(small(x, t)[:, 0, 5, 5], 1 / sde.marginal_std(t), rtol=1e-5)
    with pytest.raises(ValueError, match=r"x has shape \(4, 28, 28\); ScoreUNet expects \(n, 1, 28, 28\)"):
        net(x[:, 0], 0.5)
    with pytest.raises(ValueError, match="channels=.* is invalid"):
        sg.nets.ScoreUNet(sde, channels=(8, 16))


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
    return replace(sg.train.QUICK_CPU, batch_size=16, warmup_steps=2, **kw)


def test_training_step_and_checkpoint_round_trip(tmp_path, tiny_data):
    cfg = tiny_config(n_steps=6, checkpoint_every=3)
    net, ema, info = sg.train.train_images(tiny_data, cfg, checkpoint=tmp_path / "c.pt", device="cpu", progress=False)
    assert info["steps"] == 6 and len(info["losses"]) == 6 and all(np.isfinite(info["losses"]))
    loaded, sde, config = sg.train.load_score_model(tmp_path / "c.pt", device="cpu", use_ema=False)
    x, t = torch.rand(2, 1, 28, 28), torch.full((2,), 0.5)
    assert torch.allclose(loaded(x, t), net(x, t), atol=1e-6)
    assert config == cfg
    with_ema, _, _ = sg.train.load_score_model(tmp_path / "c.pt", device="cpu")
    assert not torch.allclose(with_ema(x, t), net(x, t))  # EMA weights differ from the last ones
    with pytest.raises(FileNotFoundError, match="train first"):
        sg.train.load_checkpoint(tmp_path / "missing.pt")


def test_resume_after_interruption_gives_same_loss_curve(tmp_path, tiny_data):
    cfg = tiny_config(n_steps=12, checkpoint_every=4)
    _, _, straight = sg.train.train_images(tiny_data, cfg, checkpoint=tmp_path / "a.pt", device="cpu", progress=False)
    _, _, first = sg.train.train_images(tiny_data, cfg, checkpoint=tmp_path / "b.pt", device="cpu", progress=False,
                                        stop_after=8)
    assert first["steps"] == 8
    _, _, resumed = sg.train.train_images(tiny_data, cfg, checkpoint=tmp_path / "b.pt", device="cpu", progress=False,
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
        sg.train.train_images(tiny_data, cfg, checkpoint=tmp_path / "k.pt", device="cpu", progress=False)
    state = sg.train.load_checkpoint(tmp_path / "k.pt")
    assert state["step"] == 6 and not list(tmp_path.glob("*.tmp*"))


def test_train_images_rejects_bad_data():
    with pytest.raises(ValueError, match=r"data has shape \(4, 28, 28\)"):
        sg.train.train_images(torch.rand(4, 28, 28), tiny_config(n_steps=1), device="cpu", progress=False)


def test_frechet_distance_known_inputs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5000, 8, generator=g, dtype=torch.float64)
    assert abs(sg.metrics.frechet_distance(a, a)) < 1e-6
    b = a + 2.0  # mean shift by 2 in 8 dims: distance 8 * 4 = 32
    assert sg.metrics.frechet_distance(a, b) == pytest.approx(32.0, rel=1e-6)
    c = 3 * torch.randn(5000, 8, generator=g, dtype=torch.float64)  # std 1 vs 3: 8 * (1 - 3)^2 = 32
    assert sg.metrics.frechet_distance(a, c) == pytest.approx(32.0, rel=0.05)


def test_class_histogram_check():
    ref = torch.full((10,), 0.1, dtype=torch.float64)
    assert sg.metrics.histogram_ok(ref + 0.025 * torch.tensor([1, -1] * 5), ref)
    assert not sg.metrics.histogram_ok(ref + 0.035 * torch.tensor([1, -1] * 5), ref)
    h = sg.metrics.class_histogram(torch.tensor([0, 0, 1, 9]))
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
    clf = sg.metrics.mnist_classifier(x, y, epochs=2, device="cpu")
    assert list(tmp_path.glob("mnist_classifier_*.pt"))  # cached
    again = sg.metrics.mnist_classifier(x, y, epochs=2, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(clf.parameters(), again.parameters()))
    res = sg.metrics.evaluate_images(x[:200], x[200:], clf)
    assert res["frechet"] < 5 and res["histogram_ok"]


@pytest.mark.skipif(not have_shared, reason="the offline MNIST subset is not here")
def test_cli_quick_train_sample_evaluate(tmp_path):
    env = dict(os.environ, SCOREGEN_DATA=str(SHARED.parent), SCOREGEN_CACHE=str(tmp_path / "cache"), SCOREGEN_QUICK="1")
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


def test_cli_offline_message(tmp_path):
    env = dict(os.environ, SCOREGEN_DATA=str(tmp_path), SCOREGEN_QUICK="1")
    r = subprocess.run([sys.executable, "-c", "import scoregen_lite.data as d; d.MNIST_MIRRORS[:] = ['file:///nonexistent/'];"
                        "from scoregen_lite.__main__ import main; raise SystemExit(main(['train-mnist', '--out', '" + str(tmp_path / 'o') + "']))"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "MNIST train files not found" in r.stderr and "SCOREGEN_DATA" in r.stderr


def test_benchmark_script_runs_tiny(tmp_path):
    """The GPU benchmark's own code path, at tiny size on the CPU (no timing claims)."""
    if not have_shared:
        pytest.skip("the offline MNIST subset is not here")
    env = dict(os.environ, SCOREGEN_DATA=str(SHARED.parent))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist_gpu.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--skip-reference", "--out", str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "mnist_gpu.json").read_text())
    assert res["ours"]["em"]["n"] == 200 and "Frechet distance" in (tmp_path / "mnist_gpu.txt").read_text()
