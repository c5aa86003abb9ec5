"""Guidance on MNIST (notebook 09): the noisy classifier p_t(y | x) for classifier guidance (its training,
cache and shipped copy). Classifier-free guidance for a class-conditional network is ``sg.guidance.classifier_free_net``.
The guided score functions themselves are ``sg.guidance`` (checked on 2D mixtures first).
Introduced in notebooks/09_controllable_generation.ipynb."""
from __future__ import annotations

import time

import torch

from .. import artifacts, validate
from ..core.recipes import coefficients
from ..core.train import train_loop

__all__ = ["NoisyClassifier", "noisy_classifier", "SHIPPED_CLASSIFIER", "ship_noisy_classifier", "noisy_accuracy"]


class NoisyClassifier(torch.nn.Module):
    """p_t(y | x(t)) for 1 x 28 x 28 digits diffused by ``sde``: a small CNN whose input is scaled to unit
    variance, x / sqrt(0.25 + sigma(t)^2) (EDM's c_in with sigma_data = 0.5, on the scaled state x / alpha_t),
    with Fourier features of log sigma(t) added after each convolution. ``forward(x, t)`` gives logits
    (n, 10); ``grad_fn(y)`` the ``classifier_grad_fn(x, t)`` of ``classifier_guided`` (autograd of
    log_softmax at y). Introduced in notebooks/09_controllable_generation.ipynb."""

    def __init__(self, sde, channels=(32, 64), embed_dim: int = 32):
        super().__init__()
        from ..core.nets import GaussianFourierProjection

        self.sde = sde
        c1, c2 = channels
        self.embed = torch.nn.Sequential(GaussianFourierProjection(embed_dim, scale=4.0), torch.nn.Linear(embed_dim, 64),
                                         torch.nn.SiLU())
        self.conv1, self.conv2 = torch.nn.Conv2d(1, c1, 3, padding=1), torch.nn.Conv2d(c1, c2, 3, padding=1)
        self.t1, self.t2 = torch.nn.Linear(64, c1), torch.nn.Linear(64, c2)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c2 * 7 * 7, 128), torch.nn.SiLU(),
                                        torch.nn.Linear(128, 10))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, std = self.sde.marginal_coeffs(t, check=False)
        sigma = (std / alpha).reshape(-1).clamp(min=1e-4)
        _, _, c_in, c_noise = coefficients("edm", sigma, alpha, t, sigma_data=0.5)
        h = x * (c_in / alpha).reshape(-1, 1, 1, 1)
        e = self.embed(c_noise)
        h = torch.nn.functional.max_pool2d(torch.nn.functional.silu(self.conv1(h) + self.t1(e)[:, :, None, None]), 2)
        h = torch.nn.functional.max_pool2d(torch.nn.functional.silu(self.conv2(h) + self.t2(e)[:, :, None, None]), 2)
        return self.head(h)

    def grad_fn(self, y):
        """x, t -> grad_x log p_t(y | x), for ``classifier_guided``; y an int or a tensor (n,) of labels."""
        def grad(x, t):
            with torch.enable_grad():
                xg = x.detach().float().requires_grad_(True)
                labels = torch.as_tensor(y, device=x.device).expand(len(x)) if not isinstance(y, torch.Tensor) else y
                logp = torch.log_softmax(self(xg, t.float()), dim=1)
                (g,) = torch.autograd.grad(logp.gather(1, labels.reshape(-1, 1).long()).sum(), xg)
            return g.to(x.dtype)
        return grad


def noisy_classifier(images: torch.Tensor, labels: torch.Tensor, sde, *, n_steps: int = 3000, batch_size: int = 128,
                     lr: float = 2e-3, eps: float = 1e-3, cache: bool = True, shipped: bool = True, device=None,
                     seed: int = 0, progress: bool = True, log=print) -> NoisyClassifier:
    """A ``NoisyClassifier`` for digits diffused by ``sde``, trained on digits diffused to a random time
    t ~ U(eps, 1) (cross-entropy on x(t) = alpha_t x + std_t z; Adam, cosine decay), in eval mode on ``device``.

    Nothing trains when it need not: with ``cache`` a copy in ``sg.artifacts.cache_dir()`` (keyed by a hash of the
    data, the SDE and the settings) is loaded; with ``shipped`` so is the course's ``checkpoints/noisy_classifier.pt``
    when it was trained on these very digits with these settings (its stored key matches; sha256 checked against
    its manifest). Otherwise it trains, saying first through ``log`` how many steps and about how long (timed on
    its first steps), with a progress bar (``progress``), in ``sg.train.train_loop`` (a NaN loss stops it with
    ``TrainingDiverged``). Introduced in notebooks/09_controllable_generation.ipynb."""
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    images = validate.batch("images", images)
    n_steps = validate.count("n_steps", n_steps)
    path = _classifier_path(images, labels, sde, n_steps, batch_size, lr, eps, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = NoisyClassifier(sde)
    if cache and path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.to(device).eval()
    state = _shipped_classifier(path.name) if shipped else None
    if state is not None:
        net.load_state_dict({k: v.float() for k, v in state.items()})
        log("using the shipped checkpoint noisy_classifier.pt (sha256 verified)")
        return net.to(device).eval()
    gen = torch.Generator().manual_seed(seed)       # batches, times and noise: a local generator
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all, y_all = images.to(device), labels.to(device)
    probe = min(10, n_steps)

    def batches():                                  # digits diffused to t ~ U(eps, 1): (x(t), t, y)
        idx = torch.randint(len(x_all), (batch_size,), generator=gen).to(device)
        t = (eps + (1 - eps) * torch.rand(batch_size, generator=gen)).to(device)
        xt = sde.perturb(x_all[idx], t, torch.randn(x_all[idx].shape, generator=gen).to(device), check=False)
        return xt, t, y_all[idx]

    def say_how_long(done, loss):                   # timed on the first steps
        if done == probe and n_steps > probe:
            per_step = (time.perf_counter() - start) / probe
            log(f"training a noisy classifier: {n_steps:,} steps, about {per_step * n_steps:.0f} s here"
                + (" (cached afterwards)" if cache else ""))

    start = time.perf_counter()
    train_loop(net, lambda m, b: torch.nn.functional.cross_entropy(m(b[0], b[1]), b[2]), batches, n_steps, opt,
               schedule=torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps), sync_every=50,
               on_step=say_how_long, progress=progress, desc="noisy classifier")
    if cache:
        artifacts.save_to_cache(net, path)
    return net


def _classifier_path(images, labels, sde, n_steps, batch_size=128, lr=2e-3, eps=1e-3, seed=0):

    return artifacts.cache_path("noisy_classifier", images, labels, f"{sde!r}-{n_steps}-{batch_size}-{lr}-{eps}-{seed}-v1")


#: Where the course's noisy classifier ships (notebook 09), beside its manifest ``noisy_classifier.json``.
SHIPPED_CLASSIFIER = "noisy_classifier"


def _shipped_classifier(key: str):
    """The shipped classifier's weights if its stored key is ``key`` (same data and settings), else None."""
    import json


    path = artifacts.checkpoints_dir() / f"{SHIPPED_CLASSIFIER}.pt"
    manifest = artifacts.checkpoints_dir() / f"{SHIPPED_CLASSIFIER}.json"
    if not (path.exists() and manifest.exists()):
        return None
    artifacts.verify_sha256(path, json.loads(manifest.read_text())["sha256"],   # before anything loads the file
                            fix="Restore it with git checkout, or delete both files to train the classifier here.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("key") != key:            # other digits or settings: train instead
        return None
    return state["model"]


def ship_noisy_classifier(*, n_steps: int = 2000, root=None, device=None, command: str | None = None) -> dict:
    """Train notebook 09's noisy classifier (the settings it asks for: ``n_steps``, the SDE of the shipped
    ``mnist_ve``) on the training digits of ``sg.data.mnist_split``, and ship it: float16 weights and the key of
    its data and settings in ``checkpoints/noisy_classifier.pt``, and a manifest (command, commit, device, steps,
    time, sha256, held-out accuracy at t = 0.01, 0.3, 0.6) in ``checkpoints/noisy_classifier.json``.
    ``noisy_classifier`` then loads it instead of training. The command line's ``ship-classifier``."""
    import json

    from ..images import data as data_mod
    from ..runtime import device as default_device
    from ..runtime import device_name
    from .checkpoints import ImageConfig, make_sde, save_checkpoint

    device = torch.device(device) if device is not None else default_device()
    split = data_mod.mnist_split(root=root)
    sde = make_sde(ImageConfig())
    start = time.perf_counter()
    net = noisy_classifier(split.x_train, split.y_train, sde, n_steps=n_steps, cache=False, shipped=False,
                           device=device)
    seconds = time.perf_counter() - start
    key = _classifier_path(split.x_train, split.y_train, sde, n_steps).name
    target = artifacts.checkpoints_dir() / f"{SHIPPED_CLASSIFIER}.pt"
    save_checkpoint(target, model={k: v.half() for k, v in net.state_dict().items()}, key=key)
    acc = {str(t): noisy_accuracy(net, split.x_held, split.y_held, t, generator=torch.Generator().manual_seed(0))
           for t in (0.01, 0.3, 0.6)}
    info = {"name": SHIPPED_CLASSIFIER, "what": "notebook 09's noisy classifier p_t(y | x(t)) for classifier guidance",
            "command": command, "commit": artifacts.commit_id(), "device": device_name(device), "steps": n_steps,
            "batch_size": 128, "seconds": seconds, "heldout": split.heldout, "n_train": len(split.x_train),
            "stored": "weights, float16", "size_mb": round(target.stat().st_size / 2**20, 3), "sha256": artifacts.sha256(target),
            "metrics": {"heldout_accuracy_at_t": acc}}
    (artifacts.checkpoints_dir() / f"{SHIPPED_CLASSIFIER}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


@torch.no_grad()
def noisy_accuracy(classifier: NoisyClassifier, images: torch.Tensor, labels: torch.Tensor, t: float,
                   generator: torch.Generator | None = None) -> float:
    """The noisy classifier's accuracy on ``images`` diffused to time ``t`` (held-out digits, please)."""
    dev = next(classifier.parameters()).device
    tv = torch.full((len(images),), float(t), device=dev)
    xt = classifier.sde.perturb(images.to(dev), tv, torch.randn(images.shape, generator=generator).to(dev), check=False)
    return (classifier(xt, tv).argmax(1).cpu() == labels.cpu()).float().mean().item()


