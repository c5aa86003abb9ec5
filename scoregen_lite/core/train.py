"""The course's one training loop, ``train_loop``, an exponential moving average (EMA) of the weights, and
``fit``, the loop for the 2D score networks.

``train_loop(model, loss_fn, batches, n_steps, optimizer, ...)`` steps an optimizer on ``loss_fn(model,
batches())`` with hooks for a learning-rate schedule, mixed precision, gradient clipping, an EMA, checkpoints
and a progress bar, and stops with a clear error when the loss turns NaN or infinite; ``fit``, the MNIST score
networks (``sg.image_training.train_images``) and both MNIST classifiers run it. ``fit(score_net, loss_fn, data,
n_steps=...)`` samples mini-batches from a tensor or a sampler function, is seeded and device-aware and keeps
an EMA. Introduced in notebooks/02_score_matching.ipynb.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import validate

__all__ = ["EMA", "FitResult", "fit", "train_loop", "TrainingDiverged", "train_ncsn", "ema_weights", "ema_window"]


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
    n = validate.count("n_updates", n_updates, minimum=0)
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
    """What ``fit`` and ``train_loop`` return: the loss of every step, the EMA (or None), wall time, device
    and the number of steps done (a resumed run's included)."""

    losses: list = field(default_factory=list)
    ema: EMA | None = None
    seconds: float = 0.0
    device: str = "cpu"
    steps: int = 0

    def smoothed(self, window: int = 50) -> list:
        """Running mean of the losses over ``window`` steps (for plots)."""
        out, acc = [], 0.0
        for i, v in enumerate(self.losses):
            acc += v - (self.losses[i - window] if i >= window else 0.0)
            out.append(acc / min(i + 1, window))
        return out


def train_loop(model: nn.Module, loss_fn: Callable, batches: Callable, n_steps: int,
               optimizer: torch.optim.Optimizer, *, start_step: int = 0, schedule=None, clip: float | None = None,
               ema: EMA | None = None, autocast: torch.dtype | None = None, sync_every: int = 1,
               on_step: Callable | None = None, on_checkpoint: Callable | None = None,
               checkpoint_every: int | None = None, time_budget: float | None = None, losses: list | None = None,
               advice: str | None = None, progress: bool = True, desc: str = "training", leave: bool = False,
               items_per_step: int | None = None) -> FitResult:
    """The course's one training loop: ``fit`` (notebooks 02-05), the MNIST score networks (``train_images``,
    notebook 07) and both MNIST classifiers (evaluation, notebook 07; noisy, notebook 09) run it.

    Step k (k = start_step, ..., n_steps - 1; k steps are done before it): set the learning rate if ``schedule``
    is a function, draw ``batch = batches()``, compute ``loss_fn(model, batch)`` (under ``torch.autocast`` with
    a reduced ``autocast`` dtype), back-propagate (loss scaled by a GradScaler for float16, so that small
    gradients do not underflow), clip the gradient norm of ``model``'s parameters to ``clip``, step the
    optimizer, step ``schedule`` if it is a torch LR scheduler, update ``ema``, then call
    ``on_step(k + 1, loss)`` (steps done, the detached loss) and, every ``checkpoint_every`` steps done,
    ``on_checkpoint(k + 1)`` with every loss so far in ``losses``. ``model.train()`` before, ``model.eval()``
    after a run that ends normally.

    Args:
        model: the module trained, on its device (a ``torch.compile``'d one too); autocast and the gradient
            scaler use its parameters' device.
        loss_fn: (model, batch) -> scalar loss tensor.
        batches: () -> batch, called once per step (it owns the random generator of the batch order).
        n_steps: the number of steps done when the loop ends (a resumed run's total, ``start_step`` included).
        optimizer: a torch optimizer over ``model``'s parameters.
        start_step: steps done before this call (a resumed run).
        schedule: the learning rate: a function step k -> lr, set on every parameter group before step k
            (e.g. a linear warm-up), or a torch LR scheduler, stepped after every optimizer step (cosine decay).
        clip: clip the gradient norm to this value (None: no clipping).
        ema: an ``EMA`` of the weights, updated after every optimizer step.
        autocast: torch.bfloat16 or torch.float16 for mixed precision; None or torch.float32: full precision.
        sync_every: read the losses back and check them every this many steps (k + 1 a multiple of it) and at
            the end. 1 checks each loss before its backward pass, so a NaN never reaches the weights; a larger
            value lets a GPU run ahead instead of waiting for every loss.
        on_step, on_checkpoint, checkpoint_every: the hooks above (None: not called).
        time_budget: stop before a step once this many seconds have passed since the loop began.
        losses: append the losses (floats) to this list, e.g. a resumed run's history, instead of a new one.
        advice: what the divergence error says to do (default: a smaller lr, naming the current one).
        progress, desc, leave, items_per_step: a tqdm bar labelled ``desc`` (kept after the run if ``leave``)
            with the mean of the last 50 losses and, given the batch size as ``items_per_step``, items/s.

    Returns:
        FitResult(losses, ema, seconds (of this call), device, steps (done, ``start_step`` included)).

    Raises:
        TrainingDiverged: a loss is NaN or infinite; the message names its step and the last finite loss and
            says what to do (``advice``). The finite losses before it are in ``losses``.
    """
    n_steps = validate.count("n_steps", n_steps, minimum=0)
    start_step = validate.count("start_step", start_step, minimum=0)
    sync_every = validate.count("sync_every", sync_every)
    if checkpoint_every is not None:
        checkpoint_every = validate.count("checkpoint_every", checkpoint_every)
    if clip is not None:
        clip = validate.positive("clip", clip)
    for name, fn in (("loss_fn", loss_fn), ("batches", batches)):
        if not callable(fn):
            raise TypeError(f"{name}={fn!r} must be callable: loss_fn(model, batch) -> scalar tensor, batches() -> batch.")
    if autocast not in (None, torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"autocast={autocast!r} is invalid: expected torch.bfloat16, torch.float16, torch.float32 or None.")
    lr_scheduler = isinstance(schedule, torch.optim.lr_scheduler.LRScheduler)
    if schedule is not None and not (lr_scheduler or callable(schedule)):
        raise TypeError(f"schedule={schedule!r} must be a function step -> lr or a torch LR scheduler.")
    param = next(iter(model.parameters()), None)
    dev = param.device if param is not None else torch.device("cpu")
    reduced = autocast in (torch.bfloat16, torch.float16)
    scaler = torch.amp.GradScaler(dev.type) if autocast == torch.float16 else None
    losses = [] if losses is None else losses
    result = FitResult(losses=losses, ema=ema, device=str(dev), steps=start_step)
    pending = []                  # (step, detached loss) not read back yet: no device sync per step
    last = [start_step - 1, losses[-1]] if losses else [None, None]     # the last finite (step, loss)

    def read_back(check: bool = True) -> None:
        if not pending:
            return
        values = torch.stack([v.reshape(()).double() for _, v in pending]).cpu().tolist()
        steps = [k for k, _ in pending]
        pending.clear()
        for k, v in zip(steps, values):
            if check and not math.isfinite(v):
                where = f"last finite loss {last[1]:.4g} at step {last[0]}" if last[0] is not None \
                    else "no finite loss before it"
                todo = advice or f"try a smaller lr (now {optimizer.param_groups[0]['lr']:g})"
                raise TrainingDiverged(f"loss became {v} at step {k} ({where}); {todo}.")
            losses.append(v)
            last[:] = k, v

    model.train()
    start = time.perf_counter()
    bar = tqdm(total=n_steps, initial=min(start_step, n_steps), desc=desc, disable=not progress, leave=leave,
               mininterval=0.5)
    done = start_step
    try:
        while done < n_steps:
            if time_budget is not None and time.perf_counter() - start > time_budget:
                break
            if schedule is not None and not lr_scheduler:
                lr = float(schedule(done))
                for group in optimizer.param_groups:
                    group["lr"] = lr
            batch = batches()
            with torch.autocast(dev.type, dtype=autocast) if reduced else contextlib.nullcontext():
                loss = loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"loss_fn returned {type(loss).__name__} of shape {tuple(getattr(loss, 'shape', ()))}; "
                                 f"expected a scalar tensor (take .mean() over the batch).")
            pending.append((done, loss.detach().clone()))   # a copy: the loss may alias a weight stepped below
            if sync_every == 1:
                read_back()       # before the backward pass: a NaN loss never updates the weights
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if lr_scheduler:
                schedule.step()
            if ema is not None:
                ema.update(model)
            done += 1
            result.steps = done
            bar.update(1)
            if done % sync_every == 0 or done == n_steps:
                read_back()
            if progress and (done % 50 == 0 or done == n_steps) and losses:
                rate = {} if items_per_step is None else \
                    {"items_s": f"{(done - start_step) * items_per_step / max(time.perf_counter() - start, 1e-9):,.0f}"}
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4g}", **rate)
            if on_step is not None:
                on_step(done, loss.detach())
            if on_checkpoint is not None and checkpoint_every is not None and done % checkpoint_every == 0:
                read_back()
                on_checkpoint(done)
        read_back()
    finally:
        read_back(check=False)    # an interrupted run keeps the losses of the steps it did
        bar.close()
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def _batches(data, batch_size: int, generator: torch.Generator, device):
    if isinstance(data, torch.Tensor):
        data = validate.batch("data", data)
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
    """Train ``score_net`` by minimising ``loss_fn(score_net, x_batch)`` for ``n_steps`` steps of ``train_loop``.

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
        FitResult(losses, ema, seconds, device, steps).

    Raises:
        TrainingDiverged: the loss became NaN/inf; the message names the step and
            the last finite loss, and suggests a smaller ``lr``.
    """
    from ..runtime import device as default_device

    n_steps = validate.count("n_steps", n_steps)
    batch_size = validate.count("batch_size", batch_size)
    lr = validate.positive("lr", lr)
    if grad_clip is not None:
        grad_clip = validate.positive("grad_clip", grad_clip)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn={loss_fn!r} must be callable: loss_fn(net, x) -> scalar tensor.")
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    draw = _batches(data, batch_size, gen, device)
    score_net.to(device)
    opt = optimizer or torch.optim.Adam(score_net.parameters(), lr=lr)
    ema = EMA(score_net, ema_decay) if ema_decay is not None else None
    result = train_loop(score_net, loss_fn, draw, n_steps, opt, clip=grad_clip, ema=ema, progress=progress, desc=desc,
                        advice=f"try a smaller lr (now {opt.param_groups[0]['lr']:g}) or grad_clip")
    result.device = str(device)
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

    data = validate.points("data", data)
    sigmas = torch.as_tensor(sigmas)
    torch.manual_seed(seed)
    net = ConditionalMLPScore(data.shape[1], hidden=hidden, n_layers=n_layers,
                              output_divisor=sigma_divisor if divide_by_sigma else None)
    result = fit(net, lambda n, x: ncsn_loss(n, x, sigmas.to(x.device), weighting=weighting), data,
                 n_steps=n_steps, batch_size=batch_size, lr=lr, ema_decay=ema_decay, seed=seed, device=device,
                 progress=progress, desc="NCSN")
    if result.ema is not None:
        result.ema.copy_to(net)
    return net.requires_grad_(False), result


def sigma_divisor(sigma: torch.Tensor) -> torch.Tensor:
    """s_theta(x, sigma) = net(x, sigma) / sigma (||s|| ~ 1/sigma; Song & Ermon 2020, technique 3)."""
    return sigma
