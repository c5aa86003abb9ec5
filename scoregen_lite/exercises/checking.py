"""How an exercise check compares a student's answer and reports (used by ``sg.exercises`` and
``sg.exercises.methods``): ``compare`` against the reference with a catalogue of known mistakes, ``passed``,
and ``ExerciseFailed``, the error whose message is what teaches."""
from __future__ import annotations

import math

import torch

__all__ = ["ExerciseFailed", "passed", "fmt", "compare"]


class ExerciseFailed(AssertionError):
    """An exercise check failed; the message says what was expected.

    In Jupyter (and so in nbgrader's autograded notebooks and their feedback) it shows as that message alone,
    without a traceback into the checking code: the message is what teaches."""

    def _render_traceback_(self):      # IPython's hook for how an exception is shown
        return [f"ExerciseFailed: {self}"]


def passed(name: str, detail: str) -> None:
    print(f"\u2705 {name}: passed ({detail}).")


def fmt(v, digits: int = 4) -> str:
    v = v.detach().double().flatten().tolist() if isinstance(v, torch.Tensor) else [float(v)]
    return "(" + ", ".join(f"{a:.{digits}g}" for a in v[:4]) + (", ..." if len(v) > 4 else "") + ")" if len(v) > 1 \
        else f"{v[0]:.{digits}g}"


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
        row = (lambda v: v[i].reshape(-1)[j])
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
