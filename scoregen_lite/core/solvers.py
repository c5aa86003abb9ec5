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

import torch

from .. import validate
from ..runtime import progress_steps, randn_like
from ..validate import SamplerDiverged, call_score, check_callable, check_finite, check_score_output
from .sde import per_sample

__all__ = [
    "forward_sde",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow_ode",
    "log_likelihood",
    "bits_per_dim",
    "rk45",
    "reverse_step",
]


def _start(sde, shape, x_T, generator, device, dtype):
    if x_T is not None:
        return validate.batch("x_T", x_T).clone()
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
    x = validate.batch("x0", x0).clone()
    n_steps = validate.count("n_steps", n_steps)
    t_end = validate.positive("t_end", t_end)
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
    n_steps = validate.count("n_steps", n_steps)
    eps = validate.eps(eps)
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
    validate.choice("sampler", sampler, {"em", "pc"})
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
    n_steps = validate.count("n_steps", n_steps)
    n_corrector = validate.count("n_corrector", n_corrector, minimum=0)
    snr = validate.positive("snr", snr)
    eps = validate.eps(eps)
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
    rtol = validate.positive("rtol", rtol)
    atol = validate.positive("atol", atol)
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
    eps = validate.eps(eps)
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
    x = validate.batch("x", x)
    eps = validate.eps(eps)
    validate.choice("divergence", divergence, {"auto", "exact", "hutchinson"})
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
    dim = validate.count("dim", dim)
    return -log_likelihood_nats / (dim * math.log(2)) + offset


# ---------------------------------------------------------------------------
# Samplers in the noise level sigma (notebook 08): Karras et al. (2022, EDM) and DPM-Solver++(2M)
# ---------------------------------------------------------------------------


