"""Flow matching on the straight path (Lipman et al. 2023, "Flow matching for generative modeling"; Liu, Gong &
Liu 2023, "Flow straight and fast", rectified flow), checked exactly on Gaussian mixtures. Reachable as
``sg.flow.<name>``. Introduced in notebooks/11_flow_matching.ipynb.

The path. x_t = (1 - t) x(0) + t z, z ~ N(0, I), t in [0, 1]: data at t = 0 and noise at t = 1, the direction of
the course's SDEs, eq. (6), and of Esser et al. (2024, "Scaling rectified flow transformers", Stable Diffusion 3).
Lipman et al. (2023) and MIT 6.S184 run time the other way (noise at 0, data at 1): their t is our 1 - t and their
velocity is minus ours.
It is the Gaussian path alpha_t = 1 - t, std_t = t (x(t) = alpha_t x(0) + std_t z, as ``sg.sde``'s kernels).

The velocity. Along one path dx_t/dt = z - x(0) (the conditional velocity); the marginal velocity
v_t(x) = E[z - x(0) | x_t = x] moves p_t by the continuity equation (notebook 06), so dx/dt = v_t(x) integrated
from t = 1 (noise) down to t = 0 carries N(0, I) to the data (Lipman et al. 2023, theorem 1). With Tweedie's
E[z | x_t = x] = -t grad log p_t(x) and x = (1 - t) E[x(0) | x] + t E[z | x], the velocity, the score and the
denoiser are one function in three forms:

    v = -(x + t grad log p_t(x)) / (1 - t),   grad log p_t(x) = -(x + (1 - t) v) / t,   E[x(0) | x_t = x] = x - t v.

Conventions. ``velocity_fn(x, t)`` takes x of shape (n, ...) and t of shape (n,) in [0, 1] and returns a tensor
of x's shape (an exact velocity, ``functools.partial(marginal_velocity, target)``, or a network); t may be a float
or a tensor (n,) wherever a function takes it.
"""
from __future__ import annotations

import math

import torch

from .. import validate
from ..runtime import progress_steps
from ..validate import call_score, check_callable, check_finite
from .mixture import GaussianMixture
from .sde import per_sample
from .solvers import log_likelihood

__all__ = ["straight_path", "marginal", "marginal_velocity", "marginal_score", "velocity_from_score",
           "score_from_velocity", "denoiser_from_velocity", "cfm_loss", "euler_flow", "heun_flow",
           "log_likelihood_flow", "flow_time", "velocity_of_sde_model", "flow_euler_sampler", "flow_heun_sampler"]

_LOG_2PI = math.log(2 * math.pi)


def _times(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """t as a tensor of shape (n,) on x's device and dtype (a float, a 0-d tensor or one time per row of x),
    checked to lie in [0, 1]."""
    given = t
    if not isinstance(t, torch.Tensor):
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"{name}={t!r} must be a float or a tensor of shape ({len(x)},) of times in [0, 1].")
        t = torch.tensor(float(t), dtype=torch.float64)
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected a float or shape ({x.shape[0]},), one time "
                         f"per row of x (flatten it with {name}.reshape(-1)).")
    if not torch.is_floating_point(t) or not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name}={validate.show(given)} is outside [0, 1]: on the straight path t = 0 is the data "
                         f"and t = 1 the noise; pass times in [0, 1] (a time of Lipman et al. 2023 is 1 - t here).")
    return t.to(device=x.device, dtype=x.dtype).expand(x.shape[0])


def _check_target(target) -> GaussianMixture:
    if not isinstance(target, GaussianMixture):
        raise TypeError(f"target={target!r} must be a GaussianMixture (e.g. sg.densities.two_modes(), or "
                        f"sg.densities.GaussianMixture(weights, means, covs)).")
    return target


def straight_path(x0: torch.Tensor, z: torch.Tensor, t) -> torch.Tensor:
    """x_t = (1 - t) x(0) + t z: the straight path from the data ``x0`` (t = 0) to the noise ``z`` (t = 1), for x0
    and z of one shape (n, ...) and t a float or a tensor (n,) in [0, 1] (Liu et al. 2023, eq. (1); Lipman et al.
    2023, section 4.1, the optimal-transport path with sigma_min = 0 and time reversed).
    Introduced in notebooks/11_flow_matching.ipynb."""
    x0 = validate.batch("x0", x0)
    z = validate.tensor("z", z)
    if z.shape != x0.shape:
        raise ValueError(f"z has shape {tuple(z.shape)}; expected x0's shape {tuple(x0.shape)} "
                         f"(z = torch.randn_like(x0)).")
    t = per_sample(_times(t, x0), x0)
    return (1 - t) * x0 + t * z


def marginal(target: GaussianMixture, t: float) -> GaussianMixture:
    """p_t, the density of x_t = (1 - t) x(0) + t z for x(0) ~ ``target``, at one time t in [0, 1]: the mixture
    with means (1 - t) mu_k and covariances (1 - t)^2 Sigma_k + t^2 I (N(0, I) at t = 1). Its ``log_prob`` is what
    ``log_likelihood_flow`` is checked against. Introduced in notebooks/11_flow_matching.ipynb."""
    _check_target(target)
    t = float(_times(t, target.means[:1].double())[0])
    eye = torch.eye(target.dim, dtype=target.covs.dtype, device=target.covs.device)
    return GaussianMixture(target.weights, (1 - t) * target.means, (1 - t) ** 2 * target.covs + t**2 * eye)


def _posterior(target: GaussianMixture, x: torch.Tensor, t):
    """Per component k of p_t (float64): the responsibilities r_k(x) (n, K), C_k^{-1} (x - (1 - t) mu_k) (n, K, D)
    with C_k = (1 - t)^2 Sigma_k + t^2 I, and t (n,). One Cholesky factor per component when every row has the
    same t (what the samplers pass), one per row and component otherwise."""
    x = validate.points("x", x, _check_target(target).dim)
    t = _times(t, x).double()
    ts = t[:1] if bool((t == t[0]).all()) else t                       # (m,), m = 1 or n
    mu = target.means.to(x.device, torch.float64)                      # (K, D)
    eye = torch.eye(target.dim, dtype=torch.float64, device=x.device)
    covs = (1 - ts[:, None, None, None]) ** 2 * target.covs.to(x.device, torch.float64) \
        + ts[:, None, None, None] ** 2 * eye                           # C_k, (m, K, D, D)
    chol = torch.linalg.cholesky(covs)
    precision = torch.cholesky_solve(eye.expand_as(covs), chol)       # C_k^{-1}
    diff = x.double()[:, None, :] - (1 - t)[:, None, None] * mu        # x - (1 - t) mu_k, (n, K, D)
    sol = (precision @ diff[..., None])[..., 0]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_w = torch.log(target.weights.to(x.device, torch.float64))
    terms = log_w - 0.5 * (target.dim * _LOG_2PI + logdet + (diff * sol).sum(-1))   # log w_k N(x; ., C_k), (n, K)
    return torch.softmax(terms, dim=1), sol, t


def marginal_velocity(target: GaussianMixture, x: torch.Tensor, t) -> torch.Tensor:
    """The exact marginal velocity v_t(x) = E[z - x(0) | x_t = x] of the straight path from a Gaussian mixture
    ``target`` (any dimension, full covariances), in closed form (Lipman et al. 2023, eq. (8); no autograd, no
    sampling). x: (n, D); t: a float or a tensor (n,) in [0, 1]; returns (n, D) in x's dtype.

    Given component k, (x(0), z, x_t) are jointly Gaussian: x_t has mean (1 - t) mu_k and covariance
    C_k = (1 - t)^2 Sigma_k + t^2 I, so the posterior means are linear in x,

        E_k[z | x] = t C_k^{-1} (x - (1 - t) mu_k),
        E_k[x(0) | x] = mu_k + (1 - t) Sigma_k C_k^{-1} (x - (1 - t) mu_k),

    and v_t(x) = sum_k r_k(x) (E_k[z | x] - E_k[x(0) | x]) with the responsibilities r_k of p_t (``marginal``).
    Defined on the closed interval, with no division by t or 1 - t: v_0(x) = -x (at t = 0, x is the data point
    and z has mean 0) and v_1(x) = x - E[x(0)] (at t = 1, x is the noise, independent of the data).
    Introduced in notebooks/11_flow_matching.ipynb."""
    resp, sol, t = _posterior(target, x, t)
    mu = target.means.to(x.device, torch.float64)
    covs = target.covs.to(x.device, torch.float64)
    e_z = t[:, None, None] * sol                                              # E_k[z | x]
    e_x0 = mu + (1 - t)[:, None, None] * (covs @ sol[..., None])[..., 0]      # E_k[x(0) | x]
    return (resp[..., None] * (e_z - e_x0)).sum(1).to(x.dtype)


def marginal_score(target: GaussianMixture, x: torch.Tensor, t) -> torch.Tensor:
    """grad_x log p_t(x), the exact score of the straight path's marginal (``marginal``), -sum_k r_k C_k^{-1}
    (x - (1 - t) mu_k): x (n, D), t a float or a tensor (n,) in [0, 1]. The score side of the identities
    (``velocity_from_score``). Introduced in notebooks/11_flow_matching.ipynb."""
    resp, sol, _ = _posterior(target, x, t)
    return -(resp[..., None] * sol).sum(1).to(x.dtype)


def _identity_args(name: str, value, x, t, *, below_one: bool = False, above_zero: bool = False):
    x = validate.batch("x", x)
    value = validate.tensor(name, value)
    if value.shape != x.shape:
        raise ValueError(f"{name} has shape {tuple(value.shape)}; expected x's shape {tuple(x.shape)}.")
    given, t = t, _times(t, x)
    if below_one and bool((t >= 1).any()):
        raise ValueError(f"t={validate.show(given)} reaches 1, where v = -(x + t score) / "
                         f"(1 - t) divides by 0 (the score of p_1 = N(0, I) is -x and v_1 = x - E[x(0)] needs the "
                         f"data's mean); pass t < 1, or use the velocity itself at t = 1.")
    if above_zero and bool((t <= 0).any()):
        raise ValueError(f"t={validate.show(given)} reaches 0, where score = "
                         f"-(x + (1 - t) v) / t divides by 0 (p_0 is the data, whose score the velocity v_0 = -x "
                         f"does not tell); pass t > 0.")
    return per_sample(t, x)


def velocity_from_score(score: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """v = -(x + t score) / (1 - t): the straight path's velocity from the score of p_t at x (tensors of one shape
    (n, ...); t a float or (n,) in [0, 1), since 1 - t divides). It is the probability-flow ODE's drift
    f - (1/2) g^2 score (eq. (7)) of the SDE whose kernel is this path (f = -x / (1 - t), g^2 = 2 t / (1 - t)).
    Introduced in notebooks/11_flow_matching.ipynb."""
    t = _identity_args("score", score, x, t, below_one=True)
    return -(x + t * score) / (1 - t)


def score_from_velocity(v: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """grad log p_t(x) = -(x + (1 - t) v) / t = -E[z | x_t = x] / t: the score from the straight path's velocity
    (Tweedie's formula; t in (0, 1], since t divides). Inverse of ``velocity_from_score``.
    Introduced in notebooks/11_flow_matching.ipynb."""
    t = _identity_args("v", v, x, t, above_zero=True)
    return -(x + (1 - t) * v) / t


def denoiser_from_velocity(v: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """E[x(0) | x_t = x] = x - t v: the denoiser from the straight path's velocity (x = (1 - t) x(0) + t z and
    v = E[z - x(0) | x]), for t in [0, 1]; the data prediction of ``sg.sde.denoiser`` (notebook 08) in flow form.
    Introduced in notebooks/11_flow_matching.ipynb."""
    t = _identity_args("v", v, x, t)
    return x - t * v


def cfm_loss(net, x0: torch.Tensor, generator: torch.Generator | None = None, t=None, *,
             check: bool = True) -> torch.Tensor:
    """The conditional flow matching loss (Lipman et al. 2023, eq. (9) with the path of section 4.1 at sigma_min = 0;
    Liu et al. 2023, eq. (1)):

        E_t E_x(0) E_z || v_theta(x_t, t) - (z - x(0)) ||^2,    x_t = (1 - t) x(0) + t z,  t ~ U(0, 1),

    summed over dimensions and averaged over the batch, no 1/2 (as ``sg.losses.sde_dsm``). Its minimiser is the
    marginal velocity E[z - x(0) | x_t] (the argument of denoising score matching, notebook 03): the loss equals
    E||v_theta - v_t||^2 plus a constant that does not depend on the net. ``net(x, t)`` gets t of shape (n,)
    and returns a velocity shaped like x (n, ...). ``t``: fixed times (a float or (n,)) instead of U(0, 1);
    ``generator`` seeds t (first) and z (on x0's device). ``check=False`` skips the argument checks (no host
    synchronisation, for a GPU training loop). Returns a 0-d tensor with the net's gradient.
    Introduced in notebooks/11_flow_matching.ipynb."""
    if check:
        if not callable(net):
            raise TypeError(f"net={net!r} must be callable: net(x, t) -> a velocity shaped like x.")
        x0 = validate.batch("x0", x0)
    n = x0.shape[0]
    if t is None:
        t = torch.rand(n, generator=generator, device=x0.device, dtype=x0.dtype)
    elif check or not isinstance(t, torch.Tensor):
        t = _times(t, x0)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    tb = per_sample(t, x0)
    v = net((1 - tb) * x0 + tb * z, t)                       # x_t = (1 - t) x(0) + t z
    if check and (not isinstance(v, torch.Tensor) or v.shape != x0.shape):
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"net returned {got}; expected a velocity of x's shape {tuple(x0.shape)}.")
    return (v - (z - x0)).pow(2).reshape(n, -1).sum(1).mean()   # || v_theta - (z - x(0)) ||^2


def _flow_start(z, n_steps, t_max, t_min, generator, device, dtype):
    """The start x(t_max) (``z`` itself, or N(0, I) draws of the shape ``z``) and the time grid t_max > ... > t_min."""
    n_steps = validate.count("n_steps", n_steps)
    t_max = validate.positive("t_max", t_max)
    t_min = validate.positive("t_min", t_min, allow_zero=True)
    if t_max > 1 or not t_min < t_max:
        raise ValueError(f"t_max={t_max!r}, t_min={t_min!r}: expected 0 <= t_min < t_max <= 1 (the flow runs from "
                         f"the noise at t = 1 down to the data at t = 0).")
    if isinstance(z, torch.Tensor):
        x = validate.batch("z", z).clone()
    else:
        x = torch.randn(validate.shape("z", z), generator=generator, device=device, dtype=dtype)
    return x, n_steps, torch.linspace(t_max, t_min, n_steps + 1, dtype=torch.float64).tolist()


def _velocity(velocity_fn, x, t: float, step: float) -> torch.Tensor:
    v = call_score(velocity_fn, x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype),
                   where=f"at t={t:.4g}", step_size=step)
    if not isinstance(v, torch.Tensor) or v.shape != x.shape:
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"velocity_fn returned {got}; expected a tensor of x's shape {tuple(x.shape)}.")
    return v


@torch.no_grad()
def euler_flow(velocity_fn, z, n_steps: int, t_max: float = 1.0, t_min: float = 0.0, *,
               generator: torch.Generator | None = None, device=None, dtype=torch.float32,
               return_path: bool = False, progress: bool = False):
    """Sampling by the flow's ODE dx/dt = v_t(x) with Euler's method, from the noise at t = ``t_max`` down to the data
    at ``t_min`` on the uniform grid t_0 = t_max > t_1 > ... > t_N = t_min (Liu et al. 2023, section 2; Lipman et
    al. 2023, section 6):

        x <- x + (t_{k+1} - t_k) v(x, t_k)          (t_{k+1} - t_k < 0: a step back in time)

    First order (global error O(1/N)); exact in one step for a straight flow (v constant along each path).
    ``z``: the start x(t_max), a tensor (n, ...) (a sample of N(0, I) for t_max = 1), or a shape to draw it
    from N(0, I) (seeded by ``generator``, on ``device`` in ``dtype``). v is never evaluated at t_min.
    Returns (x, nfe) with nfe = N, or (x, nfe, path) with ``return_path`` (path: (N + 1, n, ...), from x(t_max)).
    Introduced in notebooks/11_flow_matching.ipynb."""
    check_callable("velocity_fn", velocity_fn)
    x, n_steps, ts = _flow_start(z, n_steps, t_max, t_min, generator, device, dtype)
    path = [x.clone()] if return_path else None
    for k in progress_steps(n_steps, progress, "Euler flow"):
        h = ts[k + 1] - ts[k]
        x = x + h * _velocity(velocity_fn, x, ts[k], -h)      # x <- x + (t_{k+1} - t_k) v(x, t_k)
        if path is not None:
            path.append(x.clone())
    check_finite(x, "at the end of the Euler flow", 1.0 / n_steps)
    return (x, n_steps, torch.stack(path)) if return_path else (x, n_steps)


@torch.no_grad()
def heun_flow(velocity_fn, z, n_steps: int, t_max: float = 1.0, t_min: float = 0.0, *,
              generator: torch.Generator | None = None, device=None, dtype=torch.float32,
              return_path: bool = False, progress: bool = False):
    """Sampling by the flow's ODE dx/dt = v_t(x) with Heun's method (the trapezoidal rule, second order: global
    error O(1/N^2)), on the grid of ``euler_flow``; the EDM sampler's step (Karras et al. 2022, Algorithm 1) in t:

        d = v(x, t_k),  x' = x + h d,  d' = v(x', t_{k+1}),  x <- x + h (d + d') / 2,     h = t_{k+1} - t_k < 0

    except that a last step ending at t_min = 0 stays Euler, as in EDM, so v is never evaluated at t = 0 (where a
    velocity made from a score, ``velocity_from_score`` of a VE or VP model, is 0/0); the order stays two.
    nfe = 2N - 1 for t_min = 0, 2N for t_min > 0. Args and returns as for ``euler_flow``.
    Introduced in notebooks/11_flow_matching.ipynb."""
    check_callable("velocity_fn", velocity_fn)
    x, n_steps, ts = _flow_start(z, n_steps, t_max, t_min, generator, device, dtype)
    path = [x.clone()] if return_path else None
    nfe = 0
    for k in progress_steps(n_steps, progress, "Heun flow"):
        t, t_next = ts[k], ts[k + 1]
        h = t_next - t
        d = _velocity(velocity_fn, x, t, -h)
        x_next = x + h * d                                     # Euler predictor
        nfe += 1
        if t_next > 0:
            d_next = _velocity(velocity_fn, x_next, t_next, -h)
            x_next = x + h * (0.5 * d + 0.5 * d_next)           # trapezoidal corrector
            nfe += 1
        x = x_next
        if path is not None:
            path.append(x.clone())
    check_finite(x, "at the end of the Heun flow", 1.0 / n_steps)
    return (x, nfe, torch.stack(path)) if return_path else (x, nfe)


class _StraightPathODE:
    """The flow's ODE dx/dt = v(x, t) in the form ``sg.solvers.log_likelihood`` takes: an "SDE" whose probability-
    flow drift is the function handed in the score's place (here the velocity itself) and whose prior p_1 is
    N(0, I), the straight path's end."""

    @staticmethod
    def reverse_drift(x, t, velocity, ode=True, check=False):
        return velocity

    @staticmethod
    def prior_log_prob(x):
        return -0.5 * (x[0].numel() * _LOG_2PI + x.reshape(len(x), -1).pow(2).sum(1))


def log_likelihood_flow(velocity_fn, x: torch.Tensor, *, t_min: float = 1e-5, rtol: float = 1e-5,
                        atol: float = 1e-5, divergence: str = "auto",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """log p_{t_min}(x) in nats, per sample (n,), by the instantaneous change of variables (Chen et al. 2018,
    "Neural ordinary differential equations", theorem 1; Lipman et al. 2023, appendix C): integrate x and
    div v along dx/dt = v_t(x) from t = ``t_min`` up to 1 with adaptive RK45, then

        log p_{t_min}(x) = log N(x(1); 0, I) + int_{t_min}^1 div v_t(x(t)) dt.

    Notebook 06's machinery, ``sg.solvers.log_likelihood``, run on this ODE (its drift is the velocity, its prior
    N(0, I)); ``rtol``, ``atol``, ``divergence`` ("auto", "exact" or "hutchinson") and ``generator`` as there.
    ``t_min`` in (0, 1) (that function's ``eps``): p_{t_min} differs from the data density p_0 by O(D t_min) in log
    (the path shrinks the data by 1 - t_min and blurs it by t_min). For an exact velocity it equals
    ``marginal(target, t_min).log_prob(x)`` to the solver's tolerance.
    Introduced in notebooks/11_flow_matching.ipynb."""
    check_callable("velocity_fn", velocity_fn)
    t_min = validate.positive("t_min", t_min)
    if t_min >= 1:
        raise ValueError(f"t_min={t_min!r} is invalid: expected 0 < t_min < 1 (where the integration starts, "
                         f"e.g. 1e-5).")
    return log_likelihood(_StraightPathODE(), velocity_fn, x, rtol=rtol, atol=atol, eps=t_min,
                          divergence=divergence, generator=generator)


def flow_time(sigma) -> torch.Tensor:
    """u = sigma / (1 + sigma): the straight path's time at which it carries the noise level sigma of the VE view
    y = x(0) + sigma z, since y / (1 + sigma) = (1 - u) x(0) + u z (notebook 11: every Gaussian path is the same
    family; ``sg.recipes``' "flow" recipe trains a denoiser on this time)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64) if not isinstance(sigma, torch.Tensor) else sigma
    if (sigma < 0).any() or not torch.isfinite(sigma).all():
        raise ValueError(f"sigma={validate.show(sigma)} must be finite and >= 0.")
    return sigma / (1 + sigma)


def velocity_of_sde_model(score_fn, sde):
    """The straight path's velocity ``velocity_fn(x, u)`` of a score model ``score_fn(x, t)`` of ``sde`` (VE or
    VP, eq. (6)): with sigma = u / (1 - u) and y = x / (1 - u) (the VE view), the model's time t = sde.t_of_sigma(
    sigma) and state alpha_t y, the denoiser D = y + sigma^2 alpha_t s(alpha_t y, t) (Tweedie) and
    v = (x - D) / u (x(0) = x - u v). Exact when ``score_fn`` is the exact score of the SDE's marginal: then it
    equals ``marginal_velocity`` (tested). So any trained score model samples as a flow with ``euler_flow`` or
    ``heun_flow``, for u in [flow_time(sigma_min), flow_time(sigma_max)] of its SDE (notebook 11)."""
    check_callable("score_fn", score_fn)

    def velocity(x: torch.Tensor, u) -> torch.Tensor:
        u = _times(u, x, "u")
        if (u <= 0).any() or (u >= 1).any():
            raise ValueError(f"u={validate.show(u)} must lie strictly inside (0, 1); sample from "
                             f"flow_time(sigma_max) down to flow_time(sigma_min) of the model's SDE.")
        # in float64, and within the SDE's range (u_max = flow_time(sigma_max) rounded to x's dtype can exceed it)
        sigma64 = (u.double() / (1 - u.double())).clamp(max=sde.max_noise_level())
        t = sde.t_of_sigma(sigma64).to(x.dtype)
        sigma = sigma64.to(x.dtype)
        alpha, _ = sde.marginal_coeffs(t, check=False)
        y = x / per_sample(1 - u, x)
        s = score_fn(per_sample(alpha, x) * y, t)
        denoised = y + per_sample(sigma**2 * alpha, x) * s
        return (x - denoised) / per_sample(u, x)

    return velocity


def _sde_flow(solver, sde, score_fn, shape, n_steps, *, eps, generator=None, device=None, progress=False):
    """N - 1 steps of ``solver`` from u_max to u_end = flow_time(sigma(eps)), then one Euler step to u = 0 (the
    denoised x(0) = x - u_end v, EDM's last step to sigma = 0): the network is never asked below u_end, and the
    samples carry no leftover noise of level sigma(eps)."""
    velocity = velocity_of_sde_model(score_fn, sde)
    n_steps = validate.count("n_steps", n_steps)
    u_max = float(flow_time(torch.tensor(sde.max_noise_level(), dtype=torch.float64)))
    u_end = float(flow_time(sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64))))
    # x(u_max) = (1 - u_max) x(0) + u_max z: started at u_max z, as the reverse SDE starts at N(0, sigma_max^2 I)
    z = u_max * torch.randn(validate.shape("shape", shape), generator=generator, device=device)
    if n_steps == 1:
        return solver(velocity, z, 1, t_max=u_max, t_min=0.0, progress=progress)
    x, nfe = solver(velocity, z, n_steps - 1, t_max=u_max, t_min=u_end, progress=progress)
    with torch.no_grad():
        x = x - u_end * _velocity(velocity, x, u_end, u_end)   # the last step, Euler from u_end to 0
    return x, nfe + 1


def flow_euler_sampler(sde, score_fn, shape, n_steps: int, *, eps: float = 1e-3, generator=None, device=None,
                       progress: bool = False):
    """A score model of ``sde`` sampled as a flow: ``euler_flow`` on ``velocity_of_sde_model(score_fn, sde)``
    from u = flow_time(sigma_max), started at u z: N - 1 uniform steps down to u_end = flow_time(sigma(eps)), then
    the last step to u = 0 (the denoised estimate x - u_end v, as EDM's sampler ends at sigma = 0 and notebook 11
    section 8 at t = 0); returns (x, nfe). ``sg.samplers``' "flow-euler" (N evaluations); notebook 11 and
    ``python -m scoregen_lite sample --sampler flow-euler``."""
    return _sde_flow(euler_flow, sde, score_fn, shape, n_steps, eps=eps, generator=generator, device=device,
                     progress=progress)


def flow_heun_sampler(sde, score_fn, shape, n_steps: int, *, eps: float = 1e-3, generator=None, device=None,
                      progress: bool = False):
    """As ``flow_euler_sampler`` with ``heun_flow`` (2N - 1 evaluations: N - 1 Heun steps, the last step Euler, as
    in EDM). ``sg.samplers``' "flow-heun", the default sampler of a checkpoint trained with the "flow" recipe."""
    return _sde_flow(heun_flow, sde, score_fn, shape, n_steps, eps=eps, generator=generator, device=device,
                     progress=progress)
