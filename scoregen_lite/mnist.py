"""The MNIST pipeline of notebook 07, shared by the notebook, the command line and the benchmark:
train a ``ScoreUNet`` with eq. (8), sample it with the reverse SDE, and measure it.

Data: ``sg.data.mnist`` (official IDX files; 60,000 training digits online, the 10,000-digit
offline subset in CI). Images are x = pixel / 255 in [0, 1].
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from . import data as data_mod
from . import metrics, plot, samplers, train
from .train import FAST, QUICK_CPU, ImageConfig

__all__ = ["train_model", "sample_model", "evaluate_model", "bits_per_dim", "config_for"]


def config_for(quick: bool, **overrides) -> ImageConfig:
    """``QUICK_CPU`` in quick mode, else ``FAST``, with keyword overrides (None values are ignored)."""
    from dataclasses import replace

    base = QUICK_CPU if quick else FAST
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def train_model(out_dir, config: ImageConfig, *, root=None, device=None, resume: bool = True, progress: bool = True,
                log=print, limit: int | None = None):
    """Train on MNIST train digits and write ``out_dir/checkpoint.pt`` and ``out_dir/train.json``.

    ``limit`` uses only the first ``limit`` digits (quick mode). Returns (net, ema, info)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, _ = data_mod.mnist("train", root=root)
    if limit:
        x = x[:limit]
    net, ema, info = train.train_images(x, config, checkpoint=out / "checkpoint.pt", resume=resume, device=device,
                                        progress=progress, log=log)
    summary = {k: v for k, v in info.items() if k not in ("losses", "config")}
    summary.update(final_loss=sum(info["losses"][-100:]) / max(1, len(info["losses"][-100:])), n_train=len(x),
                   parameters=sum(p.numel() for p in net.parameters()))
    (out / "train.json").write_text(json.dumps(summary, indent=2))
    return net, ema, info


def sample_model(checkpoint, n: int, *, sampler: str = "em", n_steps: int = 500, batch_size: int | None = None,
                 seed: int = 0, device=None, use_ema: bool = True, out_dir=None, progress: bool = False,
                 compile: bool = False, timings: dict | None = None):
    """Load a checkpoint and draw ``n`` samples; with ``out_dir`` write samples.npy and samples.png.
    ``compile`` compiles the network first on CUDA (time reported in ``timings``).
    Returns (samples in [0, 1] (clamped), nfe, seconds)."""
    from . import device as default_device

    device = torch.device(device) if device is not None else default_device()
    net, sde, _ = train.load_score_model(checkpoint, device=device, use_ema=use_ema)
    return _sample(net, sde, n, sampler=sampler, n_steps=n_steps, batch_size=batch_size, seed=seed, device=device,
                   out_dir=out_dir, progress=progress, compile=compile, timings=timings)


def _sample(net, sde, n, *, sampler, n_steps, batch_size, seed, device, out_dir=None, progress=False,
            compile=False, timings=None):
    """Sample an already loaded network (shared by ``sample_model`` and ``evaluate_model``)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    x, nfe, seconds = samplers.sample_batched(net, sde, n, sampler=sampler, n_steps=n_steps, batch_size=batch_size,
                                              generator=gen, device=device, progress=progress, compile=compile,
                                              timings=timings)
    x = x.clamp(0, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        import numpy as np

        np.save(out / "samples.npy", x.numpy())
        plot.save_image_grid(x[:100], out / "samples.png")
    return x, nfe, seconds


def bits_per_dim(net, sde, images: torch.Tensor, *, generator=None, rtol: float = 1e-5, atol: float = 1e-5,
                 device=None) -> float:
    """Average bits/dim of 8-bit images under the model, through the probability-flow ODE.

    Uniform dequantisation: pixels k in {0..255} become x = (k + u) / 256 with u ~ U(0, 1), a density
    on [0, 1)^D; the discrete likelihood is at least p(x) / 256^D, so bits/dim = -log2 p(x) / D + 8
    (the documented offset, log2 256). The divergence uses one Hutchinson probe.
    """
    from . import device as default_device

    device = torch.device(device) if device is not None else default_device()
    pixels = (images.clamp(0, 1) * 255).round()
    u = torch.rand(pixels.shape, generator=generator)
    x = ((pixels + u) / 256).to(device)
    ll = samplers.log_likelihood(sde, net, x, rtol=rtol, atol=atol, divergence="hutchinson",
                                 generator=torch.Generator(device=device).manual_seed(0))
    return samplers.bits_per_dim(ll, x[0].numel(), offset=math.log2(256)).mean().item()


def evaluate_model(checkpoint, *, n: int = 10_000, sampler: str = "em", n_steps: int = 500, root=None, device=None,
                   batch_size: int | None = None, n_likelihood: int = 64, out_dir=None, seed: int = 0,
                   classifier_epochs: int = 3) -> dict:
    """Sample ``n`` digits and measure them: Frechet distance on the package's classifier features,
    class histogram vs the real digits, sampling time, and bits/dim of ``n_likelihood`` test digits
    (offline, where the subset has no test files, the last ``n_likelihood`` training digits). Writes ``metrics.json`` (and the samples) to ``out_dir``."""
    from . import device as default_device

    device = torch.device(device) if device is not None else default_device()
    x_train, y_train = data_mod.mnist("train", root=root)
    try:
        x_test, _ = data_mod.mnist("test", root=root, download=False)
    except data_mod.MNISTNotFound:
        x_test = x_train[-n_likelihood:]  # the offline subset has no test files
    classifier = metrics.mnist_classifier(x_train, y_train, epochs=classifier_epochs, device=device)
    net, sde, _ = train.load_score_model(checkpoint, device=device)
    samples, nfe, seconds = _sample(net, sde, n, sampler=sampler, n_steps=n_steps, batch_size=batch_size,
                                    seed=seed, device=device, out_dir=out_dir)
    result = metrics.evaluate_images(samples, x_train[: max(n, 1000)], classifier)
    start = time.perf_counter()
    result.update(sampler=sampler, nfe=nfe, sampling_seconds=seconds,
                  bits_per_dim=bits_per_dim(net, sde, x_test[:n_likelihood], device=device,
                                            generator=torch.Generator().manual_seed(seed)),
                  likelihood_seconds=time.perf_counter() - start, n_likelihood=min(n_likelihood, len(x_test)))
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
