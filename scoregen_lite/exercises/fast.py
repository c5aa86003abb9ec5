"""Exercise checks for methods students build whole: notebook 08: a whole EDM Heun sampler with churn.
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``.

The check compares the student's sampler with the package's (``sg.samplers.edm_sampler``) on fixed inputs: the
reference draws its churn noise from a ``torch.Generator``; the student's function gets the same draws as an
argument (replayed from the same seed), so the comparison is exact, and a catalogue of plausible mistakes, each
computed on the same inputs, gives a hint that teaches."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = ["check_edm_heun_churn"]

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {"check_edm_heun_churn": 3}      # 08: the whole EDM sampler, Algorithm 2


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
    from ..core.sde import SDES
    from ..core.fast import edm_sampler, sigma_schedule

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
