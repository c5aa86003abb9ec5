"""What every exercise check of ``sg.exercises`` shares (one module per notebook, ``nb01_...`` to ``nb10_...``):
``compare`` against the reference with a catalogue of known mistakes, ``compare_loss`` for a loss (a 0-d tensor
with its gradient), ``passed``, ``ExerciseFailed`` (the error whose message is what teaches), the ``points``
decorator that declares a check's nbgrader points beside it, and ``TinyNet``, the small network of the loss checks
of notebooks 02 and 03."""
from __future__ import annotations

import math

import torch

__all__ = ["ExerciseFailed", "passed", "fmt", "at_point", "compare", "compare_loss", "points", "points_of", "TinyNet"]


class ExerciseFailed(AssertionError):
    """An exercise check failed; the message says what was expected.

    In Jupyter (and so in nbgrader's autograded notebooks and their feedback) it shows as that message alone,
    without a traceback into the checking code: the message is what teaches."""

    def _render_traceback_(self):      # IPython's hook for how an exception is shown
        return [f"ExerciseFailed: {self}"]


#: module name -> {check name: nbgrader points}, filled by ``@points(n)``
_RECORDED: dict[str, dict[str, int]] = {}


def points(n: int):
    """Decorator that declares a check's nbgrader points beside it: ``@points(2)`` above ``def check_<name>``.

    It records ``n`` for ``points_of(module)`` (each notebook's module ends with ``POINTS = points_of(__name__)``;
    ``sg.exercises.POINTS`` merges them and ``scoregen_lite.courseware.grading`` reads that) and sets
    ``check.points``; the function itself is returned unchanged. 1 point for a formula of a line or two, 2 for
    one with a catalogue of subtler mistakes (log-sum-exp, a loop, an estimator, a loss), 3 for a method built
    whole (a sampler, a loss with its gradient checked)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"points(n={n!r}): a check is worth a whole number of points >= 1, e.g. @points(2).")

    def record(check):
        name = getattr(check, "__name__", "")
        if not callable(check) or not name.startswith("check_"):
            raise ValueError(f"@points({n}) decorates an exercise check, a function named check_<name>; got {check!r}.")
        _RECORDED.setdefault(check.__module__, {})[name] = n
        check.points = n
        return check

    return record


def points_of(module: str) -> dict[str, int]:
    """{check name: points} of the checks that ``@points`` recorded in ``module`` (a module's ``__name__``)."""
    if module not in _RECORDED:
        raise KeyError(f"points_of({module!r}): no check of that module declares its points; decorate each "
                       f"check_<name> there with @points(n).")
    return dict(_RECORDED[module])


def passed(name: str, detail: str) -> None:
    """Print a check's pass line, ``"✅ <name>: passed (<detail>)."``, what the student sees when it is right."""
    print(f"\u2705 {name}: passed ({detail}).")


def fmt(v, digits: int = 4) -> str:
    """A number or tensor for a message: ``digits`` significant digits, at most four entries, ``(a, b, ...)``."""
    v = v.detach().double().flatten().tolist() if isinstance(v, torch.Tensor) else [float(v)]
    return "(" + ", ".join(f"{a:.{digits}g}" for a in v[:4]) + (", ..." if len(v) > 4 else "") + ")" if len(v) > 1 \
        else f"{v[0]:.{digits}g}"


def at_point(x: torch.Tensor, i: int) -> str:
    """``"x = (...)"``: row i of the input ``x``, for ``compare``'s ``where``."""
    return "x = " + fmt(x[i])


def compare(name: str, got, want, atol: float, what: str, *, mistakes=(), where=None) -> float:
    """Compare a student's answer with the reference; on a mismatch, say why as specifically as we can.

    ``mistakes``: the catalogue of this exercise, ``(wrong answer on the same inputs, hint)`` pairs: an
    answer that matches a wrong one gets that hint, which points to the idea, not the code. Otherwise
    the message names where it is wrong: ``where(i)`` describes the input of row i (default: the row
    number), with the expected and the received value there and the largest error.
    """
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(f"{name}: your function returned {type(got).__name__}; expected a torch.Tensor ({what}).")
    got = got.detach()
    if got.shape != want.shape:
        raise ExerciseFailed(f"{name}: your result has shape {tuple(got.shape)}; expected {tuple(want.shape)} ({what}).")
    diff = (got.double() - want.double()).abs()
    err = float(diff.max())
    if math.isfinite(err) and err <= atol:
        return err
    rows = diff.reshape(diff.shape[0], -1) if diff.dim() else diff.reshape(1, 1)
    bad = (~torch.isfinite(rows)).any(1) if not math.isfinite(err) else rows.max(1).values > atol
    i = int(torch.nonzero(~torch.isfinite(rows).all(1))[0]) if not math.isfinite(err) else int(rows.max(1).values.argmax())
    at = where(i) if where is not None else (f"row {i}" if diff.dim() else "the result")
    row = (lambda v: v[i]) if diff.dim() else (lambda v: v)
    if diff.dim() > 1 and rows.shape[1] > 4:   # a row too long to print (an image): point at its worst entry
        j = int(rows[i].nan_to_num(float("inf")).argmax())
        idx = tuple(int(k) for k in torch.unravel_index(torch.tensor(j), diff.shape[1:]))
        at = f"{at}, entry {idx if len(idx) > 1 else idx[0]}"
        def row(v):
            return v[i].reshape(-1)[j]
    detail = f"at {at}: expected {fmt(row(want))}, got {fmt(row(got))}"
    if fmt(row(want)) == fmt(row(got)):   # equal to 4 digits: show the digits where they differ
        detail = (f"at {at}: expected {fmt(row(want), 10)}, got {fmt(row(got), 10)} (equal to 4 digits: look for a "
                  f"lower precision, e.g. float32 where the inputs are float64)")
    for wrong, hint in mistakes:
        if wrong.shape == want.shape and torch.allclose(wrong.double(), want.double()):
            continue   # on these inputs this mistake gives the right answer: it cannot be told apart here
        if wrong.shape == want.shape and torch.isfinite(got).all() and \
                float((got.double() - wrong.double()).abs().max()) <= max(atol, 1e-6 * float(wrong.abs().max())):
            raise ExerciseFailed(f"{name}: {hint} ({detail}; {what}).")
    scope = f"{int(bad.sum())} of {len(bad)} rows are wrong" if diff.dim() else "the value is wrong"
    raise ExerciseFailed(f"{name}: {scope}; largest error {err:.3g} > {atol:g} {detail} ({what}).")


def compare_loss(name: str, got, want: torch.Tensor, what: str, *, mistakes=(), rtol: float = 1e-9,
                 mean: str = "the batch mean") -> float:
    """Check a student's loss: a 0-d tensor (``mean`` says what it averages), equal to ``want`` within ``rtol`` of
    its size (``compare``, with the catalogue ``mistakes``), and still carrying the network's gradient, so that
    ``loss.backward()`` trains the network. Used by the loss exercises of notebooks 02, 03, 04, 06, 09 and 10
    (eqs. (2)-(5), (8) and EDM's loss). Returns the error."""
    if isinstance(got, torch.Tensor) and got.dim() != 0:
        raise ExerciseFailed(f"{name}: your loss has shape {tuple(got.shape)}; expected a 0-d tensor ({mean}, e.g. "
                             f".mean() at the end).")
    want = want.detach()
    err = compare(name, got, want, rtol * abs(float(want)), what, mistakes=mistakes)
    if not got.requires_grad:
        raise ExerciseFailed(f"{name}: your loss carries no gradient (it was detached, computed under no_grad or "
                             f"turned into a float): training needs loss.backward() to reach the network.")
    return err


class TinyNet(torch.nn.Module):
    """A small fixed smooth network s(x) (float64) for the loss checks of notebooks 02 and 03 (sliced and denoising
    score matching, one optimiser step): a non-constant Jacobian, and parameters, so that the loss has a gradient."""

    def __init__(self, dim: int, seed: int, hidden: int = 8):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(torch.randn(dim, hidden, generator=gen, dtype=torch.float64) / math.sqrt(dim))
        self.b1 = torch.nn.Parameter(0.5 * torch.randn(hidden, generator=gen, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(hidden, dim, generator=gen, dtype=torch.float64) / math.sqrt(hidden))

    def forward(self, x):
        return torch.tanh(x @ self.w1 + self.b1) @ self.w2 - 0.3 * x
