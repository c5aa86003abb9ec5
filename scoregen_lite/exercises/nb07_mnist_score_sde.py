"""Exercise check of notebook 07, ``notebooks/07_mnist_score_sde.ipynb``: one training step of the U-Net
(clear the gradients, backpropagate, clip, step), as ``sg.train`` takes it."""
from __future__ import annotations

import torch

from .checking import ExerciseFailed, compare, passed, points, points_of

__all__: list[str] = ["check_train_step"]


def _train_reference(net, optimizer, loss_fn, max_norm, *, zero=True, clip=True, step=True):
    """One training step as ``check_train_step`` expects it (and its catalogued mistakes)."""
    if zero:
        optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(net)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    if step:
        optimizer.step()
    return loss.item()


@points(2)
def check_train_step(fn) -> None:
    """Check ``fn(net, optimizer, loss_fn, max_norm) -> float``: one training step (notebook 07), as
    ``sg.train`` takes it: clear the old gradients, ``loss = loss_fn(net)``, backpropagate, clip the gradients'
    total norm to ``max_norm`` (``torch.nn.utils.clip_grad_norm_``), take the optimiser's step, and return the loss
    as a Python float. Checked on a small network with Adam, over three steps from the same start.

    Recognised mistakes: gradients never cleared (they add up over steps), no clipping or clipping after the step
    (too late for it: the same weights), and no optimiser step (the weights never move)."""
    import copy

    gen = torch.Generator().manual_seed(15)
    x = torch.randn(64, 4, generator=gen, dtype=torch.float64)
    y = 10 * torch.randn(64, 2, generator=gen, dtype=torch.float64)       # large errors: the clipping bites

    def loss_fn(model):
        return (model(x) - y).pow(2).sum(1).mean()

    torch.manual_seed(15)
    start = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()

    def run(step_fn, **kw):
        net = copy.deepcopy(start)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        losses = [step_fn(net, opt, loss_fn, 1.0, **kw) for _ in range(3)]
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])[None], losses

    want, want_losses = run(_train_reference)
    got, got_losses = run(fn)
    if not all(isinstance(v, float) for v in got_losses):
        kinds = sorted({type(v).__name__ for v in got_losses})
        raise ExerciseFailed(f"train_step: it returned {', '.join(kinds)}; expected the loss as a Python float "
                             f"(loss.item()), so that the loop does not keep every step's graph alive.")
    mistakes = [(run(_train_reference, zero=False)[0], "the gradients are never cleared: backward() adds to .grad, "
                                                       "so each step also applies all earlier gradients; call "
                                                       "optimizer.zero_grad() first"),
                (run(_train_reference, clip=False)[0], "the step used unclipped gradients: clip their total norm to "
                                                       "max_norm with torch.nn.utils.clip_grad_norm_ between backward() "
                                                       "and optimizer.step() (after the step is too late)"),
                (run(_train_reference, step=False)[0], "the weights never change: call optimizer.step() after "
                                                       "backward()")]
    compare("train_step", got, want, 1e-10, "the weights after three steps of Adam from the same start",
             mistakes=mistakes, where=lambda i: "the flattened weights")
    if abs(got_losses[0] - want_losses[0]) > 1e-9 * abs(want_losses[0]):
        raise ExerciseFailed(f"train_step: the returned loss {got_losses[0]:.6g} is not loss_fn(net) before the step "
                             f"({want_losses[0]:.6g}).")
    passed("train_step", "three steps of Adam with gradient clipping, the loss returned as a float")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
