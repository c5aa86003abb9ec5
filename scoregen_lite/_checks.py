"""Argument checks shared by the package: every bad input becomes a ValueError or
TypeError that names the argument, shows its value and says what is expected,
before any work is done."""
from __future__ import annotations

import math
import numbers

import torch


def _show(value) -> str:
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
        raise TypeError(f"{name}={_show(value)} must be a real number.")
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
        raise TypeError(f"{name}={_show(value)} must be an int (>= {minimum}).")
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


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r} is invalid: choose one of {sorted(options)}.")
    return value
