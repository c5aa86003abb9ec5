"""Exercise checks of notebook 11, ``notebooks/11_flow_matching.ipynb``: the conditional flow matching loss, the whole
Euler flow sampler, and the straight path's velocity from a score. Re-exported by ``sg.exercises``, so notebooks call
``sg.exercises.check_...``; each check's nbgrader points are declared beside it with ``@points``.

Each check compares the student's function with the package's reference (``sg.flow.cfm_loss``, ``sg.flow.euler_flow``,
``sg.flow.velocity_from_score``) on 2D Gaussian mixtures, whose velocity and score are exact
(``sg.flow.marginal_velocity``, ``sg.flow.marginal_score``). Random draws are given to the student's function as
arguments (replayed from the reference's seed), so the comparison is exact, and a catalogue of plausible mistakes,
each computed on the same inputs, gives a hint that teaches."""
from __future__ import annotations

import functools

import torch

from .checking import ExerciseFailed, compare, compare_loss, fmt, passed, points, points_of

__all__: list[str] = ["check_cfm_loss", "check_euler_flow", "check_velocity_from_score"]

_BROADCAST = ("t has shape (n,), one time per row, and x has shape (n, D): scale the rows with t[:, None] (shape "
              "(n, 1)), so that each point gets its own time; t * x lines t up with the coordinates instead")


def _time_argument(name: str, t, x) -> None:
    """Refuse a time that is not one float time per row of x, as the course's velocity functions take it."""
    if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
        got = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ExerciseFailed(f"{name}: the function was called with t of {got}; it takes t as a tensor of shape "
                             f"({x.shape[0]},), one time per row of x (torch.full((n,), t, dtype=x.dtype) for one time "
                             f"shared by every point, or t itself, not t[:, None]).")


def _broadcast_error(name: str, err: RuntimeError) -> None:
    """Turn torch's size-mismatch error (t of shape (n,) times x of shape (n, D)) into the hint that explains it."""
    if "size of tensor" in str(err) or "must match the size" in str(err):
        raise ExerciseFailed(f"{name}: torch could not broadcast ({err}): {_BROADCAST}.") from None


# ---------------------------------------------------------------------------------- the conditional FM loss
class _TinyVelocityNet(torch.nn.Module):
    """A small fixed velocity network v(x, t) for ``check_cfm_loss`` (float64, with parameters, so that the loss has
    a gradient; it depends on t, so that a wrong time shows). It refuses a t that is not (n,), naming the fix."""

    def __init__(self, dim: int, seed: int, hidden: int = 8):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(torch.randn(dim, hidden, generator=gen, dtype=torch.float64) / dim**0.5)
        self.b1 = torch.nn.Parameter(torch.randn(hidden, generator=gen, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(hidden, dim, generator=gen, dtype=torch.float64) / hidden**0.5)

    def forward(self, x, t):
        _time_argument("cfm_loss: net(x_t, t)", t, x)
        return torch.tanh(x @ self.w1 + 2.0 * t[:, None] * self.b1) @ self.w2 - 0.3 * x


def _cfm_value(net, x0, t, z, *, path="straight", at="x_t", target="z - x0", net_t="t", reduce="sum-mean",
               shared_t=False, half=False):
    """The conditional flow matching loss on given draws, or with one catalogued mistake (``check_cfm_loss``)."""
    if shared_t:
        t = t[:1].expand(x0.shape[0])
    tb = t[:, None]
    xt = (1 - tb) * x0 + tb * z if path == "straight" else tb * x0 + (1 - tb) * z
    v = net({"x_t": xt, "x0": x0}[at], {"t": t, "1-t": 1 - t}[net_t])
    goal = {"z - x0": z - x0, "x0 - z": x0 - z, "x_t": xt, "z": z}[target]
    sq = (v - goal).pow(2)
    value = {"sum-mean": sq.sum(1).mean(), "sum-sum": sq.sum(), "mean": sq.mean(),
             "norm": sq.sum(1).sqrt().mean()}[reduce]
    return 0.5 * value if half else value


@points(3)
def check_cfm_loss(fn) -> None:
    """Check ``fn(net, x0, t, z) -> loss``: the conditional flow matching loss on given draws (Lipman et al. 2023,
    eq. (9), and Liu et al. 2023, eq. (1), both with time reversed; notebook 11): for each row i, x_t = (1 - t_i)
    x0_i + t_i z_i (data at t = 0, noise at t = 1), and the batch mean of || net(x_t, t) - (z - x0) ||^2, summed
    over the coordinates, no 1/2: a 0-d tensor that carries the network's gradient. ``x0`` (n, D) are data points
    of a mixture (3D, then 2D), ``t`` (n,) the times drawn from U(0, 1), ``z`` (n, D) the noise; ``net(x, t)``
    takes t of shape (n,). As ``sg.flow.cfm_loss`` fed the same draws.

    Recognised mistakes: the target x0 - z (the velocity of the other time direction), the path t x0 + (1 - t) z
    (reversed), the target x_t itself (standing in for the marginal velocity, which training never sees), the
    target z (noise prediction), the network evaluated at x0, the network given 1 - t, one time for the whole batch,
    the sum over the batch, the mean over the coordinates, a factor 1/2, the norm not squared, no reduction (a loss
    per row), t not broadcast over the coordinates (t instead of t[:, None]), and a loss without gradient."""
    from ..core.densities import ring
    from ..core.flow import cfm_loss
    from ..core.mixture import GaussianMixture

    # 3D first: in 2D the mean over the coordinates is exactly the factor 1/2, and could not be told from it
    three_d = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[2.0, 0.0, -1.0], [-1.0, 1.0, 2.0]]),
                              torch.tensor([0.25, 0.5])).to(dtype=torch.float64)
    for target, seed in ((three_d, 111), (ring(dtype=torch.float64), 112)):
        gen = torch.Generator().manual_seed(seed)
        x0 = target.sample(24, generator=gen)
        t = torch.rand(24, generator=gen, dtype=torch.float64)
        net = _TinyVelocityNet(target.dim, seed=seed + 10)
        want = cfm_loss(net, x0, generator=torch.Generator().manual_seed(seed + 20), t=t)
        z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + 20), dtype=torch.float64)  # its draw
        run = lambda **kw: _cfm_value(net, x0, t, z, **kw)  # noqa: E731
        with torch.no_grad():
            mistakes = [
                (run(target="x0 - z"), "the target is x0 - z: on this path, x_t = (1 - t) x0 + t z runs from the data "
                                       "(t = 0) to the noise (t = 1), so d x_t / dt = z - x0 (x0 - z is the velocity "
                                       "of Lipman et al.'s time, which runs the other way)"),
                (run(path="reversed"), "the path is t x0 + (1 - t) z, which puts the noise at t = 0: the course's path "
                                       "is x_t = (1 - t) x0 + t z, data at t = 0 and noise at t = 1 (as its SDEs)"),
                (run(target="x_t"), "the target is x_t itself: the marginal velocity v_t(x_t) is unknown, and the point "
                                    "of the conditional loss is that it need not be known: regress on the conditional "
                                    "velocity z - x0 of each pair, whose average given x_t is v_t (as DSM in notebook "
                                    "03 regresses on the kernel's score)"),
                (run(target="z"), "the target is the noise z (noise prediction, DDPM's loss): the velocity target is "
                                  "z - x0, the derivative of the path"),
                (run(at="x0"), "the network is evaluated at the data x0: it must see the point on the path, "
                               "x_t = (1 - t) x0 + t z, where its velocity will be asked for when sampling"),
                (run(net_t="1-t"), "the network gets 1 - t: give it the path's own time t (noise at t = 1), the time "
                                   "the sampler will pass"),
                (run(shared_t=True), "every row uses the same time t[0]: each pair (x0_i, z_i) has its own time t_i, "
                                     "so that one batch covers the whole of [0, 1]"),
                (run(reduce="sum-sum"), "the loss is summed over the batch: take the mean over the batch (the sum "
                                        "grows with the batch size, and so does the step a learning rate makes)"),
                (run(reduce="mean"), "the mean over all entries divides by the dimension too: sum the squared error "
                                     "over the coordinates, then average over the batch"),
                (run(half=True), "the loss has a factor 1/2 that the course's flow matching loss does not have "
                                 "(sg.flow.cfm_loss, like eq. (8), has none)"),
                (run(reduce="norm"), "the norm is not squared: the loss is the mean of || v - (z - x0) ||^2, whose "
                                     "minimiser is the conditional mean E[z - x0 | x_t], the marginal velocity")]
        try:
            got = fn(net, x0.clone(), t.clone(), z.clone())
        except RuntimeError as err:
            _broadcast_error("cfm_loss", err)
            raise
        compare_loss("cfm_loss", got, want, f"the conditional flow matching loss on a batch of 24 points of a "
                     f"{target.dim}D mixture", mistakes=mistakes,
                     mean="the batch mean of the squared error summed over the coordinates")
    passed("cfm_loss", "|| v(x_t, t) - (z - x0) ||^2 on the straight path, summed over coordinates, batch mean, "
                       "with its gradient, on a 3D and a 2D mixture")


# ---------------------------------------------------------------------------------------------- Euler flow
def euler_flow_reference(velocity_fn, z, n_steps, *, forward=False, upward=False, short=False, linspace_n=False,
                         at_end=False, once=False, flipped_time=False):
    """The Euler flow sampler of ``check_euler_flow`` (the answer of notebook 11's exercise) and, through the flags,
    its catalogued mistakes: from x = z at t = 1, for k = 0, ..., N - 1 with t_k = 1 - k / N,

        x <- x + (t_{k+1} - t_k) v(x, t_k) = x - v(x, t_k) / N,

    returning x at t = 0. As ``sg.flow.euler_flow``. Introduced in notebooks/11_flow_matching.ipynb."""
    n = z.shape[0]
    steps = n_steps - 1 if linspace_n else n_steps
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
    if upward:                                              # Lipman et al.'s time: t from 0 up to 1
        ts = [1.0 - s for s in ts]
    x = z.clone()
    v0 = None
    for k in range(steps - 1 if short else steps):
        t, t_next = ts[k], ts[k + 1]
        h = abs(t_next - t) if (forward or upward) else t_next - t
        at = t_next if at_end else t
        at = 1.0 - at if flipped_time else at
        if once and v0 is not None:
            v = v0
        else:
            v = velocity_fn(x, torch.full((n,), at, dtype=x.dtype))
            v0 = v
        x = x + h * v
    return x


@points(3)
def check_euler_flow(fn) -> None:
    """Check ``fn(velocity_fn, z, n_steps) -> x``: the whole Euler sampler of the flow's ODE dx/dt = v_t(x)
    (notebook 11): from x = z (n, 2) at t = 1 (the noise), ``n_steps`` = N even steps down to t = 0 (the data) on
    the grid t_k = 1 - k / N, k = 0, ..., N (``torch.linspace(1, 0, N + 1)``): x <- x + (t_{k+1} - t_k) v(x, t_k),
    with ``velocity_fn(x, t)`` given t of shape (n,) (``torch.full((n,), t_k, dtype=x.dtype)``); return x at t = 0,
    shape (n, 2), without changing z. ``velocity_fn`` is the exact marginal velocity of a 2D mixture
    (``sg.flow.marginal_velocity``); the reference is ``sg.flow.euler_flow``. The tolerance, 1e-6 of the result's
    size, accepts times rounded to float32.

    Recognised mistakes: the step taken forwards in time (+|dt| v), the loop run in Lipman et al.'s time (t from 0
    up to 1), one step short (x returned at t = 1 / N), a grid of N points (``linspace(1, 0, N)``: N - 1 steps), the
    velocity taken at the step's end time t_{k+1}, the velocity computed once, the velocity given 1 - t, t passed as
    a float or as (n, 1), the whole path returned, a tuple returned, and z changed in place."""
    from ..core.densities import ring, two_modes
    from ..core.flow import euler_flow, marginal_velocity

    for target, n_steps, seed in ((two_modes(torch.float64), 5, 121), (ring(dtype=torch.float64), 8, 122)):
        exact = functools.partial(marginal_velocity, target)
        z = torch.randn(10, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        want, _ = euler_flow(exact, z, n_steps, dtype=torch.float64)
        run = lambda **kw: euler_flow_reference(exact, z, n_steps, **kw)  # noqa: E731
        mistakes = [
            (run(forward=True), "the step goes forwards in time: from t = 1 down to 0 the time step "
                                "dt = t_{k+1} - t_k = -1/N is negative, so x <- x + dt v(x, t_k) = x - v(x, t_k) / N"),
            (run(upward=True), "the loop runs t from 0 up to 1 (Lipman et al.'s direction): here the noise is at t = 1 "
                               "and the data at t = 0, so start at t = 1 with the noise and step down to t = 0"),
            (run(short=True), "one step short: the loop stops at t = 1/N and returns x there; N steps, for "
                              "k = 0, ..., N - 1 (range(n_steps)), reach t = 0"),
            (run(linspace_n=True), "the time grid has N points, so N - 1 steps: N steps need N + 1 times, "
                                   "torch.linspace(1, 0, n_steps + 1)"),
            (run(at_end=True), "the velocity is taken at the step's end time t_{k+1}: Euler's method evaluates it at "
                               "the start of the step, t_k, where x is"),
            (run(once=True), "the velocity is computed once, before the loop: evaluate v(x, t_k) at the current x "
                             "and t_k at every step"),
            (run(flipped_time=True), "the velocity is given 1 - t: velocity_fn takes the path's own time t, 1 at the "
                                     "noise and 0 at the data")]

        def student_velocity(x, t):
            _time_argument("euler_flow: velocity_fn(x, t)", t, x)
            if bool((t < -1e-9).any()) or bool((t > 1 + 1e-9).any()):      # a rounding error of t is no mistake
                raise ExerciseFailed(f"euler_flow: velocity_fn was called at t = {fmt(t[0])}, outside [0, 1]: the flow "
                                     f"runs from t = 1 (noise) down to t = 0 (data), t_k = 1 - k / N.")
            return exact(x, t.clamp(0.0, 1.0))

        z_in = z.clone()
        try:
            got = fn(student_velocity, z_in, n_steps)
        except RuntimeError as err:
            _broadcast_error("euler_flow", err)
            raise
        if isinstance(got, (tuple, list)):
            raise ExerciseFailed(f"euler_flow: your function returned a {type(got).__name__}; expected only x at t = 0, "
                                 f"a tensor of shape {tuple(z.shape)}.")
        if isinstance(got, torch.Tensor) and got.shape == (n_steps + 1, *z.shape):
            raise ExerciseFailed(f"euler_flow: your result has shape {tuple(got.shape)}, the whole path; return only x "
                                 f"at t = 0, shape {tuple(z.shape)}.")
        compare("euler_flow", got, want, 1e-6 * float(want.abs().max()),
                f"{n_steps} Euler steps of dx/dt = v_t(x) from t = 1 to 0 with the exact velocity of a 2D mixture",
                mistakes=mistakes, where=lambda i: "point " + str(i) + " starting from z = " + fmt(z[i]))
        if not torch.equal(z_in, z):
            raise ExerciseFailed("euler_flow: the result is right, but your function changed z in place (x = z then "
                                 "x += ... writes into z): start from x = z.clone() or write x = x + ...")
    passed("euler_flow", "5 and 8 Euler steps from t = 1 to 0 match sg.flow.euler_flow with the exact velocity")


# ------------------------------------------------------------------------------------- velocity from a score
@points(2)
def check_velocity_from_score(fn) -> None:
    """Check ``fn(score, x, t) -> v``: the straight path's velocity from the score of p_t (notebook 11),

        v = -(x + t score) / (1 - t),

    from x = (1 - t) E[x0 | x] + t E[z | x] and Tweedie's E[z | x_t = x] = -t grad log p_t(x). ``score`` and ``x``
    are (n, 2), ``t`` (n,) in (0, 1), one time per row; return v, (n, 2). Checked with the exact score of two 2D
    mixtures (``sg.flow.marginal_score``): the answer is then the exact marginal velocity
    (``sg.flow.marginal_velocity``); the reference is ``sg.flow.velocity_from_score``.

    Recognised mistakes: the overall sign, the missing 1 / (1 - t), t^2 for t (the variance for the std), score / t
    for t score, the score's sign, 1 / t for 1 / (1 - t), (1 - t) for t and 1 / t for 1 / (1 - t) (the inverse
    formula's shape), (1 - t)^2 in the denominator, x left out, and t not broadcast over the coordinates."""
    from ..core.densities import ring, two_modes
    from ..core.flow import marginal_score, velocity_from_score

    for target, seed in ((two_modes(torch.float64), 131), (ring(dtype=torch.float64), 132)):
        gen = torch.Generator().manual_seed(seed)
        n = 12
        t = torch.linspace(0.04, 0.96, n, dtype=torch.float64)[torch.randperm(n, generator=gen)]
        x0 = target.sample(n, generator=gen)
        x = (1 - t[:, None]) * x0 + t[:, None] * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        s = marginal_score(target, x, t)
        want = velocity_from_score(s, x, t)
        tb = t[:, None]
        mistakes = [((x + tb * s) / (1 - tb), "the sign: v = -(x + t score) / (1 - t); at t = 0 it is -x, from the "
                                              "data point x towards the noise's mean 0"),
                    (-(x + tb * s), "the division by 1 - t is missing: x = (1 - t) E[x0 | x] + t E[z | x] gives "
                                    "E[x0 | x] = (x + t^2 score) / (1 - t), and v = E[z | x] - E[x0 | x]"),
                    (-(x + tb**2 * s) / (1 - tb), "t^2 where t belongs: Tweedie's formula on this path is "
                                                  "E[z | x_t = x] = -t score (the noise's std t, not its variance t^2), "
                                                  "so v = -(x + t score) / (1 - t)"),
                    (-(x + s / tb) / (1 - tb), "score / t where t score belongs: E[z | x_t = x] = -t score "
                                               "(the score of N((1 - t) x0, t^2 I) is -z / t)"),
                    (-(x - tb * s) / (1 - tb), "the score's sign: E[z | x_t = x] = -t score, so v = -(x + t score) / "
                                               "(1 - t)"),
                    (-(x + tb * s) / tb, "the denominator is 1 - t, not t: v = (E[z | x] - x) / (1 - t)"),
                    (-(x + (1 - tb) * s) / tb, "that is the inverse formula's shape, score = -(x + (1 - t) v) / t, "
                                               "with v and the score swapped: solve it for v, v = -(x + t score) / "
                                               "(1 - t)"),
                    (-(x + tb * s) / (1 - tb) ** 2, "the denominator is 1 - t, not squared"),
                    (-tb * s / (1 - tb), "x is missing: v = E[z | x] - E[x0 | x] = (E[z | x] - x) / (1 - t) = "
                                         "-(x + t score) / (1 - t)")]
        try:
            got = fn(s.clone(), x.clone(), t.clone())
        except RuntimeError as err:
            _broadcast_error("velocity_from_score", err)
            raise
        compare("velocity_from_score", got, want, 1e-9 * float(want.abs().max()),
                "v = -(x + t score) / (1 - t) with the exact score of a 2D mixture", mistakes=mistakes,
                where=lambda i: f"row {i} (t = {float(t[i]):.3g}, x = {fmt(x[i])})")
    passed("velocity_from_score", "-(x + t score) / (1 - t) with the exact score gives the exact marginal velocity "
                                  "of two 2D mixtures")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
