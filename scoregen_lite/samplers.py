"""Samplers that use only a score: Langevin dynamics, MALA (and, in later parts,
annealed Langevin and the reverse-time SDE samplers).

Conventions. ``score_fn(x)`` takes a batch x of shape (n, D) (or any shape with
the batch first) and returns a tensor of the same shape. Every sampler is
vectorised over chains (rows of x0), seeded by an optional ``torch.Generator``
on x0's device, and runs under ``torch.no_grad()`` unless it needs gradients.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import _checks
from .sde import per_sample

__all__ = [
    "langevin",
    "mala",
    "annealed_langevin",
    "SamplerDiverged",
    "forward_sde",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow_ode",
    "log_likelihood",
    "bits_per_dim",
    "rk45",
    "sample_batched",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


class SamplerDiverged(FloatingPointError):
    """The chains left the floating-point range (NaN/inf): the step size is too large for the score."""


def _check_finite(x, where: str, step_size: float) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x).reshape(len(x), -1).all(1)).sum())
        raise SamplerDiverged(f"{bad} of {len(x)} chains diverged (NaN/inf) {where}; step_size={step_size:g} is too "
                              f"large for this score: try a step size 10x smaller.")


def _call_score(score_fn, x, *args, where: str = "", step_size: float = 0.0):
    """score_fn(x, *args); if it rejects x because chains overflowed, say so (SamplerDiverged)."""
    try:
        return score_fn(x, *args)
    except ValueError as err:
        if not torch.isfinite(x).all():
            _check_finite(x, where, step_size)
        raise err


def _steps(n_steps: int, progress: bool, desc: str):
    return tqdm(range(n_steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)


def _check_callable(name, fn):
    if not callable(fn):
        raise TypeError(f"{name}={fn!r} must be callable, e.g. density.score or a trained network.")
    return fn


def _check_score_output(s, x):
    """The first score a sampler computes must have x's shape."""
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn returned {shape}; expected a tensor of x's shape {tuple(x.shape)}.")
    return s


def _randn_like(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@torch.no_grad()
def langevin(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Unadjusted Langevin dynamics, eq. (1), exactly as written in the notes:

        x_t = x_{t-1} + (eps / 2) * score(x_{t-1}) + sqrt(eps) * z_t,   z_t ~ N(0, I)

    with ``step_size`` = eps (the NCSN code's alpha is eps / 2).

    Args:
        score_fn: x -> grad_x log p(x), same shape as x.
        x0: starting points, one chain per row, shape (n, ...).
        step_size: eps > 0.
        n_steps: number of updates T >= 0.
        return_path: also return every state, shape (n_steps + 1, n, ...).
        generator: seeds the noise z_t (on x0's device).
        progress: show a tqdm bar.

    Returns:
        x_T, or (x_T, path) when ``return_path``.

    Raises:
        SamplerDiverged: the chains overflowed (checked every 100 steps and at the end).

    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """
    _check_callable("score_fn", score_fn)
    x = _checks.batch("x0", x0).clone()
    step_size = _checks.positive("step_size", step_size)
    n_steps = _checks.count("n_steps", n_steps, minimum=0)
    path = [x.clone()] if return_path else None
    noise_scale = math.sqrt(step_size)
    for i in _steps(n_steps, progress, "Langevin"):
        s = _call_score(score_fn, x, where=f"before step {i + 1}", step_size=step_size)
        if i == 0:
            _check_score_output(s, x)
        # x <- x + (eps/2) s(x) + sqrt(eps) z      eq. (1)
        x = x + 0.5 * step_size * s + noise_scale * _randn_like(x, generator)
        if path is not None:
            path.append(x.clone())
        if (i + 1) % 100 == 0 or i + 1 == n_steps:  # a cheap check, not every step (GPU syncs)
            _check_finite(x, f"by step {i + 1}", step_size)
    if return_path:
        return x, torch.stack(path)
    return x


@torch.no_grad()
def mala(
    log_prob_fn: ScoreFn,
    score_fn: ScoreFn,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Metropolis-adjusted Langevin algorithm (MALA): eq. (1) as a proposal, then accept/reject.

    Proposal y = x + (eps/2) s(x) + sqrt(eps) z, i.e. q(y | x) = N(y; x + (eps/2) s(x), eps I).
    It is accepted with probability min(1, p(y) q(x | y) / (p(x) q(y | x))), which
    removes the O(eps) bias of unadjusted Langevin (notes, eq. (1) remark).

    Args:
        log_prob_fn: x (n, D) -> log p(x) up to a constant, shape (n,).
        score_fn: x -> grad_x log p(x).
        x0, step_size, n_steps, return_path, generator, progress: as in ``langevin``.

    Returns:
        (x_T, acceptance_rate) or (x_T, acceptance_rate, path); the rate is the
        fraction of accepted proposals over all chains and steps, in [0, 1].

    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """
    _check_callable("log_prob_fn", log_prob_fn)
    _check_callable("score_fn", score_fn)
    x = _checks.batch("x0", x0).clone()
    step_size = _checks.positive("step_size", step_size)
    n_steps = _checks.count("n_steps", n_steps, minimum=0)
    path = [x.clone()] if return_path else None
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    log_p = log_prob_fn(x)
    s = _check_score_output(score_fn(x), x)
    accepted = 0
    for _ in _steps(n_steps, progress, "MALA"):
        y = x + 0.5 * step_size * s + math.sqrt(step_size) * _randn_like(x, generator)
        log_p_y = log_prob_fn(y)
        s_y = score_fn(y)
        # log q(y|x) and log q(x|y), up to the same constant
        fwd = -flat(y - x - 0.5 * step_size * s).pow(2).sum(1) / (2 * step_size)
        bwd = -flat(x - y - 0.5 * step_size * s_y).pow(2).sum(1) / (2 * step_size)
        log_alpha = log_p_y + bwd - log_p - fwd
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(u) < log_alpha
        mask = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(mask, y, x)
        s = torch.where(mask, s_y, s)
        log_p = torch.where(accept, log_p_y, log_p)
        accepted += int(accept.sum())
        if path is not None:
            path.append(x.clone())
    rate = accepted / max(1, n_steps * x.shape[0]) if n_steps else 1.0
    if return_path:
        return x, rate, torch.stack(path)
    return x, rate


@torch.no_grad()
def annealed_langevin(
    score_fn,
    x0: torch.Tensor,
    sigmas,
    step_size: float,
    n_steps_each: int,
    *,
    final_denoise: bool = False,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Annealed Langevin dynamics (notes, section "Annealed Langevin dynamics").

    For each level i = 1..L (sigma_1 > ... > sigma_L), run ``n_steps_each`` steps of eq. (1)
    with the score at that level and step alpha_i = step_size * sigma_i^2 / sigma_L^2:

        x <- x + (alpha_i / 2) score_fn(x, sigma_i) + sqrt(alpha_i) z

    This is eq. (1)'s convention: ``step_size`` is the eps of eq. (1) at the last level. The
    NCSN code writes x + a s + sqrt(2a) z with a = eps_ncsn sigma_i^2 / sigma_L^2, so
    ``step_size = 2 * eps_ncsn``. With ``final_denoise`` one last Tweedie step
    x <- x + sigma_L^2 score_fn(x, sigma_L) removes the remaining noise of level L.

    Args:
        score_fn: (x, sigma) -> score of the perturbed density q_sigma at x; sigma is passed
            as a Python float. Works with ``density.perturbed_score`` and with an NCSN.
        x0: starting points (n, ...), e.g. uniform over a box.
        sigmas: the ladder, descending (L,).
        step_size: eps > 0 at the last level.
        n_steps_each: T >= 1 steps per level.
        return_path: also return the states at the start and after each level, shape (L + 1, n, ...).
        generator, progress: as in ``langevin``.

    Raises:
        SamplerDiverged: the chains overflowed at some level (checked after each level).

    Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    _check_callable("score_fn", score_fn)
    x = _checks.batch("x0", x0).clone()
    step_size = _checks.positive("step_size", step_size)
    n_steps_each = _checks.count("n_steps_each", n_steps_each)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sig) < 1 or not torch.isfinite(sig).all() or (sig <= 0).any():
        raise ValueError(f"sigmas={_checks._show(sig)} is invalid: expected positive noise levels.")
    if len(sig) > 1 and not (sig[:-1] > sig[1:]).all():
        raise ValueError(f"sigmas={_checks._show(sig)} must be strictly descending (sigma_1 > ... > sigma_L).")
    sig = sig.tolist()
    path = [x.clone()] if return_path else None
    bar = tqdm(total=len(sig) * n_steps_each, desc="annealed Langevin", disable=not progress, leave=False,
               mininterval=0.5)
    for level, sigma in enumerate(sig):
        alpha = step_size * sigma**2 / sig[-1] ** 2   # alpha_i = eps sigma_i^2 / sigma_L^2
        noise_scale = math.sqrt(alpha)
        for t in range(n_steps_each):
            s = _call_score(score_fn, x, sigma, where=f"at level {level + 1} (sigma={sigma:.3g}, alpha={alpha:.3g})",
                            step_size=step_size)
            if level == 0 and t == 0:
                _check_score_output(s, x)
            # x <- x + (alpha_i/2) s(x, sigma_i) + sqrt(alpha_i) z      eq. (1) at level i
            x = x + 0.5 * alpha * s + noise_scale * _randn_like(x, generator)
        bar.update(n_steps_each)
        _check_finite(x, f"at level {level + 1} (sigma={sigma:.3g}, alpha={alpha:.3g})", step_size)
        if path is not None:
            path.append(x.clone())
    bar.close()
    if final_denoise:
        x = x + sig[-1] ** 2 * score_fn(x, sig[-1])  # Tweedie: E[x | x~] = x~ + sigma^2 grad log q_sigma(x~)
        if path is not None:
            path[-1] = x.clone()
    if return_path:
        return x, torch.stack(path)
    return x


# ---------------------------------------------------------------------------
# SDE samplers (notebook 06): score_fn(x, t) with t of shape (n,), any data shape
# ---------------------------------------------------------------------------

def _start(sde, shape, x_T, generator, device, dtype):
    if x_T is not None:
        return _checks.batch("x_T", x_T).clone()
    return sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)


def _check_eps(eps):
    eps = _checks.positive("eps", eps)
    if eps >= 1:
        raise ValueError(f"eps={eps!r} is invalid: expected 0 < eps < 1 (the smallest time, e.g. 1e-3).")
    return eps


def _tvec(x, t: float):
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)


def _em_step(sde, x, tv, s, dt: float, last: bool, generator):
    """One Euler-Maruyama step of eq. (7): x + [f - g^2 s] dt + g sqrt(|dt|) z; the last adds no noise."""
    mean = x + sde.reverse_drift(x, tv, s, check=False) * dt     # x + [f - g^2 s] dt      eq. (7)
    if last:
        return mean
    return mean + per_sample(sde.diffusion(tv, check=False), x) * math.sqrt(-dt) * _randn_like(x, generator)


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
        x = x + sde.drift(x, t) * dt + per_sample(sde.diffusion(t), x) * math.sqrt(dt) * _randn_like(x, generator)
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
    _check_callable("score_fn", score_fn)
    n_steps = _checks.count("n_steps", n_steps)
    eps = _check_eps(eps)
    x = _start(sde, shape, x_T, generator, device, dtype)
    ts = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64).tolist()
    path = [x.clone()] if return_path else None
    for k in _steps(n_steps, progress, "Euler-Maruyama"):
        t, dt = ts[k], ts[k + 1] - ts[k]
        tv = _tvec(x, t)
        s = _call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
        if k == 0:
            _check_score_output(s, x)
        x = _em_step(sde, x, tv, s, dt, k + 1 == n_steps, generator)
        if path is not None:
            path.append(x.clone())
    _check_finite(x, "at the end of Euler-Maruyama", 1.0 / n_steps)
    return (x, torch.stack(path)) if return_path else x


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
    from .sde import VESDE

    _check_callable("score_fn", score_fn)
    n_steps = _checks.count("n_steps", n_steps)
    n_corrector = _checks.count("n_corrector", n_corrector, minimum=0)
    snr = _checks.positive("snr", snr)
    eps = _check_eps(eps)
    x = _start(sde, shape, x_T, generator, device, dtype)
    ts = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64).tolist()
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    for k in _steps(n_steps, progress, "predictor-corrector"):
        t, dt = ts[k], ts[k + 1] - ts[k]
        tv = _tvec(x, t)
        # DDPM's alpha_i = 1 - beta_i, written exp(-beta(t) |dt|) so it stays positive for coarse grids
        alpha = 1.0 if isinstance(sde, VESDE) else math.exp(-float(sde.beta(t)) * -dt)
        for _ in range(n_corrector):
            s = _call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
            z = _randn_like(x, generator)
            a = 2 * alpha * (snr * flat(z).norm(dim=1).mean() / flat(s).norm(dim=1).mean().clamp(min=1e-12)) ** 2
            x = x + a * s + torch.sqrt(2 * a) * z            # Langevin corrector, eq. (1) with eps = 2a
        s = _call_score(score_fn, x, tv, where=f"at t={t:.3g}", step_size=-dt)
        if k == 0:
            _check_score_output(s, x)
        x = _em_step(sde, x, tv, s, dt, k + 1 == n_steps, generator)   # Euler-Maruyama predictor
    _check_finite(x, "at the end of predictor-corrector", 1.0 / n_steps)
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
    """Deterministic sampling with the probability-flow ODE (notes, after eq. (7)):

        dx/dt = f(x, t) - (1/2) g(t)^2 score_fn(x, t),

    solved from t = 1 to ``eps`` with the adaptive RK45 of ``rk45`` (tolerances ``rtol``,
    ``atol``). Same marginals as the reverse SDE, no noise after x(1). Any data shape.
    Returns (samples, number of score evaluations).

    Introduced in notebooks/06_sdes.ipynb.
    """
    _check_callable("score_fn", score_fn)
    eps = _check_eps(eps)
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
    _check_callable("score_fn", score_fn)
    x = _checks.batch("x", x)
    eps = _check_eps(eps)
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


def sample_batched(score_fn, sde, n: int, shape=(1, 28, 28), *, sampler: str = "em", n_steps: int = 500,
                   snr: float = 0.16, rtol: float = 1e-5, atol: float = 1e-5, batch_size: int | None = None,
                   amp: bool = True, compile: bool = False, generator: torch.Generator | None = None, device=None,
                   progress: bool = False, timings: dict | None = None, log=None):
    """Draw ``n`` samples of shape ``shape`` with ``sampler`` in {"em", "pc", "ode"}, ``batch_size`` at a time.

    With ``amp`` the score network runs in the precision ``sg.precision(device)`` picks (bfloat16
    autocast on Ampere and newer GPUs, float16 on older ones, float32 on MPS and the CPU; the
    sampler's state stays float32); with ``compile`` it is wrapped in ``torch.compile`` and compiled once on a batch of
    the right shape before the clock starts (the compile time goes to ``timings["compile_seconds"]``).
    ``log`` (e.g. ``print``) is told the precision chosen; ``timings["precision"]`` records it.
    Returns (samples (n, *shape) on the CPU, score evaluations per sample, sampling seconds).
    Introduced in notebooks/07_mnist_score_sde.ipynb.
    """
    from . import device as default_device, precision

    _checks.choice("sampler", sampler, {"em", "pc", "ode"})
    n = _checks.count("n", n)
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
        else:
            x, nfe = probability_flow_ode(sde, score, shape_i, rtol=rtol, atol=atol, generator=generator, device=device)
        out.append(x.float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), nfe, time.perf_counter() - start
