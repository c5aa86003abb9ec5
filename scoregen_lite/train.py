"""One training loop for every part of the course, and an exponential moving
average (EMA) of the weights.

``fit(score_net, loss_fn, data, n_steps=...)`` samples mini-batches from a
tensor or a sampler function, steps an optimizer on ``loss_fn(score_net, x)``,
keeps an EMA, shows a tqdm bar with the loss, is seeded and device-aware, and
stops with a clear error when the loss turns NaN or infinite. Introduced in
notebooks/02_score_matching.ipynb.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import _checks

__all__ = ["EMA", "FitResult", "fit", "TrainingDiverged", "CheckpointError", "train_ncsn", "ImageConfig", "REFERENCE", "FAST",
           "QUICK_CPU", "CPU", "make_sde", "make_unet", "train_images", "save_checkpoint", "load_checkpoint",
           "load_score_model", "ema_weights", "ema_window"]


class CheckpointError(ValueError):
    """A file that is not a (complete) checkpoint of this course: the message says which and what to do."""


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last finite loss."""


class EMA:
    """Exponential moving average of a model's floating-point parameters and buffers.

    After each optimizer step, ``update(model)`` sets
    ``shadow <- d * shadow + (1 - d) * param`` with ``d = decay``, or with
    ``d = min(decay, (1 + n) / (10 + n))`` after n updates when ``warmup`` is on,
    so that early averages are not dominated by the random initial weights.
    ``copy_to(model)`` loads the averages (keeping a backup), ``restore(model)``
    puts the trained weights back; ``with ema.average_parameters(model):`` does
    both. Sample with the EMA weights (Song & Ermon 2020, "Improved techniques for training
    score-based generative models", technique 5). The warm-up is that of TensorFlow's
    ``tf.train.ExponentialMovingAverage`` with ``num_updates``; ``ema_window`` measures how many
    steps the average spans after n updates (notebook 07).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        decay = float(decay)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay!r} is invalid: expected 0 <= decay < 1 (e.g. 0.999).")
        self.decay, self.warmup, self.num_updates = decay, warmup, 0
        self.shadow = {k: v.detach().clone() for k, v in self._tracked(model).items()}
        self._backup: dict | None = None

    @staticmethod
    def _tracked(model: nn.Module) -> dict:
        model = getattr(model, "_orig_mod", model)  # a torch.compile'd module shares its weights
        return {k: v for k, v in model.state_dict().items() if torch.is_floating_point(v)}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        tracked = self._tracked(model)
        keys = list(tracked)
        # shadow = d * shadow + (1 - d) * v, as one fused multi-tensor op (one kernel launch on a GPU)
        torch._foreach_lerp_([self.shadow[k] for k in keys], [tracked[k].detach() for k in keys], 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        tracked = self._tracked(model)
        self._backup = {k: v.detach().clone() for k, v in tracked.items()}
        for k, v in tracked.items():
            v.copy_(self.shadow[k])

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        if self._backup is None:
            raise RuntimeError("restore() called without a previous copy_to().")
        for k, v in self._tracked(model).items():
            v.copy_(self._backup[k])
        self._backup = None

    @contextlib.contextmanager
    def average_parameters(self, model: nn.Module):
        self.copy_to(model)
        try:
            yield model
        finally:
            self.restore(model)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.warmup, self.num_updates = state["decay"], state["warmup"], state["num_updates"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


def ema_weights(n_updates: int, decay: float = 0.999, warmup: bool = True) -> torch.Tensor:
    """The weights (w_0, ..., w_n), float64, summing to 1, with which ``EMA``'s average after n updates mixes
    the initial weights (w_0) and the weights after each training step k = 1..n (w_k): update k uses
    d_k = min(decay, k / (9 + k)) with ``warmup`` (``EMA.current_decay`` with k - 1 updates done), else decay, so

        w_k = (1 - d_k) d_{k+1} ... d_n   (k >= 1),   w_0 = d_1 ... d_n.

    It is exactly what ``EMA`` computes (tests/test_ema_window.py runs the class on one-hot weights).
    Introduced in notebooks/07_mnist_score_sde.ipynb."""
    n = _checks.count("n_updates", n_updates, minimum=0)
    decay = float(decay)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay={decay!r} is invalid: expected 0 <= decay < 1 (e.g. 0.999).")
    k = torch.arange(1, n + 1, dtype=torch.float64)
    d = torch.clamp(k / (9 + k), max=decay) if warmup else torch.full_like(k, decay)
    log_d = torch.log(d)
    # suffix[k] = log(d_{k+1} ... d_n) for k = 0..n (an empty product for k = n)
    suffix = torch.cat([torch.flip(torch.cumsum(torch.flip(log_d, [0]), 0), [0]), torch.zeros(1, dtype=torch.float64)])
    w = torch.exp(suffix)
    w[1:] = w[1:] * (1 - d)
    return w


def ema_window(n_updates: int, decay: float = 0.999, warmup: bool = True) -> dict:
    """How many training steps ``EMA``'s average spans after ``n_updates`` updates, from ``ema_weights``:

    * ``mean_age``: sum_k w_k (n - k), how many steps back the average sits on average; for a plain EMA run
      long enough it is d / (1 - d), the usual "window of about 1 / (1 - d) steps";
    * ``n_eff``: 1 / sum_k w_k^2, the number of equally weighted steps with the same variance reduction
      ((1 + d) / (1 - d) for a long plain EMA);
    * ``initial_weight``: w_0, the share of the initial weights still in the average;
    * ``decay_now``: the decay of the next update.

    With ``warmup`` (d_k = min(decay, k / (9 + k))) the window grows with the run, about n / 10 steps back,
    until d_k reaches ``decay`` (near n = 9 d / (1 - d)). Introduced in notebooks/07_mnist_score_sde.ipynb."""
    w = ema_weights(n_updates, decay, warmup)
    n = len(w) - 1
    age = n - torch.arange(n + 1, dtype=torch.float64)
    decay_now = min(float(decay), (1 + n) / (10 + n)) if warmup else float(decay)
    return {"n_updates": n, "decay": float(decay), "mean_age": float((w * age).sum()),
            "n_eff": float(1 / (w**2).sum()), "initial_weight": float(w[0]), "decay_now": decay_now}


@dataclass
class FitResult:
    """What ``fit`` returns: the loss of every step, the EMA (or None), wall time and device."""

    losses: list = field(default_factory=list)
    ema: EMA | None = None
    seconds: float = 0.0
    device: str = "cpu"

    def smoothed(self, window: int = 50) -> list:
        """Running mean of the losses over ``window`` steps (for plots)."""
        out, acc = [], 0.0
        for i, v in enumerate(self.losses):
            acc += v - (self.losses[i - window] if i >= window else 0.0)
            out.append(acc / min(i + 1, window))
        return out


def _batches(data, batch_size: int, generator: torch.Generator, device):
    if isinstance(data, torch.Tensor):
        data = _checks.batch("data", data)
        n = len(data)
        if data.device != torch.device(device):
            data = data.to(device)

        def draw():
            idx = torch.randint(n, (batch_size,), generator=generator)
            return data[idx.to(data.device)]

        return draw
    if callable(data):
        def draw():
            return data(batch_size, generator=generator).to(device)

        return draw
    raise TypeError(f"data must be a tensor (n, ...) or a sampler data(batch_size, generator=...), got {type(data).__name__}.")


def fit(
    score_net: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    data,
    *,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    ema_decay: float | None = 0.999,
    seed: int = 0,
    device=None,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "training",
) -> FitResult:
    """Train ``score_net`` by minimising ``loss_fn(score_net, x_batch)`` for ``n_steps`` steps.

    Args:
        score_net: the network (moved to ``device``).
        loss_fn: (net, batch) -> scalar loss, e.g.
            ``lambda net, x: sg.losses.denoising_score_matching(net, x, sigma=0.1)``.
        data: a tensor of training points (batches drawn with replacement) or a
            sampler ``data(batch_size, generator=...) -> tensor``.
        n_steps, batch_size, lr: loop size, batch size and Adam learning rate.
        optimizer: use this optimizer instead of Adam(lr).
        ema_decay: decay of the weight EMA (None: no EMA).
        seed: seeds the batch order and the global torch RNG (noise in the losses).
        device: where to train (default ``sg.device()``).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        progress: show a tqdm bar with the running loss.

    Returns:
        FitResult(losses, ema, seconds, device).

    Raises:
        TrainingDiverged: the loss became NaN/inf; the message names the step and
            the last finite loss, and suggests a smaller ``lr``.
    """
    from . import device as default_device

    n_steps = _checks.count("n_steps", n_steps)
    batch_size = _checks.count("batch_size", batch_size)
    lr = _checks.positive("lr", lr)
    if grad_clip is not None:
        grad_clip = _checks.positive("grad_clip", grad_clip)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn={loss_fn!r} must be callable: loss_fn(net, x) -> scalar tensor.")
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    draw = _batches(data, batch_size, gen, device)
    score_net.to(device).train()
    opt = optimizer or torch.optim.Adam(score_net.parameters(), lr=lr)
    ema = EMA(score_net, ema_decay) if ema_decay is not None else None
    result = FitResult(ema=ema, device=str(device))
    last_finite = (None, None)
    start = time.perf_counter()
    bar = tqdm(range(n_steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for step in bar:
        loss = loss_fn(score_net, draw())
        value = float(loss.detach())
        if not math.isfinite(value):
            where = f"last finite loss {last_finite[1]:.4g} at step {last_finite[0]}" if last_finite[0] is not None \
                else "no finite loss before it"
            raise TrainingDiverged(f"loss became {value} at step {step} ({where}); try a smaller lr (now {lr:g}) or grad_clip.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(score_net.parameters(), grad_clip)
        opt.step()
        if ema is not None:
            ema.update(score_net)
        result.losses.append(value)
        last_finite = (step, value)
        if progress and step % 50 == 0:
            bar.set_postfix(loss=f"{sum(result.losses[-50:]) / len(result.losses[-50:]):.4g}")
    result.seconds = time.perf_counter() - start
    score_net.eval()
    return result


def train_ncsn(data, sigmas, *, n_steps: int, hidden: int = 128, n_layers: int = 3, divide_by_sigma: bool = True,
               weighting=2.0, batch_size: int = 512, lr: float = 2e-3, ema_decay: float | None = 0.999,
               seed: int = 0, device=None, progress: bool = True):
    """Train a noise-conditional MLP on 2D (or any low-dimensional) data with eqs. (4)-(5).

    Builds ``sg.nets.ConditionalMLPScore`` (log-sigma Fourier embedding; output divided
    by sigma when ``divide_by_sigma``), trains it with ``sg.losses.ncsn_loss`` through
    ``fit``, then loads the EMA weights into the network (sample with the EMA: Song & Ermon
    2020, technique 5). Returns (net, FitResult). Introduced in notebooks/04_ncsn.ipynb, reused
    in 05_annealed_langevin.ipynb.
    """
    from .losses import ncsn_loss
    from .nets import ConditionalMLPScore

    data = _checks.points("data", data)
    sigmas = torch.as_tensor(sigmas)
    torch.manual_seed(seed)
    net = ConditionalMLPScore(data.shape[1], hidden=hidden, n_layers=n_layers,
                              output_divisor=_divide_by_sigma if divide_by_sigma else None)
    result = fit(net, lambda n, x: ncsn_loss(n, x, sigmas.to(x.device), weighting=weighting), data,
                 n_steps=n_steps, batch_size=batch_size, lr=lr, ema_decay=ema_decay, seed=seed, device=device,
                 progress=progress, desc="NCSN")
    if result.ema is not None:
        result.ema.copy_to(net)
    return net.requires_grad_(False), result


def _divide_by_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """s_theta(x, sigma) = net(x, sigma) / sigma (||s|| ~ 1/sigma; Song & Ermon 2020, technique 3)."""
    return sigma



# ---------------------------------------------------------------------------
# Image score models (notebook 07): fast GPU training with checkpoints
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageConfig:
    """Everything that defines an image score-model run (saved in every checkpoint).

    ``lr=None`` applies the square-root scaling rule from the reference point (batch 32,
    lr 1e-4): lr = 1e-4 * sqrt(batch_size / 32). ``n_steps`` bounds the run; ``time_budget_s``
    (if set) stops it earlier, on wall time. ``compile`` applies on CUDA only. ``amp`` turns on
    reduced precision where the device has it, chosen by ``sg.precision`` (bfloat16 on Ampere and
    newer, float16 with a gradient scaler on older CUDA GPUs, float32 on MPS and the CPU);
    ``precision`` forces one ("bf16", "fp16", "fp32"). ``n_classes > 0`` trains a class-conditional
    network (labels required) whose labels are replaced by the null label with probability
    ``label_dropout`` (classifier-free guidance, Ho & Salimans 2022). ``precond``, ``noise``,
    ``weighting``, ``sigma_data``, ``p_mean``, ``p_std``: the training recipe (``sg.recipes``, notebook 10;
    the defaults are eq. (8) as before: no preconditioning, t ~ U(eps, 1), lambda = std_t^2).
    """

    def with_recipe(self, name: str) -> "ImageConfig":
        """This config with a named recipe of ``sg.recipes.RECIPES`` (its precond, noise and weighting)."""
        from .recipes import RECIPES

        if name not in RECIPES:
            raise ValueError(f"recipe={name!r} is unknown; expected one of {sorted(RECIPES)}.")
        precond, noise, weighting = RECIPES[name]
        return replace(self, precond=precond, noise=noise, weighting=weighting)

    sde_sigma: float = 25.0                 # VE SDE of Song's tutorial, dx = sigma^t dw
    channels: tuple = (32, 64, 128, 256)
    embed_dim: int = 256
    batch_size: int = 512
    lr: float | None = None
    warmup_steps: int = 100
    n_steps: int = 20_000
    time_budget_s: float | None = None
    ema_decay: float | None = 0.999
    grad_clip: float | None = 1.0
    eps: float = 1e-5
    compile: bool = True
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 1000
    n_classes: int = 0
    label_dropout: float = 0.1
    precision: str = "auto"
    # the training recipe (sg.recipes, notebook 10): preconditioning, noise levels, loss weighting
    precond: str = "none"
    noise: str = "uniform"
    weighting: str = "sigma2"
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 1e-4 * math.sqrt(self.batch_size / 32)


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


def make_sde(config: ImageConfig):
    """The VE SDE of a config (``VESDE.tutorial(config.sde_sigma)``)."""
    from .sde import VESDE

    return VESDE.tutorial(config.sde_sigma)


def make_unet(config: ImageConfig, sde=None) -> nn.Module:
    """A fresh ``ScoreUNet`` for a config, seeded by ``config.seed``."""
    from .nets import ScoreUNet

    torch.manual_seed(config.seed)
    return ScoreUNet(sde or make_sde(config), channels=tuple(config.channels), embed_dim=config.embed_dim,
                     n_classes=config.n_classes, precond=config.precond, sigma_data=config.sigma_data)


def save_checkpoint(path, **state) -> Path:
    """torch.save ``state`` atomically: write a temporary file beside ``path``, then rename it, so an
    interrupted run (Ctrl-C, a killed job) never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint`` (a dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; train first (python -m scoregen_lite "
                                f"train-mnist --out {path.parent}) or pass another path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:   # a text file, a truncated download, another program's file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{str(path)!r} is not a complete checkpoint of this course ({type(err).__name__}: "
                              f"{first}). Pass a checkpoint.pt written by python -m scoregen_lite train-mnist, or "
                              f"checkpoints/NAME.pt; a truncated file must be copied or trained again.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{str(path)!r} is a torch file but not a checkpoint of this course (it has no model "
                              f"and config); pass a checkpoint.pt written by python -m scoregen_lite train-mnist.")
    return state


def load_score_model(path, device=None, use_ema: bool = True):
    """(net, sde, config) from a checkpoint, with the EMA weights loaded when present and ``use_ema``."""
    from . import device as default_device

    state = load_checkpoint(path)
    config = ImageConfig(**{**state["config"], "channels": tuple(state["config"]["channels"])})
    sde = make_sde(config)
    net = make_unet(config, sde)
    net.load_state_dict(state["model"])
    if use_ema and state.get("ema") is not None:
        ema = EMA(net, state["ema"]["decay"])
        ema.load_state_dict(state["ema"])
        ema.copy_to(net)
    net = net.to(device or default_device()).eval().requires_grad_(False)
    return net, sde, config


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
    (used to test resuming). Progress bar: loss and images/s. ``labels`` (n,) are required for a
    class-conditional config (``n_classes > 0``). ``meta`` (e.g. which digits were held out) is stored
    in the checkpoint. The precision (``sg.precision``) is printed through ``log`` before training.

    Returns (net, ema, info) with info = {losses, steps, seconds (wall time of this call, compilation
    included), compile_seconds, images_per_s, compiled, device, lr, precision, resumed_from_step}.
    Introduced in notebooks/07_mnist_score_sde.ipynb; used by the CLI and benchmarks/mnist_gpu.py.
    """
    from . import device as default_device, precision as default_precision
    from .recipes import ImportanceSampler, check_recipe, recipe_loss

    data = _checks.batch("data", data)
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
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    def save():
        if checkpoint is not None:
            save_checkpoint(checkpoint, model=net.state_dict(), optimizer=opt.state_dict(),
                            ema=ema.state_dict() if ema is not None else None, step=step, losses=losses,
                            rng=gen.get_state(), config={**asdict(config), "channels": list(config.channels)},
                            meta=meta or {})

    def loss_of(batch, y=None):
        if y is not None:  # label dropout: the null label teaches the unconditional score too
            drop = torch.rand(y.shape, generator=gen, device=device) < config.label_dropout
            y = torch.where(drop, torch.full_like(y, config.n_classes), y)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            return recipe_loss(lambda x, t: model(x, t, y).float() if y is not None else model(x, t).float(),
                               batch, sde, noise=config.noise, weighting=config.weighting, eps=config.eps,
                               generator=gen, sigma_data=config.sigma_data, p_mean=config.p_mean,
                               p_std=config.p_std, importance=importance, check=False)

    start = time.perf_counter()  # wall time includes compilation
    if compiled:  # compilation happens at the first call: fall back to eager if it fails there
        try:
            state = gen.get_state()
            loss_of(data[:config.batch_size], labels[:config.batch_size] if config.n_classes else None).backward()
            net.zero_grad(set_to_none=True)
            gen.set_state(state)
        except Exception as err:  # pragma: no cover - depends on the platform
            log(f"torch.compile failed at the first step ({type(err).__name__}: {err}); training eagerly")
            model, compiled = net, False
            net.zero_grad(set_to_none=True)
            gen.set_state(state)
    compile_seconds = time.perf_counter() - start

    n = len(data)
    start_step = step
    bar = tqdm(total=config.n_steps, initial=step, desc="training", disable=not progress, mininterval=1.0)
    pending = []  # losses stay on the device until a sync point, so the GPU is never stalled per step
    try:
        while step < config.n_steps:
            if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                break
            if stop_after is not None and step - start_step >= stop_after:
                break
            for group in opt.param_groups:  # linear warm-up, then constant
                group["lr"] = lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            idx = torch.randint(n, (config.batch_size,), generator=gen, device=device)
            loss = loss_of(data[idx], labels[idx] if config.n_classes else None)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:  # float16: scale the loss so small gradients do not underflow
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if ema is not None:
                ema.update(net)
            pending.append(loss.detach())
            step += 1
            if step % 50 == 0 or step == config.n_steps:
                values = torch.stack(pending).float().cpu().tolist()
                pending.clear()
                bad = [v for v in values if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(f"loss became {bad[0]} near step {step} (last finite "
                                           f"{next((v for v in reversed(losses) if math.isfinite(v)), None)}); "
                                           f"try a smaller lr (now {lr:g}).")
                losses.extend(values)
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{sum(values) / len(values):.4g}",
                                img_s=f"{(step - start_step) * config.batch_size / max(elapsed, 1e-9):,.0f}")
                bar.update(len(values))
            if step % config.checkpoint_every == 0:
                if pending:
                    losses.extend(torch.stack(pending).float().cpu().tolist())
                    pending.clear()
                save()
    finally:
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    save()
    net.eval()
    info = {"losses": losses, "steps": step, "seconds": seconds, "compiled": compiled, "device": str(device),
            "compile_seconds": compile_seconds, "precision": str(amp_dtype).replace("torch.", ""),
            "images_per_s": (step - start_step) * config.batch_size / max(seconds, 1e-9), "lr": lr,
            "resumed_from_step": start_step,
            "config": replace(config)}
    return net, ema, info
