"""Exercise checks of notebook 03, ``notebooks/03_denoising_score_matching.ipynb``: the DSM target, the
denoising score matching loss, eq. (3) at one sigma, and one optimiser step on it (reference
``sg.losses.denoising_score_matching``, its noise handed to the student's function)."""
from __future__ import annotations

import copy

import torch

from .checking import ExerciseFailed, TinyNet, compare, compare_loss, fmt, passed, points, points_of

__all__: list[str] = ["check_dsm_target", "check_denoising_score_matching", "check_dsm_step"]


@points(1)
def check_dsm_target(fn) -> None:
    """Check ``fn(x_tilde, x, sigma)`` equals grad_{x~} log N(x~; x, sigma^2 I) = -(x~ - x)/sigma^2 (notebook 03).

    Recognised mistakes: the sign, sigma instead of sigma^2, and the noise z = (x~ - x)/sigma itself."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    for sigma in (0.1, 2.0):
        xt = x + sigma * torch.randn(32, 2, generator=gen, dtype=torch.float64)
        want = -(xt - x) / sigma**2
        mistakes = [(-want, "the sign is flipped: the target points from the noisy point back to the clean one"),
                    (-(xt - x) / sigma, "divided by sigma: the Gaussian's log-density has (x~ - x)^2 / (2 sigma^2), so "
                                        "its gradient divides by sigma^2"),
                    ((xt - x) / sigma, "that is the noise z = (x~ - x)/sigma; the target is -z / sigma")]
        compare("dsm_target", fn(xt, x, sigma), want, 1e-9, f"sigma={sigma}", mistakes=mistakes,
                 where=lambda i: f"x~ = {fmt(xt[i])}, x = {fmt(x[i])}")
    passed("dsm_target", "matches -(x~ - x) / sigma^2 for sigma = 0.1 and 2")


def _dsm_value(net, x, sigma, z, *, sign=1.0, target="sigma2", half=0.5, reduce="sum", at="noisy", perturb="sigma"):
    """Eq. (3) with Gaussian noise given, and the catalogued mistakes of ``check_denoising_score_matching``."""
    step = {"sigma": sigma, "one": 1.0, "sigma2": sigma**2}[perturb]
    x_tilde = x + step * z
    s = net(x_tilde if at == "noisy" else x)
    tgt = -(x_tilde - x) / (sigma**2 if target == "sigma2" else sigma)
    r = (s - sign * tgt).pow(2)
    return half * (r.sum(1).mean() if reduce == "sum" else r.mean())


@points(2)
def check_denoising_score_matching(fn) -> None:
    """Check ``fn(score_net, x, sigma, z) -> loss``: denoising score matching, eq. (3) (eq. (4) at one level),
    with the noise given (notebook 03): x~ = x + sigma z, and the batch mean of
    (1/2) || s(x~) + (x~ - x) / sigma^2 ||^2 (summed over the coordinates), a 0-d tensor that still carries the
    network's gradient. The reference is ``sg.losses.denoising_score_matching`` fed the same noise.

    Recognised mistakes: the target's sign, (x~ - x)/sigma (sigma where sigma^2 belongs), z / sigma^2 (x~ - x
    taken as z), no 1/2, the mean over coordinates instead of their sum, the network at the clean x, x~ = x + z
    (the noise not scaled) and x~ = x + sigma^2 z (the variance as the std)."""
    from ..core.losses import denoising_score_matching

    gen = torch.Generator().manual_seed(41)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    net = TinyNet(3, seed=42)
    for sigma, seed in ((0.3, 43), (2.0, 44)):
        want = denoising_score_matching(net, x, sigma, generator=torch.Generator().manual_seed(seed))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        run = lambda **kw: _dsm_value(net, x, sigma, z, **kw).detach()  # noqa: E731
        with torch.no_grad():
            mistakes = [(run(sign=-1.0), "the target's sign: the kernel's score -(x~ - x) / sigma^2 points from x~ "
                                         "back to x, so the error is s(x~) + (x~ - x) / sigma^2"),
                        (run(target="sigma"), "the target divides by sigma: the score of N(x, sigma^2 I) at x~ is "
                                              "-(x~ - x) / sigma^2"),
                        (run(perturb="one"), "x~ = x + z: z is standard normal, scale it by sigma (x~ = x + sigma "
                                             "z)"),
                        (run(half=1.0), "the 1/2 of eq. (3) is missing"),
                        (run(reduce="mean"), "the mean over all entries divides by the dimension too: sum the "
                                             "squared error over the coordinates, then average over the batch"),
                        (run(at="clean"), "the network is evaluated at the clean x: DSM asks s(x~) at the noisy "
                                          "point to point back to x"),
                        (run(perturb="sigma2"), "x~ = x + sigma^2 z: sigma is the noise's standard deviation, so "
                                                "x~ = x + sigma z"),
                        (0.5 * ((net(x + sigma * z) + z / sigma**2).pow(2).sum(1).mean()).detach(),
                         "the target -z / sigma^2 takes x~ - x as z: x~ - x = sigma z, so the target is "
                         "-(x~ - x) / sigma^2 = -z / sigma")]
        got = fn(net, x.clone(), sigma, z.clone())
        compare_loss("denoising_score_matching", got, want, f"eq. (3) at sigma = {sigma} on a batch of 32 points "
                     f"in 3D", mistakes=mistakes)
    passed("denoising_score_matching", "eq. (3) at sigma = 0.3 and 2, with its gradient")


def _dsm_step_reference(net, optimizer, x, sigma, seed, *, zero=True, step=True):
    """One optimiser step on ``sg.losses.denoising_score_matching`` (noise from ``seed``), as ``check_dsm_step``
    expects it, and its catalogued mistakes."""
    from ..core.losses import denoising_score_matching

    if zero:
        optimizer.zero_grad(set_to_none=True)
    loss = denoising_score_matching(net, x, sigma, generator=torch.Generator().manual_seed(seed))
    loss.backward()
    if step:
        optimizer.step()
    return loss.item()


@points(2)
def check_dsm_step(fn) -> None:
    """Check ``fn(score_net, optimizer, loss_fn, x, sigma, z) -> float``: one optimiser step (notebook 03): clear the
    old gradients, ``loss = loss_fn(score_net, x, sigma, z)`` (eq. (3) with the noise given, the loss of
    ``check_denoising_score_matching``), backpropagate, take the optimiser's step, and return the loss before the
    step as a Python float. Checked on a small network with Adam, over three steps from the same start, each on its
    own batch and noise; the reference loss is ``sg.losses.denoising_score_matching`` fed the same noise.

    Recognised mistakes: gradients never cleared (they add up over steps), no optimiser step or one that sees no
    gradient (zero_grad between backward and step), a tensor returned instead of a float, and the loss returned
    after the step."""
    gen = torch.Generator().manual_seed(51)
    xs = torch.randn(3, 32, 3, generator=gen, dtype=torch.float64)
    sigma, seeds = 0.5, (52, 53, 54)
    start = TinyNet(3, seed=55)

    def run(step_fn, reference):
        net = copy.deepcopy(start)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        losses = []
        for x, seed in zip(xs, seeds):
            if reference is not None:
                losses.append(step_fn(net, opt, x, sigma, seed, **reference))
            else:
                z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                losses.append(step_fn(net, opt, _dsm_value, x.clone(), sigma, z))
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])[None], losses

    want, want_losses = run(_dsm_step_reference, {})
    got, got_losses = run(fn, None)
    if not all(isinstance(v, float) for v in got_losses):
        kinds = sorted({type(v).__name__ for v in got_losses})
        raise ExerciseFailed(f"dsm_step: it returned {', '.join(kinds)}; expected the loss as a Python float "
                             f"(loss.item()), so that a training loop does not keep every step's graph alive.")
    mistakes = [(run(_dsm_step_reference, {"zero": False})[0],
                 "the gradients are never cleared: backward() adds to .grad, so each step also applies all earlier "
                 "gradients; call optimizer.zero_grad() before backward()"),
                (run(_dsm_step_reference, {"step": False})[0],
                 "the weights never change: call optimizer.step() after backward(), before the gradients are "
                 "cleared again")]
    compare("dsm_step", got, want, 1e-10, "the weights after three steps of Adam on eq. (3) from the same start",
            mistakes=mistakes, where=lambda i: "the flattened weights")
    for k, (g, w) in enumerate(zip(got_losses, want_losses)):
        if abs(g - w) > 1e-9 * abs(w):
            raise ExerciseFailed(f"dsm_step: at step {k + 1} the returned loss is {g:.6g}; expected the loss before "
                                 f"the step, {w:.6g} (return loss.item() of the loss you backpropagated).")
    passed("dsm_step", "three steps of Adam on eq. (3), the loss returned as a float")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
