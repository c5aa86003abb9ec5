"""SDE and ODE solvers, the family of notebooks 06-08: reverse-time SDE samplers (Euler-Maruyama,
predictor-corrector), the probability-flow ODE with adaptive RK45 and its log-likelihood, and
the fast samplers in the noise level sigma: EDM's Heun / Euler (Karras et al. 2022) and
DPM-Solver++(2M) (Lu et al. 2022) on a ``karras_sigmas`` schedule.

Conventions. ``score_fn(x, t)`` takes a batch x of shape (n, ...) and times t of shape (n,) in
[0, 1], and returns a tensor of x's shape; every sampler takes ``(sde, score_fn, shape, ...)``,
is seeded by an optional ``torch.Generator`` and runs under ``torch.no_grad()``. Reachable as
``sg.samplers.<name>`` as well as ``sg.solvers.<name>``.
"""
from __future__ import annotations

import math
import time

import torch

from . import _checks
from ._checks import (SamplerDiverged, call_score, check_callable, check_finite, check_score_output,
                      progress_steps, randn_like)
from .schedules import karras_sigmas
from .sde import denoiser, per_sample

__all__ = [
    "forward_sde",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow_ode",
    "log_likelihood",
    "bits_per_dim",
    "rk45",
    "reverse_step",
    "sigma_schedule",
    "seconds_per_evaluation",
    "edm_sampler",
    "churn_etas",
    "dpm_solver_2m",
    "sample_batched",
    "SAMPLERS",
]


def _start(sde, shape, x_T, generator, device, dtype):
    if x_T is not None:
        return _checks.batch("x_T", x_T).clone()
    return sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)


def _tvec(x, t: float):
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)


def _em_step(sde, x, tv, s, dt: float, last: bool, generator):
    """One Euler-Maruyama step of eq. (7): x + [f - g^2 s] dt + g sqrt(|dt|) z; the last adds no noise."""
    mean = x + sde.reverse_drift(x, tv, s, check=False) * dt     # x + [f - g^2 s] dt      eq. (7)
    if last:
        return mean
    return mean + per_sample(sde.diffusion(tv, check=False), x) * math.sqrt(-dt) * randn_like(x, generator)


@torch.no_grad()
def forward_sde(sde, x0: torch.Tensor, n_steps: int, *, t_end: float = 1.0, return_path: bool = False,
                generator: torch.Generator | None = None):
    """Simulate the forward SDE, eq. (6), from x(0) = x0 to t_end with Euler-Maruyama:
    x <- x + f(x, t) dt + g(t) sqrt(dt) z. Returns x(t_end) (and the path, (n_steps + 1, n, ...)).
    Introduced in notebooks/06_sdes.ipynb."""
    x = _checks.batch("x0", x0).clone()
    n_steps = _checks.count("n_steps", n_steps)
    t_end = _checks.positive("t_end", t_end)
    dt = t_end / n_steps
    path = [x.clone()] if return_path else None
    for k in range(n_steps):
        t = _tvec(x, k * dt)
        x = x + sde.drift(x, t) * dt + per_sample(sde.diffusion(t), x) * math.sqrt(dt) * randn_like(x, generator)
        if path is not None:
            path.append(x.clone())
    return (x, torch.stack(path)) if return_path else x


@torch.no_grad()
def euler_maruyama(sde, score_fn, shape, n_steps: int, eps: float = 1e-3, *, x_T: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, device=None, dtype=torch.float32,
                   return_path: bool = False, progress: bool = False):
    """Reverse-time SDE sampling, eq. (7), with the Euler-Maruyama method.

    From x(1) ~ p_T (or ``x_T``), for t_k = 1 > ... > eps in ``n_steps`` even steps dt < 0:

        x <- x + [f(x, t) - g(t)^2 score_fn(x, t)] dt + g(t) sqrt(|dt|) z

    The last step adds no noise (it returns the mean), which removes the noise of size
    g sqrt(|dt|) that no later step could undo. Any data shape; ``shape`` = (n, ...).
    Cost: ``n_steps`` score evaluations.

    Introduced in notebooks/06_sdes.ipynb; on MNIST in 07_mnist_score_sde.ipynb.
    """
    check_callable("score_fn", score_fn)
    n_steps = _checks.count("n_steps", n_steps)
    eps = _checks.eps(eps)
    x = _start(sde, shape, x_T, generator, device, dtype)
    ts = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64).tolist()
    path = [x.clone()] if return_path else None
    for k in progress_steps(n_steps, progress, "Euler-Maruyama"):
        t, dt = ts[k], ts[k + 1] - ts[k]
        tv = _tvec(x, t)
        s = call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
        if k == 0:
            check_score_output(s, x)
        x = _em_step(sde, x, tv, s, dt, k + 1 == n_steps, generator)
        if path is not None:
            path.append(x.clone())
    check_finite(x, "at the end of Euler-Maruyama", 1.0 / n_steps)
    return (x, torch.stack(path)) if return_path else x


def _corrector(sde, score_fn, x, tv, t: float, dt: float, snr: float, n_corrector: int, generator):
    """``n_corrector`` Langevin steps at time t, the step set by the target ``snr`` (see predictor_corrector)."""
    from .sde import VESDE

    # DDPM's alpha_i = 1 - beta_i, written exp(-beta(t) |dt|) so it stays positive for coarse grids
    alpha = 1.0 if isinstance(sde, VESDE) else math.exp(-float(sde.beta(t)) * -dt)
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    for _ in range(n_corrector):
        s = call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
        z = randn_like(x, generator)
        a = 2 * alpha * (snr * flat(z).norm(dim=1).mean() / flat(s).norm(dim=1).mean().clamp(min=1e-12)) ** 2
        x = x + a * s + torch.sqrt(2 * a) * z            # Langevin corrector, eq. (1) with eps = 2a
    return x


@torch.no_grad()
def reverse_step(sde, score_fn, x: torch.Tensor, t: float, t_next: float, *, sampler: str = "em", snr: float = 0.16,
                 last: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of the reverse-time SDE, eq. (7), from time ``t`` down to ``t_next`` < t: Euler-Maruyama
    ("em", one score evaluation), or one Langevin corrector at ``snr`` then Euler-Maruyama ("pc", two); with
    ``last`` no noise is added (the samplers' final step). It is the step ``euler_maruyama`` and
    ``predictor_corrector`` repeat, public for loops that change the state between steps (inpainting,
    ``sg.guidance.inpaint``). A fast path: apart from the sampler's name nothing is validated (x a batch,
    0 <= t_next < t <= 1). Introduced in notebooks/09_controllable_generation.ipynb."""
    _checks.choice("sampler", sampler, {"em", "pc"})
    dt = t_next - t
    tv = _tvec(x, t)
    if sampler == "pc":
        x = _corrector(sde, score_fn, x, tv, t, dt, snr, 1, generator)
    s = call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
    return _em_step(sde, x, tv, s, dt, last, generator)


@torch.no_grad()
def predictor_corrector(sde, score_fn, shape, n_steps: int, snr: float = 0.16, n_corrector: int = 1,
                        eps: float = 1e-3, *, x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        device=None, dtype=torch.float32, progress: bool = False):
    """Predictor-corrector sampling (Song et al. 2021): at each time, ``n_corrector`` Langevin
    steps at that time (the corrector), then one Euler-Maruyama step of eq. (7) (the predictor).

    The corrector's step is set from the target signal-to-noise ratio ``snr``:
    a = 2 alpha (snr ||z|| / ||s||)^2 (alpha = 1 for VE, exp(-beta(t) |dt|) ~ 1 - beta_i for VP / sub-VP), and
    the update x + a s + sqrt(2a) z is eq. (1) with eps = 2a. Cost: n_steps (1 + n_corrector)
    score evaluations. Annealed Langevin (notebook 05) is the corrector alone on a VE ladder.

    Introduced in notebooks/06_sdes.ipynb.
    """
    check_callable("score_fn", score_fn)
    n_steps = _checks.count("n_steps", n_steps)
    n_corrector = _checks.count("n_corrector", n_corrector, minimum=0)
    snr = _checks.positive("snr", snr)
    eps = _checks.eps(eps)
    x = _start(sde, shape, x_T, generator, device, dtype)
    ts = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64).tolist()
    for k in progress_steps(n_steps, progress, "predictor-corrector"):
        t, dt = ts[k], ts[k + 1] - ts[k]
        tv = _tvec(x, t)
        x = _corrector(sde, score_fn, x, tv, t, dt, snr, n_corrector, generator)
        s = call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
        if k == 0:
            check_score_output(s, x)
        x = _em_step(sde, x, tv, s, dt, k + 1 == n_steps, generator)   # Euler-Maruyama predictor
    check_finite(x, "at the end of predictor-corrector", 1.0 / n_steps)
    return x


# Dormand-Prince 5(4) coefficients
_DP_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_DP_E = [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]  # b5 - b4


def rk45(f, y0: torch.Tensor, t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5,
         first_step: float | None = None, max_steps: int = 10_000):
    """Adaptive Dormand-Prince RK45 for dy/dt = f(t, y) from t0 to t1 (either direction), in torch.

    Written here rather than taken from scipy so that the state stays on the GPU, batched, in
    its own dtype, with no extra dependency. One common step size for the whole batch; the error
    norm is the RMS over all entries of err / (atol + rtol max(|y|, |y_new|)), as in scipy.
    Returns (y(t1), number of function evaluations).
    """
    rtol = _checks.positive("rtol", rtol)
    atol = _checks.positive("atol", atol)
    direction = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    h = first_step if first_step is not None else 0.01 * span
    t, y = t0, y0
    k1 = f(t, y)
    nfe = 1
    for _ in range(max_steps):
        if (t1 - t) * direction <= 1e-12 * span:
            return y, nfe
        h = min(h, abs(t1 - t))
        ks = [k1]
        for i in range(1, 7):
            yi = y + direction * h * sum(a * k for a, k in zip(_DP_A[i], ks))
            ks.append(f(t + direction * h * _DP_C[i], yi))
        nfe += 6
        y_new = y + direction * h * sum(b * k for b, k in zip(_DP_B, ks) if b)
        err = direction * h * sum(e * k for e, k in zip(_DP_E, ks) if e)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        err_norm = float(torch.sqrt(torch.mean((err / scale) ** 2)))
        if not math.isfinite(err_norm):
            raise SamplerDiverged(f"the ODE solution became NaN/inf at t={t:.4g}; check the score function.")
        if err_norm <= 1.0:
            t, y, k1 = t + direction * h, y_new, ks[6]   # FSAL: the last stage is the next first
        h *= min(10.0, max(0.2, 0.9 * (err_norm + 1e-10) ** -0.2))
    raise SamplerDiverged(f"rk45 did not reach t={t1} in {max_steps} steps (stopped at t={t:.4g}); loosen rtol/atol.")


@torch.no_grad()
def probability_flow_ode(sde, score_fn, shape, *, rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-3,
                         x_T: torch.Tensor | None = None, generator: torch.Generator | None = None, device=None,
                         dtype=torch.float32):
    """Deterministic sampling with the probability-flow ODE (Song et al. 2021, section 4.3):

        dx/dt = f(x, t) - (1/2) g(t)^2 score_fn(x, t),

    solved from t = 1 to ``eps`` with the adaptive RK45 of ``rk45`` (tolerances ``rtol``,
    ``atol``). Same marginals as the reverse SDE, no noise after x(1). Any data shape.
    Returns (samples, number of score evaluations).

    Introduced in notebooks/06_sdes.ipynb.
    """
    check_callable("score_fn", score_fn)
    eps = _checks.eps(eps)
    x = _start(sde, shape, x_T, generator, device, dtype)

    def f(t, y):
        tv = _tvec(y, t)
        return sde.reverse_drift(y, tv, score_fn(y, tv), ode=True, check=False)

    x, nfe = rk45(f, x, 1.0, eps, rtol=rtol, atol=atol)
    return x, nfe


def log_likelihood(sde, score_fn, x: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-5,
                   divergence: str = "auto", generator: torch.Generator | None = None):
    """log p_0(x) in nats, per sample (n,), through the probability-flow ODE (instantaneous
    change of variables): integrate x and the divergence of the ODE drift f~ = f - (1/2) g^2 s
    from t = eps to 1, then

        log p_eps(x) = log p_T(x(1)) + int_eps^1 div f~(x(t), t) dt.

    ``divergence``: "exact" (D backward passes; the default for D <= 16 through "auto") or
    "hutchinson" (one Rademacher probe v, fixed along the path: v^T grad(f~ . v), unbiased).

    Introduced in notebooks/06_sdes.ipynb; bits/dim for MNIST in 07_mnist_score_sde.ipynb.
    """
    check_callable("score_fn", score_fn)
    x = _checks.batch("x", x)
    eps = _checks.eps(eps)
    _checks.choice("divergence", divergence, {"auto", "exact", "hutchinson"})
    n, shape = x.shape[0], x.shape
    d = x[0].numel()
    exact = divergence == "exact" or (divergence == "auto" and d <= 16)
    v = None if exact else (torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1)

    def f(t, y):
        xs = y[:, :d].reshape(shape).detach().requires_grad_(True)
        tv = _tvec(xs, t)
        with torch.enable_grad():
            drift = sde.reverse_drift(xs, tv, score_fn(xs, tv), ode=True, check=False)
            if exact:
                flat = drift.reshape(n, -1)
                div = sum(torch.autograd.grad(flat[:, i].sum(), xs, retain_graph=i < d - 1)[0].reshape(n, -1)[:, i]
                          for i in range(d))
            else:
                (gv,) = torch.autograd.grad((drift * v).sum(), xs)
                div = (gv * v).reshape(n, -1).sum(1)
        return torch.cat([drift.detach().reshape(n, -1), div.detach()[:, None]], dim=1)

    y0 = torch.cat([x.detach().reshape(n, -1), torch.zeros(n, 1, dtype=x.dtype, device=x.device)], dim=1)
    y1, _ = rk45(f, y0, eps, 1.0, rtol=rtol, atol=atol)
    x1 = y1[:, :d].reshape(shape)
    return sde.prior_log_prob(x1) + y1[:, d]


def bits_per_dim(log_likelihood_nats: torch.Tensor, dim: int, offset: float = 0.0) -> torch.Tensor:
    """Negative log-likelihood in bits per dimension: -log p / (D ln 2) + ``offset``.

    For 8-bit images rescaled to [0, 1] with uniform dequantisation, pass
    ``offset = log2(256) = 8``: the density of x / 256 relates to that of x by a factor 256 per
    dimension (notebook 07 documents this)."""
    dim = _checks.count("dim", dim)
    return -log_likelihood_nats / (dim * math.log(2)) + offset


# ---------------------------------------------------------------------------
# Samplers in the noise level sigma (notebook 08): Karras et al. (2022, EDM) and DPM-Solver++(2M)
# ---------------------------------------------------------------------------

def sigma_schedule(sde, n_steps: int, *, rho: float = 7.0, sigma_min: float | None = None,
                   sigma_max: float | None = None, eps: float = 1e-3) -> torch.Tensor:
    """The sampling schedule of ``edm_sampler`` and ``dpm_solver_2m``: ``karras_sigmas`` between
    ``sigma_max`` (default: the SDE's largest level, sigma_of_t(1)) and ``sigma_min`` (default:
    sigma_of_t(eps), the smallest level a network trained on t in [eps, 1] has seen), with
    sigma_N = 0 appended: float64, length n_steps + 1. Raises ValueError, before any work, for
    levels outside the SDE's range. Introduced in notebooks/08_fast_sampling.ipynb."""
    eps = _checks.eps(eps)
    top = sde.max_noise_level()
    smax = top if sigma_max is None else _checks.positive("sigma_max", sigma_max)
    smin = float(sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64))) if sigma_min is None \
        else _checks.positive("sigma_min", sigma_min)
    if smax > top * (1 + 1e-6):
        raise ValueError(f"sigma_max={smax!r} is above the largest noise level of {sde!r}, sigma_of_t(1) = "
                         f"{top:.6g}; pass sigma_max <= {top:.6g} (or leave it None).")
    sig = karras_sigmas(smax, smin, n_steps, rho=rho, dtype=torch.float64)
    return torch.cat([sig, sig.new_zeros(1)])


def _sigma_start(sigmas, shape, noise, generator, device, dtype):
    """x at sigma_max: sigma_max * noise, noise ~ N(0, I) (or the given ``noise``, e.g. fixed for a widget)."""
    if noise is None:
        noise = torch.randn(_checks.shape("shape", shape), generator=generator, device=device, dtype=dtype)
    else:
        noise = _checks.batch("noise", noise)
    return float(sigmas[0]) * noise


@torch.no_grad()
def edm_sampler(sde, score_fn, shape, n_steps: int = 18, *, rho: float = 7.0, sigma_min: float | None = None,
                sigma_max: float | None = None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                s_noise: float = 1.0, solver: str = "heun", noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, device=None, dtype=torch.float32, progress: bool = False):
    """The EDM sampler (Karras et al. 2022, "Elucidating the design space of diffusion-based generative
    models", Algorithms 1 and 2): the probability-flow ODE written in the noise level sigma,

        dx/dsigma = (x - D(x; sigma)) / sigma,        D = ``sg.sde.denoiser(sde, score_fn)``,

    for the scaled state x = x(t) / alpha_t (so VE, VP and sub-VP all become this one ODE), solved on
    the schedule ``sigma_schedule(sde, n_steps, rho=...)``: sigma_0 = sigma_max > ... > sigma_{N-1} =
    sigma_min > sigma_N = 0, from x = sigma_max * noise.

    Each step from sigma_i to sigma_{i+1}: (Algorithm 2, "churn") raise the noise to
    sigma^ = (1 + gamma) sigma_i by adding fresh noise of std sqrt(sigma^2 - sigma_i^2) * s_noise, with
    gamma = min(churn / N, sqrt(2) - 1) for s_tmin <= sigma_i <= s_tmax and 0 otherwise (sigma^ is capped
    at the SDE's largest level); then an Euler step d = (x - D(x; sigma^)) / sigma^, x' = x + (sigma_{i+1} -
    sigma^) d, and with ``solver="heun"`` the trapezoidal correction x' = x + (sigma_{i+1} - sigma^) (d + d') / 2,
    d' = (x' - D(x'; sigma_{i+1})) / sigma_{i+1}, except on the last step (sigma_{i+1} = 0), which stays Euler.
    churn = 0 is the deterministic Algorithm 1: Heun has global error O(h^2), Euler O(h).

    The defaults s_tmin = 0, s_tmax = inf, s_noise = 1 churn at every level. With churn >= (sqrt(2) - 1) N (the
    course's churn = 40 on 18 levels) gamma sits at its cap at every level, so each step adds noise of std sigma_i:
    "capped churn at every level", not EDM's setting. EDM churns on a window of levels with S_noise slightly above 1,
    tuned per data set (Karras et al. 2022, section 4 and table 5; e.g. churn=40, s_tmin=0.05, s_tmax=50,
    s_noise=1.003 for ImageNet-64, as NVlabs/edm's README runs it). tests/test_windowed_churn.py checks the window
    and S_noise step by step and the samples' moments with an exact 2D score; notebook 08 measures both on MNIST.

    Args:
        sde: the SDE the score model was trained with (defines sigma(t) and alpha_t).
        score_fn: (x, t) -> score, as for ``euler_maruyama``.
        shape: (n, ...), the batch to draw (ignored when ``noise`` is given).
        n_steps: N >= 2 noise levels before 0.
        rho, sigma_min, sigma_max: the schedule (``karras_sigmas``; defaults from the SDE's range).
        churn, s_tmin, s_tmax, s_noise: EDM's stochasticity S_churn, S_tmin, S_tmax, S_noise.
        solver: "heun" (second order, 2N - 1 evaluations) or "euler" (first order, N evaluations).
        noise: a fixed N(0, I) start of shape (n, ...) (the same digits as the settings change).
        generator, device, dtype, progress: as for ``euler_maruyama``.

    Returns:
        (x, nfe): samples at sigma = 0, and the number of score evaluations per sample.

    Introduced in notebooks/08_fast_sampling.ipynb.
    """
    check_callable("score_fn", score_fn)
    _checks.choice("solver", solver, {"heun", "euler"})
    churn = _checks.positive("churn", churn, allow_zero=True)
    s_noise = _checks.positive("s_noise", s_noise, allow_zero=True)
    s_tmin = _checks.positive("s_tmin", s_tmin, allow_zero=True)
    if not (isinstance(s_tmax, (int, float)) and s_tmax > s_tmin):
        raise ValueError(f"s_tmax={s_tmax!r} must be a number larger than s_tmin={s_tmin!r} (float('inf') for all levels).")
    sigmas = sigma_schedule(sde, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max)
    top = sde.max_noise_level()
    D = denoiser(sde, score_fn)
    x = _sigma_start(sigmas, shape, noise, generator, device, dtype)
    n = len(sigmas) - 1
    gamma_max = min(churn / n, math.sqrt(2.0) - 1.0)
    nfe = 0
    for i in progress_steps(n, progress, f"EDM ({solver})"):
        s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = gamma_max if s_tmin <= s_cur <= s_tmax else 0.0
        s_hat = min(s_cur * (1.0 + gamma), top)
        if s_hat > s_cur:   # Algorithm 2, lines 4-6: add noise to move from sigma_i up to sigma^
            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)
        den = call_score(D, x, s_hat, where=f"at sigma={s_hat:.4g}", step_size=s_hat - s_next)
        if i == 0:
            check_score_output(den, x)
        d = (x - den) / s_hat                              # dx/dsigma at sigma^
        x_next = x + (s_next - s_hat) * d                  # Euler step
        nfe += 1
        if solver == "heun" and s_next > 0:                # trapezoidal (Heun) correction, not on the last step
            d_next = (x_next - call_score(D, x_next, s_next, where=f"at sigma={s_next:.4g}")) / s_next
            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
            nfe += 1
        x = x_next
    check_finite(x, f"at the end of the EDM sampler ({solver})", float(sigmas[0]) / n)
    return x, nfe


def churn_etas(sigmas, churn: float, s_tmin: float = 0.0, s_tmax: float = float("inf"),
               top: float | None = None) -> torch.Tensor:
    """The churn that ``edm_sampler`` applies at each level of ``sigmas`` (Karras et al. 2022, Algorithm 2; notebook
    08, section 4): eta_i with sigma^ = (1 + eta_i) sigma_i, for sigma_0, ..., sigma_{N-1} (a trailing sigma_N = 0
    is dropped; N = len(sigmas) - 1 when it is there, else len(sigmas)). eta_i = min(S_churn / N, sqrt(2) - 1) on
    the window S_tmin <= sigma_i <= S_tmax and 0 outside, then lowered so that sigma^ <= ``top`` (the SDE's
    largest level, ``sde.max_noise_level()``; default sigma_0): the schedule starts at the top, so with the
    default schedule the first level is never churned. Exactly 0 where no noise is added. Returns a float64 tensor of
    length N; ``(etas > 0).sum()`` counts the churned levels. Introduced in notebooks/08_fast_sampling.ipynb."""
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sig.numel() >= 1 and float(sig[-1]) == 0.0:
        sig = sig[:-1]
    if sig.numel() < 1 or not bool((sig > 0).all()):
        raise ValueError("sigmas must be positive levels sigma_0 > ... > sigma_{N-1} (optionally followed by 0).")
    churn = _checks.positive("churn", churn, allow_zero=True)
    top = float(sig[0]) if top is None else _checks.positive("top", top)
    n = sig.numel()
    gamma_max = min(churn / n, math.sqrt(2.0) - 1.0)
    out = torch.zeros(n, dtype=torch.float64)
    for i, s in enumerate(sig.tolist()):
        gamma = gamma_max if s_tmin <= s <= s_tmax else 0.0
        s_hat = min(s * (1.0 + gamma), top)     # as edm_sampler computes it
        if s_hat > s:
            out[i] = s_hat / s - 1.0
    return out


@torch.no_grad()
def dpm_solver_2m(sde, score_fn, shape, n_steps: int = 20, *, rho: float = 7.0, sigma_min: float | None = None,
                  sigma_max: float | None = None, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, device=None, dtype=torch.float32, progress: bool = False):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: fast solver for guided sampling of diffusion
    probabilistic models", Algorithm 2): a multistep exponential integrator of the probability-flow
    ODE in the data prediction D(x; sigma) (``sg.sde.denoiser``), on the schedule of ``edm_sampler``.

    With lambda = -log sigma (the half log-SNR of the scaled state x = x(t) / alpha_t) and
    h_i = lambda_{i+1} - lambda_i, the ODE dx/dsigma = (x - D) / sigma integrates exactly for a D that
    is constant over the step: x_{i+1} = (sigma_{i+1} / sigma_i) x_i + (1 - sigma_{i+1} / sigma_i) D. The 2M
    method replaces D by a linear extrapolation through the previous step's denoised value:

        D~ = (1 + 1 / (2 r)) D_i - (1 / (2 r)) D_{i-1},     r = h_{i-1} / h_i,

    second order at one score evaluation per step (N in all). Its first step, and the last one
    (to sigma = 0, where x_{i+1} = D_i), use D_i alone: that first-order method is DDIM (Song, Meng
    and Ermon 2021), the deterministic sampler of DDPM-trained models.

    Args and returns as for ``edm_sampler`` (no churn; nfe = N). Introduced in notebooks/08_fast_sampling.ipynb.
    """
    check_callable("score_fn", score_fn)
    sigmas = sigma_schedule(sde, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max)
    D = denoiser(sde, score_fn)
    x = _sigma_start(sigmas, shape, noise, generator, device, dtype)
    n = len(sigmas) - 1
    den_prev, h_prev = None, None
    for i in progress_steps(n, progress, "DPM-Solver++(2M)"):
        s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
        den = call_score(D, x, s_cur, where=f"at sigma={s_cur:.4g}", step_size=s_cur - s_next)
        if i == 0:
            check_score_output(den, x)
        if s_next == 0.0:                                   # the last step: sigma -> 0 leaves the denoised value
            x = den
            break
        h = math.log(s_cur / s_next)                        # lambda_{i+1} - lambda_i
        if den_prev is None:
            d_eff = den                                     # first order: DDIM
        else:
            r = h_prev / h
            d_eff = (1.0 + 1.0 / (2.0 * r)) * den - (1.0 / (2.0 * r)) * den_prev
        x = (s_next / s_cur) * x - math.expm1(-h) * d_eff   # (sigma'/sigma) x + (1 - sigma'/sigma) D~
        den_prev, h_prev = den, h
    check_finite(x, "at the end of DPM-Solver++(2M)", float(sigmas[0]) / n)
    return x, n


@torch.no_grad()
def seconds_per_evaluation(score_fn, shape, *, device=None, repeats: int = 2) -> float:
    """Wall-clock seconds of one call ``score_fn(x, t)`` on a batch of ``shape`` (the median of ``repeats``
    after one warm-up call): multiplied by a sampler's NFE, the time a cell will take, which notebooks
    print before a long comparison (notebooks 08-10)."""
    from . import device as default_device

    device = torch.device(device) if device is not None else default_device()
    x = torch.zeros(tuple(shape), device=device)
    t = torch.full((x.shape[0],), 0.5, device=device)
    score_fn(x, t)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        score_fn(x, t)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


#: The samplers ``sample_batched`` (and the command line's ``--sampler``) accept.
SAMPLERS = ("em", "pc", "ode", "edm", "dpm")


def sample_batched(score_fn, sde, n: int, shape=(1, 28, 28), *, sampler: str = "em", n_steps: int = 500,
                   snr: float = 0.16, rtol: float = 1e-5, atol: float = 1e-5, rho: float = 7.0, churn: float = 0.0,
                   s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                   batch_size: int | None = None, amp: bool = True, compile: bool = False, generator: torch.Generator | None = None, device=None,
                   progress: bool = False, timings: dict | None = None, log=None):
    """Draw ``n`` samples of shape ``shape`` with ``sampler``, ``batch_size`` at a time: "em"
    (``euler_maruyama``, ``n_steps`` evaluations), "pc" (``predictor_corrector``, 2 ``n_steps``), "ode"
    (``probability_flow_ode`` at ``rtol``/``atol``), "edm" (``edm_sampler`` with Heun on ``n_steps`` levels,
    ``rho``, ``churn`` and its window ``s_tmin``, ``s_tmax`` and ``s_noise``: 2 ``n_steps`` - 1) or "dpm"
    (``dpm_solver_2m``, ``n_steps``, ``rho``).

    With ``amp`` the score network runs in the precision ``sg.precision(device)`` picks (bfloat16
    autocast on Ampere and newer GPUs, float16 on older ones, float32 on MPS and the CPU; the
    sampler's state stays float32); with ``compile`` it is wrapped in ``torch.compile`` and compiled once on a batch of
    the right shape before the clock starts (the compile time goes to ``timings["compile_seconds"]``).
    ``log`` (e.g. ``print``) is told the precision chosen; ``timings["precision"]`` records it.
    Returns (samples (n, *shape) on the CPU, score evaluations per sample, sampling seconds).
    Introduced in notebooks/07_mnist_score_sde.ipynb.
    """
    from . import device as default_device, precision

    _checks.choice("sampler", sampler, SAMPLERS)
    n = _checks.count("n", n)
    if churn and sampler != "edm":   # the samplers check their own schedule at their first call, before any work
        raise ValueError(f"churn={churn!r} is EDM's S_churn and applies to sampler='edm' only; "
                         f"sampler={sampler!r} would ignore it (pass churn=0).")
    if (s_tmin, s_tmax, s_noise) != (0.0, float("inf"), 1.0) and sampler != "edm":
        raise ValueError(f"s_tmin, s_tmax and s_noise are EDM's churn window and noise and apply to sampler='edm' "
                         f"only; sampler={sampler!r} would ignore them (leave them at 0, inf and 1).")
    device = torch.device(device) if device is not None else default_device()
    batch_size = batch_size or n
    amp_dtype, why = precision(device) if amp else (torch.float32, "fp32 (amp=False)")
    use_amp = amp_dtype != torch.float32
    if log is not None:
        log(f"sampling precision: {why}")
    if timings is not None:
        timings["precision"] = why
    net = score_fn
    compile_start = time.perf_counter()
    if compile and device.type == "cuda" and hasattr(torch, "compile"):
        net = torch.compile(score_fn)
        with torch.no_grad():
            sizes = {min(batch_size, n - i) for i in range(0, n, batch_size)}
            for size in sizes:  # compile for every batch shape the loop will use
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    net(torch.zeros((size,) + tuple(shape), device=device), torch.full((size,), 0.5, device=device))
        torch.cuda.synchronize()
    if timings is not None:
        timings["compile_seconds"] = time.perf_counter() - compile_start

    def score(x, t):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            return net(x, t).float()

    out, nfe = [], 0
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        shape_i = (min(batch_size, n - i),) + tuple(shape)
        if sampler == "em":
            x, nfe = euler_maruyama(sde, score, shape_i, n_steps, generator=generator, device=device,
                                    progress=progress), n_steps
        elif sampler == "pc":
            x, nfe = predictor_corrector(sde, score, shape_i, n_steps, snr=snr, generator=generator, device=device,
                                         progress=progress), 2 * n_steps
        elif sampler == "edm":
            x, nfe = edm_sampler(sde, score, shape_i, n_steps, rho=rho, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax,
                                 s_noise=s_noise, generator=generator, device=device, progress=progress)
        elif sampler == "dpm":
            x, nfe = dpm_solver_2m(sde, score, shape_i, n_steps, rho=rho, generator=generator, device=device,
                                   progress=progress)
        else:
            x, nfe = probability_flow_ode(sde, score, shape_i, rtol=rtol, atol=atol, generator=generator, device=device)
        out.append(x.float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), nfe, time.perf_counter() - start
