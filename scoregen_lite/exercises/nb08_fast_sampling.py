"""Exercise checks of notebook 08, ``notebooks/08_fast_sampling.ipynb``: Karras et al.'s noise schedule, one
Heun step of the ODE in sigma, and the whole EDM Heun sampler with churn (Algorithm 2; reference
``sg.samplers.edm_sampler``, its churn noise handed to the student's function, and
``edm_heun_churn_reference``, the exercise's answer with the catalogued mistakes behind flags)."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, at_point, compare, fmt, passed, points, points_of

__all__: list[str] = ["check_karras_sigmas", "check_heun_step", "check_edm_heun_churn"]


@points(1)
def check_karras_sigmas(fn) -> None:
    """Check ``fn(sigma_max, sigma_min, n_steps, rho) -> (N,)``: Karras et al.'s schedule,
    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho (notebook 08).

    Recognised mistakes: the powers swapped (interpolating sigma^rho), i/N instead of i/(N-1), the
    schedule in ascending order, and interpolating sigma itself (rho ignored)."""
    for smax, smin, n, rho in ((80.0, 0.002, 6, 7.0), (10.0, 0.05, 9, 3.0)):
        i = torch.arange(n, dtype=torch.float64)
        lo, hi = smin ** (1 / rho), smax ** (1 / rho)
        want = (hi + i / (n - 1) * (lo - hi)) ** rho
        mistakes = [((smax**rho + i / (n - 1) * (smin**rho - smax**rho)) ** (1 / rho),
                     "the powers are swapped: interpolate evenly in sigma^(1/rho), then raise to the power rho"),
                    ((hi + i / n * (lo - hi)) ** rho, "the last level must be sigma_min itself: step i runs over "
                                                      "i/(N-1), not i/N"),
                    (want.flip(0), "the schedule runs from sigma_max down to sigma_min (a sampler starts at the "
                                   "largest noise)"),
                    (smax + i / (n - 1) * (smin - smax), "that is uniform in sigma (rho = 1) whatever rho is: "
                                                         "interpolate sigma^(1/rho)")]
        got = fn(smax, smin, n, rho)
        got = torch.as_tensor(got, dtype=torch.float64) if not isinstance(got, torch.Tensor) else got
        compare("karras_sigmas", got, want, 1e-6 * smax, f"N={n} levels from {smax} to {smin}, rho={rho}",
                 mistakes=mistakes, where=lambda k: f"i = {k}")
    passed("karras_sigmas", "two schedules, ends and interior")


@points(2)
def check_heun_step(fn) -> None:
    """Check ``fn(x, sigma, sigma_next, denoise) -> x_next``: one Heun step of the ODE in sigma,
    dx/dsigma = (x - D(x; sigma)) / sigma (EDM, Algorithm 1): d = (x - D(x; sigma)) / sigma, the Euler
    prediction x' = x + (sigma_next - sigma) d, d' = (x' - D(x'; sigma_next)) / sigma_next, and
    x_next = x + (sigma_next - sigma) (d + d') / 2 (notebook 08). ``denoise(x, sigma)`` is D.

    Recognised mistakes: Euler's step alone, the slope with the wrong sign, the second slope at x
    instead of at the prediction x', and the two slopes added instead of averaged."""
    gen = torch.Generator().manual_seed(8)
    x = 3 * torch.randn(16, 2, generator=gen, dtype=torch.float64)
    m, s0 = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.6

    def denoise(v, sigma):   # the exact denoiser of N(m, s0^2 I) data, Tweedie's formula
        return (s0**2 * v + sigma**2 * m) / (s0**2 + sigma**2)

    for sigma, sigma_next in ((2.0, 1.2), (0.5, 0.3)):
        h = sigma_next - sigma
        d = (x - denoise(x, sigma)) / sigma
        x_e = x + h * d
        d2 = (x_e - denoise(x_e, sigma_next)) / sigma_next
        want = x + h * (d + d2) / 2
        wrong_sign_d = (denoise(x, sigma) - x) / sigma
        x_w = x + h * wrong_sign_d
        mistakes = [(x_e, "that is Euler's step: Heun also evaluates the slope at the prediction x' and averages "
                          "the two"),
                    (x + h * (wrong_sign_d + (denoise(x_w, sigma_next) - x_w) / sigma_next) / 2,
                     "the slope has the wrong sign: dx/dsigma = (x - D(x; sigma)) / sigma, and sigma decreases"),
                    (x + h * (d + (x - denoise(x, sigma_next)) / sigma_next) / 2,
                     "the second slope is taken at x; take it at the Euler prediction x' = x + (sigma_next - sigma) d"),
                    (x + h * (d + d2), "the slopes are added: Heun's step uses their average, (d + d') / 2")]
        compare("heun_step", fn(x, sigma, sigma_next, denoise), want, 1e-9,
                 f"from sigma={sigma} to {sigma_next}", mistakes=mistakes, where=lambda i: at_point(x, i))
    passed("heun_step", "two Heun steps of dx/dsigma = (x - D) / sigma")


def edm_heun_churn_reference(denoise, sigmas, noise, churn_noise, churn, s_tmin, s_tmax, s_noise, *,
                             no_noise=False, std_t_hat=False, slope_at_start=False, from_sigma=False,
                             no_cap=False, no_window=False, euler_only=False, no_top=False):
    """EDM's stochastic sampler (Karras et al. 2022, "Elucidating the design space of diffusion-based generative
    models", Algorithm 2) with its noise given, the answer of notebook 08's exercise 3, and (through the flags) the
    catalogued mistakes of ``check_edm_heun_churn``. From x = sigma_0 * noise, for each step i = 0, ..., N - 1:

        eta     = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax else 0   (EDM's gamma_i)
        t^      = min((1 + eta) sigma_i, sigma_0)            (never above the schedule's top: step 0 is not churned)
        x^      = x + sqrt(t^2 - sigma_i^2) S_noise churn_noise[i]                  (churn: back up to t^)
        d       = (x^ - D(x^; t^)) / t^,   x' = x^ + (sigma_{i+1} - t^) d           (Euler step of dx/dsigma)
        if sigma_{i+1} > 0:  d' = (x' - D(x'; sigma_{i+1})) / sigma_{i+1},
                             x' = x^ + (sigma_{i+1} - t^) (d + d') / 2               (Heun's correction)

    ``sigmas`` is sigma_0 > ... > sigma_{N-1} > sigma_N = 0; returns x at sigma = 0. t^ is capped at sigma_0, as
    ``sg.samplers.edm_sampler`` caps it at the SDE's largest level, where its default schedule starts (the network
    has seen no level above it). Introduced in notebooks/08_fast_sampling.ipynb."""
    n = len(sigmas) - 1
    x = float(sigmas[0]) * noise
    for i in range(n):
        s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = churn / n if no_cap else min(churn / n, math.sqrt(2.0) - 1.0)
        if not (no_window or s_tmin <= s_cur <= s_tmax):
            gamma = 0.0
        t_hat = s_cur * (1.0 + gamma)
        if not no_top:
            t_hat = min(t_hat, float(sigmas[0]))
        std = t_hat if std_t_hat else math.sqrt(t_hat**2 - s_cur**2)
        x_hat = x if no_noise else x + std * s_noise * churn_noise[i]
        start = s_cur if from_sigma else t_hat
        d = (x_hat - denoise(x_hat, t_hat)) / t_hat
        x_next = x_hat + (s_next - start) * d
        if s_next > 0 and not euler_only:
            at = x_hat if slope_at_start else x_next
            d_next = (at - denoise(at, s_next)) / s_next
            x_next = x_hat + (s_next - start) * 0.5 * (d + d_next)
        x = x_next
    return x


@points(3)
def check_edm_heun_churn(fn) -> None:
    """Check ``fn(denoise, sigmas, noise, churn_noise, churn, s_tmin, s_tmax, s_noise) -> x``: the whole EDM Heun
    sampler with churn (Karras et al. 2022, Algorithm 2; notebook 08, exercise 3). ``denoise(x, sigma)`` is the
    exact denoiser of the ring, ``sigmas`` a float64 tensor sigma_0 > ... > sigma_N = 0 (N = 6), ``noise`` (n, 2) the
    N(0, I) start, ``churn_noise`` (N, n, 2) the fresh noise of each step; return x at sigma = 0, (n, 2). The
    reference is ``sg.samplers.edm_sampler`` on the VE SDE with the exact score, fed the same noise; the schedule
    starts at the SDE's largest level, so t^ = min((1 + eta) sigma_i, sigma_0) is edm_sampler's cap.

    Three settings: churn capped (S_churn / N above sqrt(2) - 1) on a window of sigma that holds sigma_0 (so the cap
    at sigma_0 binds on step 0) with S_noise = 1.007, churn below the cap on another window, and no churn.
    Recognised mistakes: Heun's correction on the last step (the denoiser called at sigma = 0), no churn noise, churn
    noise of std t^ instead of sqrt(t^2 - sigma_i^2), the correction's second slope taken at x^ instead of at Euler's
    prediction, the step measured from sigma_i instead of t^, eta (EDM's gamma_i) not capped, t^ raised above
    sigma_0, the window ignored, and Euler without the correction."""
    from ..core.densities import SDEMarginal, ring
    from ..core.fast import edm_sampler, sigma_schedule
    from ..core.sde import SDES

    p = ring(dtype=torch.float64)
    ve = SDES["VE"]()
    top = ve.max_noise_level()

    def exact_denoise(x, sigma):
        return x + float(sigma) ** 2 * p.perturbed_score(x, float(sigma))

    def student_denoise(x, sigma):
        if float(sigma) <= 0:
            raise ExerciseFailed("edm_heun_churn: your sampler called the denoiser at sigma = 0: the last step goes to "
                                 "sigma_N = 0, where Heun's second slope (x' - D(x'; 0)) / 0 is undefined; take the "
                                 "Euler step alone on the last step (Algorithm 2 corrects only if sigma_{i+1} > 0: "
                                 "x' = x^ + (0 - t^) (x^ - D(x^; t^)) / t^ = D(x^; t^), the final denoising)")
        return exact_denoise(x, sigma)

    n_levels, n_pts = 6, 8
    sigmas = sigma_schedule(ve, n_levels)
    assert float(sigmas[0]) == top, "the schedule must start at the SDE's largest level"
    noise = torch.randn(n_pts, 2, generator=torch.Generator().manual_seed(81), dtype=torch.float64)
    settings = [(10.0, 0.05, 50.0, 1.007, 82), (1.2, 0.01, 2.0, 1.0, 83), (0.0, 0.0, float("inf"), 1.0, 84)]
    for churn, s_tmin, s_tmax, s_noise, seed in settings:
        # the noise edm_sampler draws (only at churned steps, in order), and independent draws at the other steps
        gamma = min(churn / n_levels, math.sqrt(2.0) - 1.0)
        g, g_other = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 100)
        zs = []
        for i in range(n_levels):
            s = float(sigmas[i])
            churned = gamma > 0 and s_tmin <= s <= s_tmax and min(s * (1 + gamma), top) > s
            zs.append(torch.randn(noise.shape, generator=g if churned else g_other, dtype=torch.float64))
        zs = torch.stack(zs)
        want, _ = edm_sampler(ve, SDEMarginal(p, ve).score, None, n_levels, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax,
                              s_noise=s_noise, noise=noise, generator=torch.Generator().manual_seed(seed),
                              dtype=torch.float64)
        run = lambda **kw: edm_heun_churn_reference(exact_denoise, sigmas, noise, zs, churn, s_tmin, s_tmax,  # noqa: E731
                                                    s_noise, **kw)
        mistakes = [
            (run(no_noise=True), "no churn noise: raising the level to t^ = (1 + eta) sigma_i is done by adding "
                                 "fresh noise, x^ = x + sqrt(t^2 - sigma_i^2) S_noise z_i; without it x^ still has "
                                 "noise of std sigma_i while the solver treats it as std t^"),
            (run(std_t_hat=True), "the churn noise has std t^ * S_noise: x already carries noise of std sigma_i, so "
                                  "reaching t^ needs only the difference in variance, std sqrt(t^2 - sigma_i^2) S_noise"),
            (run(slope_at_start=True), "the correction averages the wrong slopes: Heun's second slope d' is taken at "
                                       "Euler's prediction x' = x^ + (sigma_{i+1} - t^) d and sigma_{i+1}, not at x^"),
            (run(from_sigma=True), "the step is measured from sigma_i: after the churn the state is at level t^, so "
                                   "the step is (sigma_{i+1} - t^), in the Euler step and in the correction"),
            (run(no_cap=True), "eta (EDM's gamma_i) is not capped: eta = min(S_churn / N, sqrt(2) - 1); the cap keeps "
                               "t^ <= sqrt(2) sigma_i, so the fresh noise's variance t^2 - sigma_i^2 is at most "
                               "sigma_i^2, the noise already there (Karras et al. 2022, section 4: never more new "
                               "noise than is already present)"),
            (run(no_top=True), "t^ rises above sigma_0: the schedule starts at the SDE's largest level, and the "
                               "network has seen no level above it, so t^ = min((1 + eta) sigma_i, sigma_0); step 0 "
                               "is never churned (sg.samplers.edm_sampler caps it the same way)"),
            (run(no_window=True), "the churn window is ignored: eta = 0 unless S_tmin <= sigma_i <= S_tmax"),
            (run(euler_only=True), "Euler without Heun's correction: except on the last step, evaluate "
                                   "d' = (x' - D(x'; sigma_{i+1})) / sigma_{i+1} at Euler's prediction x' and step "
                                   "from x^ with the average (d + d') / 2"),
        ]
        what = (f"Algorithm 2 on {n_levels} levels from sigma = {float(sigmas[0]):.3g}, S_churn = {churn:g}, "
                f"window [{s_tmin:g}, {s_tmax:g}], S_noise = {s_noise:g}")
        got = fn(student_denoise, sigmas.clone(), noise.clone(), zs.clone(), churn, s_tmin, s_tmax, s_noise)
        if isinstance(got, (tuple, list)):
            raise ExerciseFailed(f"edm_heun_churn: your function returned a {type(got).__name__}; expected only the "
                                 f"samples at sigma = 0, a tensor of shape {tuple(noise.shape)}.")
        compare("edm_heun_churn", got, want, 1e-9 * float(want.abs().max()), what, mistakes=mistakes,
                where=lambda i: "point " + str(i) + " starting from noise " + fmt(noise[i]))
    passed("edm_heun_churn", "Algorithm 2 with capped, below-cap and no churn matches sg.samplers.edm_sampler fed "
                             "the same noise")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
