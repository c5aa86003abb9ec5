"""Exercise checks of notebook 06, ``notebooks/06_sdes.ipynb``: the VE kernel's std, one reverse
Euler-Maruyama step of eq. (7), the whole reverse-SDE sampler, and eq. (8) as a loss."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, at_point, compare, compare_loss, fmt, passed, points, points_of

__all__: list[str] = ["check_ve_std", "check_em_step", "check_em_sampler", "check_dsm_loss"]


@points(1)
def check_ve_std(fn) -> None:
    """Check ``fn(t, sigma_min, sigma_max)``: the VE kernel's std, sqrt(sigma(t)^2 - sigma_min^2)
    with sigma(t) = sigma_min (sigma_max/sigma_min)^t (notebook 06).

    Recognised mistakes: the variance without the square root, sigma(t) without removing sigma_min^2,
    and sigma(t)^2 - sigma_min^2 computed as (sigma(t) - sigma_min)."""
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
    for smin, smax in ((0.01, 10.0), (0.1, 50.0)):
        sig = smin * (smax / smin) ** t
        want = torch.sqrt(sig**2 - smin**2)
        mistakes = [(sig**2 - smin**2, "that is the variance: take its square root"),
                    (sig, "that is sigma(t) itself; the kernel starts at x(0), which already carries sigma_min, so "
                          "its variance is sigma(t)^2 - sigma_min^2"),
                    (sig - smin, "sigma(t) - sigma_min subtracts the stds; variances add, so subtract sigma_min^2 from "
                                 "sigma(t)^2 and take the root")]
        compare("ve_std", fn(t, smin, smax), want, 1e-6 * smax, f"sigma_min={smin}, sigma_max={smax}",
                 mistakes=mistakes, where=lambda i: f"t = {float(t[i]):.3g}")
    passed("ve_std", "the VE marginal std at four times for two ladders")


@points(2)
def check_em_step(fn) -> None:
    """Check ``fn(x, t, dt, score, sde, z)``: one Euler-Maruyama step of the reverse SDE, eq. (7),
    x + [f(x, t) - g(t)^2 score] dt + g(t) sqrt(|dt|) z with dt < 0 (notebook 06).

    Recognised mistakes: noise not scaled by sqrt(|dt|), the probability-flow drift (1/2 g^2) in an SDE
    step, the score term with the wrong sign, and a dropped noise term."""
    from ..core.sde import VESDE, VPSDE

    gen = torch.Generator().manual_seed(6)
    x, s, z = (torch.randn(16, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    for sde in (VPSDE(), VESDE(0.01, 10.0)):
        t, dt = 0.7, -0.01
        tv = torch.full((16,), t, dtype=torch.float64)
        g = sde.diffusion(tv)[:, None]
        f = sde.drift(x, tv)
        want = x + (f - g**2 * s) * dt + g * math.sqrt(-dt) * z
        mistakes = [(x + (f - g**2 * s) * dt + g * z, "the noise is g z: a Brownian increment over |dt| has std "
                                                       "sqrt(|dt|), so the noise is g sqrt(|dt|) z"),
                    (x + (f - g**2 * s) * dt + g * (-dt) * z, "the noise is scaled by |dt|; Brownian noise grows like "
                                                               "sqrt(|dt|)"),
                    (x + (f - 0.5 * g**2 * s) * dt + g * math.sqrt(-dt) * z, "that drift, f - (1/2) g^2 score, is the "
                     "probability-flow ODE's; the reverse SDE, eq. (7), has f - g^2 score"),
                    (x + (f + g**2 * s) * dt + g * math.sqrt(-dt) * z, "the score term has the wrong sign: eq. (7)'s "
                     "drift is f - g^2 score, and with dt < 0 that moves x up the score"),
                    (x + (f - g**2 * s) * dt, "the noise term is missing: without it this is not an SDE step (and not "
                                              "the ODE either, whose drift has 1/2 g^2)")]
        # relative 1e-6: a float32 time (torch.full((n,), t) without a dtype) is right; every mistake is >= 1e-2 away
        compare("em_step", fn(x, t, dt, s, sde, z),
                want, 1e-6 * float(want.abs().max()), f"eq. (7) for the {sde.name} SDE, t={t}, dt={dt}",
                mistakes=mistakes, where=lambda i: at_point(x, i))
    passed("em_step", "one reverse Euler-Maruyama step of eq. (7) for the VP and VE SDEs")


def _em_reference(sde, score_fn, x, n_steps, t_min, zs, *, grid=None, last_noise=False, score_at_next=False,
                  ode=False, at_end=None, skip_first_noise=False, next_noise=False, positive_dt=False,
                  noise_scale="sqrt"):
    """The reverse Euler-Maruyama loop of ``check_em_sampler`` (and its catalogued mistakes): ``at_end`` "all"
    evaluates drift, g and score at the step's end time (a loop over ts[1:]), "g_score" g and the score there;
    ``skip_first_noise`` leaves out the first step's noise instead of the last's; ``next_noise`` uses zs[k + 1];
    ``positive_dt`` steps with |dt| (time running forwards); ``noise_scale`` "dt" or "none" for sqrt(|dt|)."""
    ts = torch.linspace(1.0, t_min, n_steps + (0 if grid == "short" else 1), dtype=torch.float64).tolist()
    for k in range(len(ts) - 1):
        t, dt = ts[k], ts[k + 1] - ts[k]
        tv = torch.full((x.shape[0],), t, dtype=x.dtype)
        te = torch.full_like(tv, ts[k + 1])
        g = sde.diffusion(te if at_end in ("all", "g_score") else tv)[:, None]
        s = score_fn(x, te if (score_at_next or at_end in ("all", "g_score")) else tv)
        step = -dt if positive_dt else dt
        x = x + (sde.drift(x, te if at_end == "all" else tv) - (0.5 if ode else 1.0) * g**2 * s) * step
        noisy = (k > 0) if skip_first_noise else (k < len(ts) - 2 or last_noise)
        if noisy and noise_scale != "none":
            scale = math.sqrt(-dt) if noise_scale == "sqrt" else -dt
            x = x + g * scale * zs[k + 1 if next_noise else k]
    return x


_EM_RTOL = 1e-5   # float32 times shift the result by at most 2e-6 of its size; the nearest mistake by 1e-2


def _near_miss(name, failure, got, want, atol, what, where) -> None:
    """Re-raise ``failure``; when the answer is within 1e-3 relative of the reference but beyond ``atol`` (and no
    catalogued mistake matched), print the values with enough digits to tell them apart and say what such a small
    gap usually is: arithmetic in lower precision, not a wrong formula."""
    if "rows are wrong" not in str(failure) or not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise failure
    diff = (got.detach().double() - want.double()).abs().reshape(want.shape[0], -1)
    err, scale = float(diff.max()), float(want.abs().max())
    if not (math.isfinite(err) and err <= 1e-3 * scale):
        raise failure
    i = int(diff.max(1).values.argmax())
    digits = lambda v: "(" + ", ".join(f"{a:.10g}" for a in v.detach().double().flatten().tolist()[:4]) + ")"  # noqa: E731
    raise ExerciseFailed(
        f"{name}: almost right: the largest error, {err:.3g}, is only {err / scale:.1e} of the result's size but "
        f"above the tolerance {atol:.3g}. At {where(i)}: expected {digits(want[i])}, got {digits(got[i])}. A gap "
        f"this small comes from precision, not from the formula: compute in the inputs' dtype (float64 here; "
        f"torch.full and torch.linspace default to float32 unless given dtype=) ({what}).") from None


@points(2)
def check_em_sampler(fn) -> None:
    """Check ``fn(sde, score_fn, x1, n_steps, t_min, zs) -> x``: the whole reverse-SDE sampler of eq. (7) with
    Euler-Maruyama (notebook 06): from x = x1 at t = 1, ``n_steps`` even steps down to ``t_min`` on the grid
    ``torch.linspace(1, t_min, n_steps + 1)``, each x <- x + [f - g^2 s(x, t)] dt + g sqrt(|dt|) zs[k] at the
    step's start time t, except the last, which adds no noise (as ``sg.samplers.euler_maruyama``). The tolerance,
    1e-5 of the result's size, accepts times rounded to float32 (the grid exactly as the text writes it, in
    torch's default dtype); an answer a little further off is told so, with its values to ten digits.

    Recognised mistakes: noise added on the last step too, or left out on the first instead of the last; a grid
    of n_steps points (one step short); the score taken at the step's end time; the whole step (drift, g and score)
    or g and the score taken at the end time (a loop over ``ts[1:]``); ``zs[k + 1]`` as step k's noise; a positive
    dt (time running forwards); noise scaled by |dt| instead of sqrt(|dt|), or no noise at all; and the
    probability-flow drift (1/2 g^2) in an SDE sampler."""
    from ..core.densities import SDEMarginal, two_modes
    from ..core.sde import VESDE, VPSDE

    gen = torch.Generator().manual_seed(12)
    n_steps, t_min = 6, 1e-3
    for sde in (VPSDE(), VESDE(0.01, 10.0)):
        score_fn = SDEMarginal(two_modes(torch.float64), sde).score
        x1 = sde.prior_sample((12, 2), generator=gen, dtype=torch.float64)
        zs = torch.randn(n_steps, 12, 2, generator=gen, dtype=torch.float64)
        want = _em_reference(sde, score_fn, x1, n_steps, t_min, zs)
        mistakes = [(_em_reference(sde, score_fn, x1, n_steps, t_min, zs, last_noise=True),
                     "the last step adds noise: no later step can remove it, so the last step returns the mean "
                     "(use zs[k] for every step but the last)"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, grid="short"),
                     "the time grid has n_steps points, so n_steps - 1 steps: n_steps steps need n_steps + 1 times, "
                     "torch.linspace(1, t_min, n_steps + 1)"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, score_at_next=True),
                     "the score is taken at the step's end time t + dt: Euler-Maruyama evaluates everything at the "
                     "start of the step, t"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, at_end="all"),
                     "every term of the step is evaluated at its end time t_{k+1} (as a loop over ts[1:] does): "
                     "Euler-Maruyama freezes the drift, g and the score at the step's START time t_k = ts[k] and "
                     "moves to ts[k + 1]; evaluating at the end would need x at the end, which the step is computing"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, at_end="g_score"),
                     "g and the score are taken at t_{k+1}, where the step ends: Euler-Maruyama evaluates every "
                     "coefficient, the drift, g and the score, at t_k = ts[k], where the step starts"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, skip_first_noise=True),
                     "the noise is left out of the first step instead of the last: every step adds g sqrt(|dt|) "
                     "zs[k] except the last one (k = n_steps - 1), whose noise nothing could remove"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, next_noise=True),
                     "step k uses zs[k + 1]: the noise of step k is zs[k], counting from k = 0 at t = 1"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, positive_dt=True),
                     "the step moves with dt > 0, forwards in time: going from t = 1 down to t_min, "
                     "dt = ts[k + 1] - ts[k] is negative, and the drift term is (f - g^2 score) dt with that dt"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, noise_scale="dt"),
                     "the noise is scaled by |dt|: a Brownian increment over time |dt| has std sqrt(|dt|), so the "
                     "noise term is g sqrt(|dt|) zs[k]"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, noise_scale="none"),
                     "no step adds noise: eq. (7) is a stochastic differential equation, and every step but the last "
                     "adds g sqrt(|dt|) zs[k] (the deterministic sampler is the probability-flow ODE, with (1/2) g^2)"),
                    (_em_reference(sde, score_fn, x1, n_steps, t_min, zs, ode=True),
                     "that drift, f - (1/2) g^2 score, is the probability-flow ODE's; with noise, eq. (7) needs "
                     "f - g^2 score")]
        got = fn(sde, score_fn, x1.clone(), n_steps, t_min, zs)
        scale = float(want.abs().max())
        what = f"{n_steps} steps of eq. (7) for the {sde.name} SDE from t=1 to t_min={t_min}"
        where = lambda i: "chain " + str(i) + " starting at x1 = " + fmt(x1[i])  # noqa: E731
        try:   # 1e-5 relative: times rounded to float32 (a grid or t_vec in torch's default dtype) still pass
            compare("em_sampler", got, want, _EM_RTOL * scale, what, mistakes=mistakes, where=where)
        except ExerciseFailed as failure:
            _near_miss("em_sampler", failure, got, want, _EM_RTOL * scale, what, where)
    passed("em_sampler", "six reverse Euler-Maruyama steps of eq. (7) for the VP and VE SDEs, last one without noise")


class _TinyScoreNet(torch.nn.Module):
    """A small fixed network s(x, t) for ``check_dsm_loss`` (float64, with parameters, so the loss has a gradient)."""

    def __init__(self, dim: int):
        super().__init__()
        gen = torch.Generator().manual_seed(13)
        self.w = torch.nn.Parameter(torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim)
        self.b = torch.nn.Parameter(torch.randn(dim, generator=gen, dtype=torch.float64))

    def forward(self, x, t):
        return torch.tanh(x @ self.w + self.b) / (0.1 + t[:, None])


@points(2)
def check_dsm_loss(fn) -> None:
    """Check ``fn(score_net, x0, sde, t, z) -> loss``: eq. (8) with lambda(t) = sigma_t^2 on given times and noise
    (notebook 06): x_t = alpha_t x0 + sigma_t z, and the batch mean of || sigma_t s(x_t, t) + z ||^2 (summed over
    the coordinates), a 0-d tensor that still carries the network's gradient. This is noise prediction
    ("epsilon-prediction", Ho et al. 2020): -sigma_t s(x_t, t) estimates the noise z. As ``sg.losses.sde_dsm``.

    Recognised mistakes: lambda = 1 (|| s + z / sigma_t ||^2), the target's sign (sigma_t s - z), x_t without
    alpha_t, the mean over coordinates instead of their sum, and a factor 1/2 that eq. (8) does not have."""
    from ..core.sde import VESDE, VPSDE

    gen = torch.Generator().manual_seed(14)
    x0 = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    net = _TinyScoreNet(3)
    for sde in (VPSDE(), VESDE(0.01, 10.0)):
        with torch.no_grad():
            alpha, std = (v[:, None] for v in sde.marginal_coeffs(t))
            xt = alpha * x0 + std * z
            s = net(xt, t)
            per = lambda r: r.pow(2).sum(1).mean()  # noqa: E731
            want = per(std * s + z)
            mistakes = [(per(s + z / std), "that is lambda = 1: eq. (8) weights each term by lambda(t) = sigma_t^2, "
                                           "i.e. || sigma_t s + z ||^2, so no noise level dominates"),
                        (per(std * s - z), "the sign: the kernel's score is -z / sigma_t, so the error is "
                                           "sigma_t s + z"),
                        (per(std * net(x0 + std * z, t) + z), "x_t = alpha_t x0 + sigma_t z: the kernel's mean is "
                                                               "alpha_t x0 (alpha_t < 1 for the VP SDE)"),
                        ((std * s + z).pow(2).mean(), "the mean over all entries divides by the dimension too: sum "
                                                       "the squared error over the coordinates, then average over the "
                                                       "batch"),
                        (0.5 * want, "eq. (8) has no factor 1/2 in front")]
        got = fn(net, x0, sde, t, z)
        compare_loss("dsm_loss", got, want, f"eq. (8) for the {sde.name} SDE on a batch of 32", mistakes=mistakes)
    passed("dsm_loss", "eq. (8) with lambda = sigma_t^2 for the VP and VE SDEs, with its gradient")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
