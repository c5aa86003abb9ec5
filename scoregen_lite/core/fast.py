"""Fast samplers in the noise level sigma (notebook 08): the sigma ladder of EDM (Karras et al. 2022, eq. (5)),
EDM's Heun/Euler sampler with optional churn (Algorithm 2), and DPM-Solver++(2M) (Lu et al. 2022).
Reachable as ``sg.samplers.<name>``. Introduced in notebooks/08_fast_sampling.ipynb."""
from __future__ import annotations

import math

import torch

from .. import validate
from ..runtime import progress_steps, randn_like
from ..validate import call_score, check_callable, check_finite, check_score_output
from .schedules import karras_sigmas
from .sde import denoiser

__all__ = ["sigma_schedule", "edm_sampler", "churn_etas", "dpm_solver_2m"]


def sigma_schedule(sde, n_steps: int, *, rho: float = 7.0, sigma_min: float | None = None,
                   sigma_max: float | None = None, eps: float = 1e-3) -> torch.Tensor:
    """The sampling schedule of ``edm_sampler`` and ``dpm_solver_2m``: ``karras_sigmas`` between
    ``sigma_max`` (default: the SDE's largest level, sigma_of_t(1)) and ``sigma_min`` (default:
    sigma_of_t(eps), the smallest level a network trained on t in [eps, 1] has seen), with
    sigma_N = 0 appended: float64, length n_steps + 1. Raises ValueError, before any work, for
    levels outside the SDE's range. Introduced in notebooks/08_fast_sampling.ipynb."""
    eps = validate.eps(eps)
    top = sde.max_noise_level()
    smax = top if sigma_max is None else validate.positive("sigma_max", sigma_max)
    smin = float(sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64))) if sigma_min is None \
        else validate.positive("sigma_min", sigma_min)
    if smax > top * (1 + 1e-6):
        raise ValueError(f"sigma_max={smax!r} is above the largest noise level of {sde!r}, sigma_of_t(1) = "
                         f"{top:.6g}; pass sigma_max <= {top:.6g} (or leave it None).")
    sig = karras_sigmas(smax, smin, n_steps, rho=rho, dtype=torch.float64)
    return torch.cat([sig, sig.new_zeros(1)])


def _sigma_start(sigmas, shape, noise, generator, device, dtype):
    """x at sigma_max: sigma_max * noise, noise ~ N(0, I) (or the given ``noise``, e.g. fixed for a widget)."""
    if noise is None:
        noise = torch.randn(validate.shape("shape", shape), generator=generator, device=device, dtype=dtype)
    else:
        noise = validate.batch("noise", noise)
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
    The churn of each level is ``churn_etas``'s eta_i = gamma (the one place the formula is written).
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
    validate.choice("solver", solver, {"heun", "euler"})
    churn = validate.positive("churn", churn, allow_zero=True)
    s_noise = validate.positive("s_noise", s_noise, allow_zero=True)
    s_tmin = validate.positive("s_tmin", s_tmin, allow_zero=True)
    if not (isinstance(s_tmax, (int, float)) and s_tmax > s_tmin):
        raise ValueError(f"s_tmax={s_tmax!r} must be a number larger than s_tmin={s_tmin!r} (float('inf') for all levels).")
    sigmas = sigma_schedule(sde, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max)
    top = sde.max_noise_level()
    D = denoiser(sde, score_fn)
    x = _sigma_start(sigmas, shape, noise, generator, device, dtype)
    n = len(sigmas) - 1
    etas = churn_etas(sigmas, churn, s_tmin, s_tmax, top=top).tolist()   # the one gamma formula (Algorithm 2)
    nfe = 0
    for i in progress_steps(n, progress, f"EDM ({solver})"):
        s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
        s_hat = min(s_cur * (1.0 + etas[i]), top)          # sigma^ = (1 + eta_i) sigma_i; eta_i = 0: no churn
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
    churn = validate.positive("churn", churn, allow_zero=True)
    top = float(sig[0]) if top is None else validate.positive("top", top)
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
