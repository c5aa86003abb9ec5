"""Training the MNIST score networks (notebooks 07-10): the presets ``REFERENCE``, ``FAST``, ``CPU`` and
``QUICK_CPU`` of ``ImageConfig`` (every setting of a run, ``sg.checkpoints``) and ``train_images`` (mixed precision,
EMA, checkpoints, resuming). A trained model is loaded back with ``sg.checkpoints.ScoreModel.load``.
Introduced in notebooks/07_mnist_score_sde.ipynb."""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .. import validate
from ..core.train import EMA, train_loop
from .checkpoints import ImageConfig, load_checkpoint, load_score_model, make_sde, make_unet, save_checkpoint

__all__ = ["ImageConfig", "REFERENCE", "FAST", "CPU", "QUICK_CPU", "make_sde", "make_unet", "train_images"]


#: Song's tutorial recipe: batch 32, Adam 1e-4, no EMA, eager float32 (50 epochs = 50 * n / 32 steps).
REFERENCE = ImageConfig(batch_size=32, lr=1e-4, warmup_steps=0, ema_decay=None, grad_clip=None, compile=False,
                        amp=False)


#: Ours: batch 512 with the sqrt lr rule, warm-up, clipping, EMA, torch.compile and bf16 on CUDA.
FAST = ImageConfig()


#: The CPU recipe (``train-mnist --cpu``), chosen by measurement: the U-Net at half width (280k parameters,
#: 3x faster per image than the 1.1M one) at batch 128 with lr 2e-3, warm-up, clipping and EMA, for a
#: 10-minute budget, so that a 2-core laptop trains recognisable digits in a class period and samples
#: them 3x faster (benchmarks/mnist_cpu.py). At equal CPU time (15 minutes, one thread) it reached FD 35.9
#: on 2,000 samples where the 1.1M network reached a third of its steps. It trains with EDM's recipe
#: (preconditioning, log-normal noise levels, EDM's weighting; ``sg.recipes``), which beat eq. (8) as written
#: at equal CPU time in benchmarks/recipes_cpu.py (notebook 10).
CPU = ImageConfig(channels=(16, 32, 64, 128), embed_dim=128, batch_size=128, lr=2e-3, warmup_steps=200,
                  n_steps=100_000, time_budget_s=600.0, ema_decay=0.999, compile=False, amp=False,
                  checkpoint_every=500, precond="edm", noise="lognormal", weighting="edm")


#: A tiny CPU version for quick mode and tests: trains in seconds, end to end.
QUICK_CPU = ImageConfig(channels=(8, 16, 32, 64), embed_dim=32, batch_size=64, lr=2e-3, n_steps=300, warmup_steps=20,
                        compile=False, amp=False, checkpoint_every=100)


def _maybe_compile(net, config, device, log):
    if not (config.compile and device.type == "cuda" and hasattr(torch, "compile")):
        return net, False
    try:
        return torch.compile(net), True
    except Exception as err:  # pragma: no cover - depends on the platform
        log(f"torch.compile unavailable ({err}); training eagerly")
        return net, False


def train_images(data: torch.Tensor, config: ImageConfig = FAST, *, labels: torch.Tensor | None = None,
                 checkpoint: str | Path | None = None, resume: bool = True, device=None, progress: bool = True,
                 log=print, stop_after: int | None = None, meta: dict | None = None, init=None):
    """Train a ``ScoreUNet`` with eq. (8) on images (n, 1, 28, 28) in [0, 1], with the config's recipe
    (``sg.recipes.recipe_loss``: preconditioning, noise levels, weighting; notebook 10).

    Fast on a GPU: the whole dataset sits on the device (batches are indexed there), bfloat16
    autocast and ``torch.compile`` when available (a clean eager fallback otherwise), fused Adam,
    EMA updated on the uncompiled module. Every ``checkpoint_every`` steps, and at the end, the
    model, EMA, optimizer, step, loss history and RNG state are written atomically to
    ``checkpoint``; with ``resume`` an existing checkpoint is continued, reproducing the same loss
    curve as an uninterrupted run. ``stop_after`` ends the call after that many steps of this call
    (used to test resuming). The steps are ``sg.train.train_loop``'s (progress bar: loss and images/s; a NaN or
    infinite loss stops the run with ``TrainingDiverged`` naming its step). ``labels`` (n,) are required for a
    class-conditional config (``n_classes > 0``). ``meta`` (e.g. which digits were held out) is stored
    in the checkpoint. The precision (``sg.precision``) is printed through ``log`` before training.

    Returns (net, ema, info) with info = {losses, steps, seconds (wall time of this call, compilation
    included), compile_seconds, images_per_s, compiled, device, lr, precision, resumed_from_step}.
    Introduced in notebooks/07_mnist_score_sde.ipynb; used by the CLI and benchmarks/mnist_gpu.py.
    """
    from ..core.recipes import ImportanceSampler, check_recipe, recipe_loss
    from ..runtime import device as default_device
    from ..runtime import precision as default_precision

    data = validate.batch("data", data)
    check_recipe(config.precond, config.noise, config.weighting)
    if data.dim() != 4 or data.shape[1:] != (1, 28, 28):
        raise ValueError(f"data has shape {tuple(data.shape)}; expected (n, 1, 28, 28) images in [0, 1].")
    if config.n_classes:
        if labels is None or labels.shape != (len(data),):
            raise ValueError(f"config.n_classes={config.n_classes} trains a class-conditional network: pass "
                             f"labels of shape ({len(data)},), got {None if labels is None else tuple(labels.shape)}.")
        if not 0.0 <= config.label_dropout < 1.0:
            raise ValueError(f"label_dropout={config.label_dropout!r} is invalid: expected 0 <= p < 1 (e.g. 0.1).")
    device = torch.device(device) if device is not None else default_device()
    if config.amp or config.precision != "auto":
        amp_dtype, why = default_precision(device, config.precision)
    else:
        amp_dtype, why = torch.float32, "fp32 (amp=False in the config)"
    log(f"precision: {why}")
    sde = make_sde(config)
    importance = ImportanceSampler(sde, config.eps) if config.noise == "importance" else None
    net = make_unet(config, sde).to(device)
    lr = config.learning_rate()
    fused = device.type == "cuda"
    opt = torch.optim.Adam(net.parameters(), lr=lr, fused=fused) if fused else torch.optim.Adam(net.parameters(), lr=lr)
    ema = EMA(net, config.ema_decay) if config.ema_decay is not None else None
    gen = torch.Generator(device=device).manual_seed(config.seed)
    step, losses = 0, []
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        gen.set_state(state["rng"].cpu() if device.type == "cpu" else state["rng"].to("cpu"))
        step, losses = state["step"], list(state["losses"])
        log(f"resumed from {checkpoint} at step {step}")
    elif init is not None:
        start_net, _, start_config = load_score_model(init, device="cpu", use_ema=True)
        mismatch = {k: (getattr(start_config, k), getattr(config, k)) for k in
                    ("channels", "embed_dim", "n_classes", "precond", "sde_sigma", "sigma_data")
                    if getattr(start_config, k) != getattr(config, k)}
        if mismatch:
            raise ValueError(f"init={str(init)!r} holds a different network: (its, this config's) {mismatch}; "
                             f"pass the config it was trained with (e.g. --cpu --conditional as in its manifest).")
        net.load_state_dict({k: v.float() for k, v in start_net.state_dict().items()})
        if ema is not None:
            ema = EMA(net, config.ema_decay)
        log(f"starting from the EMA weights of {init}")
    data = data.to(device, non_blocking=True)
    if config.n_classes:
        labels = labels.to(device=device, dtype=torch.long)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    model, compiled = _maybe_compile(net, config, device, log)
    use_amp = amp_dtype != torch.float32
    n = len(data)

    def save(done):
        if checkpoint is not None:
            save_checkpoint(checkpoint, model=net.state_dict(), optimizer=opt.state_dict(),
                            ema=ema.state_dict() if ema is not None else None, step=done, losses=losses,
                            rng=gen.get_state(), config={**asdict(config), "channels": list(config.channels)},
                            meta=meta or {})

    def batches():  # the whole dataset sits on the device: a batch is an index draw there
        idx = torch.randint(n, (config.batch_size,), generator=gen, device=device)
        return data[idx], labels[idx] if config.n_classes else None

    def loss_fn(model, batch):
        x0, y = batch
        if y is not None:  # label dropout: the null label teaches the unconditional score too
            drop = torch.rand(y.shape, generator=gen, device=device) < config.label_dropout
            y = torch.where(drop, torch.full_like(y, config.n_classes), y)
        return recipe_loss(lambda x, t: model(x, t, y).float() if y is not None else model(x, t).float(),
                           x0, sde, noise=config.noise, weighting=config.weighting, eps=config.eps, generator=gen,
                           sigma_data=config.sigma_data, p_mean=config.p_mean, p_std=config.p_std,
                           importance=importance, check=False)

    start = time.perf_counter()  # wall time includes compilation
    if compiled:  # compilation happens at the first call: fall back to eager if it fails there
        try:
            state = gen.get_state()
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model, (data[:config.batch_size], labels[:config.batch_size] if config.n_classes else None))
            loss.backward()
            net.zero_grad(set_to_none=True)
            gen.set_state(state)
        except Exception as err:  # pragma: no cover - depends on the platform
            log(f"torch.compile failed at the first step ({type(err).__name__}: {err}); training eagerly")
            model, compiled = net, False
            net.zero_grad(set_to_none=True)
            gen.set_state(state)
    compile_seconds = time.perf_counter() - start

    start_step = step
    end = config.n_steps if stop_after is None else min(config.n_steps, step + stop_after)
    budget = None if config.time_budget_s is None else config.time_budget_s - (time.perf_counter() - start)
    # losses are read back every 50 steps, so the GPU is never stalled per step
    step = train_loop(model, loss_fn, batches, end, opt, start_step=step,
                      schedule=lambda k: lr * min(1.0, (k + 1) / max(1, config.warmup_steps)),  # linear warm-up
                      clip=config.grad_clip, ema=ema, autocast=amp_dtype if use_amp else None, sync_every=50,
                      on_checkpoint=save, checkpoint_every=config.checkpoint_every, time_budget=budget, losses=losses,
                      advice=f"try a smaller lr (now {lr:g})", progress=progress, desc="training", leave=True,
                      items_per_step=config.batch_size).steps
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    save(step)
    net.eval()
    info = {"losses": losses, "steps": step, "seconds": seconds, "compiled": compiled, "device": str(device),
            "compile_seconds": compile_seconds, "precision": str(amp_dtype).replace("torch.", ""),
            "images_per_s": (step - start_step) * config.batch_size / max(seconds, 1e-9), "lr": lr,
            "resumed_from_step": start_step,
            "config": replace(config)}
    return net, ema, info
