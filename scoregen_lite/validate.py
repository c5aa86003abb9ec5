"""Argument checks shared by the package: every bad input becomes a ValueError or
TypeError that names the argument, shows its value and says what is expected,
before any work is done."""
from __future__ import annotations

import math
import numbers

import torch


def show(value) -> str:
    """A short readable form of a value for error messages (a small tensor in full, a large one summarised);
    every module's checks use it."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 6:
            return f"tensor({value.tolist()})"
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def positive(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``), returned as float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={show(value)} must be a real number.")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}.")
    return value


def ordered(name_lo: str, lo, name_hi: str, hi, note: str = "") -> tuple[float, float]:
    """Two finite positive numbers with hi > lo (a range such as sigma_min < sigma_max), as floats."""
    lo, hi = positive(name_lo, lo), positive(name_hi, hi)
    if not hi > lo:
        raise ValueError(f"{name_hi}={hi!r} must be larger than {name_lo}={lo!r}{note}.")
    return lo, hi


def count(name: str, value, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={show(value)} must be an int (>= {minimum}).")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: expected an int >= {minimum}.")
    return int(value)


def tensor(name: str, x) -> torch.Tensor:
    """A floating-point tensor without NaN or inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor(...).")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} has dtype {x.dtype}; expected a floating dtype (use {name}.float()).")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN/inf value(s); expected finite values only.")
    return x


def points(name: str, x, dim: int | None = None) -> torch.Tensor:
    """A finite float tensor of shape (n, D), with D == ``dim`` when given."""
    x = tensor(name, x)
    if x.dim() != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, D)"
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {want}, one row per point.")
    return x


def batch(name: str, x) -> torch.Tensor:
    """A finite float tensor with a batch dimension first (shape (n, ...))."""
    x = tensor(name, x)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected a non-empty batch (n, ...).")
    return x


def eps(value) -> float:
    """The smallest time of a reverse-time sampler: 0 < eps < 1."""
    value = positive("eps", value)
    if value >= 1:
        raise ValueError(f"eps={value!r} is invalid: expected 0 < eps < 1 (the smallest time, e.g. 1e-3).")
    return value


def shape(name: str, value) -> tuple:
    """A tensor shape to draw: an int or a tuple of positive ints, batch first; returned as a tuple."""
    value = tuple(value) if not isinstance(value, int) else (value,)
    if not value or any((not isinstance(s, int)) or s < 1 for s in value):
        raise ValueError(f"{name}={value!r} is invalid: expected positive ints, batch first, e.g. (1000, 2).")
    return value


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r} is invalid: choose one of {sorted(options)}.")
    return value


# ---------------------------------------------------------------------------
# Checks shared by the sampler modules (sg.mcmc and sg.solvers)
# ---------------------------------------------------------------------------

class SamplerDiverged(FloatingPointError):
    """The chains left the floating-point range (NaN/inf): the step size is too large for the score.
    Raised by every sampler; reachable as ``sg.samplers.SamplerDiverged``."""


def check_finite(x, where: str, step_size: float) -> None:
    """Raise SamplerDiverged, saying how many chains and where, when x holds NaN/inf; the message also gives the
    median size |x| of the chains still finite, since those have usually blown up too, only not yet past inf."""
    if not torch.isfinite(x).all():
        rows = x.reshape(len(x), -1)
        ok = torch.isfinite(rows).all(1)
        bad = int((~ok).sum())
        rest = (f"; the other {len(x) - bad} have median |x| = {float(rows[ok].double().norm(dim=1).median()):.3g}"
                if bad < len(x) else "")
        raise SamplerDiverged(f"{bad} of {len(x)} chains reached NaN/inf {where}{rest}; step_size={step_size:g} is "
                              f"too large for this score: try a step size 10x smaller.")


def call_score(score_fn, x, *args, where: str = "", step_size: float = 0.0):
    """score_fn(x, *args); if it rejects x because chains overflowed, say so (SamplerDiverged)."""
    try:
        return score_fn(x, *args)
    except ValueError as err:
        if not torch.isfinite(x).all():
            check_finite(x, where, step_size)
        raise err


def check_callable(name, fn):
    if not callable(fn):
        raise TypeError(f"{name}={fn!r} must be callable, e.g. density.score or a trained network.")
    return fn


def check_score_output(s, x):
    """The first score a sampler computes must have x's shape."""
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn returned {shape}; expected a tensor of x's shape {tuple(x.shape)}.")
    return s


