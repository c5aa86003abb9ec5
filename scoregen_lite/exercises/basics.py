"""Checks of the short exercises: one formula or one step each (notebooks 01-10); points in ``POINTS``.

In a notebook an exercise is a function the student writes, with the
teacher's solution between two marker lines::

    def gmm_score(x, weights, means, covs):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

followed by a cell ``sg.exercises.check_gmm_score(gmm_score)``, which prints a
pass message or raises ``ExerciseFailed`` (an AssertionError) saying what is wrong.
Student copies and nbgrader sources are written by ``python -m scoregen_lite.courseware.copies``.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "ExerciseFailed",
    "check_gaussian_score",
    "check_gmm_score",
    "check_langevin_step",
    "check_hutchinson_trace",
    "check_dsm_target",
    "check_sigma_max",
    "check_step_sizes",
    "check_em_step",
    "check_ve_std",
    "check_karras_sigmas",
    "check_heun_step",
    "check_guided_score",
    "check_replacement_step",
    "check_edm_coefficients",
    "check_preconditioned_score",
]

from .checking import ExerciseFailed, compare as _compare, fmt as _fmt, passed as _passed  # noqa: E402,F401


#: Points of each exercise's check when the course is graded with nbgrader (``sg.grading``): 1 for a formula
#: of a line or two, 2 for one with a catalogue of subtler mistakes (log-sum-exp, a loop, an estimator).
POINTS = {
    "check_gaussian_score": 1, "check_gmm_score": 2, "check_langevin_step": 1,      # 01
    "check_hutchinson_trace": 2,                                                    # 02
    "check_dsm_target": 1,                                                          # 03
    "check_sigma_max": 1,                                                           # 04
    "check_step_sizes": 1,                                                          # 05
    "check_ve_std": 1, "check_em_step": 2, "check_em_sampler": 2, "check_dsm_loss": 2,  # 06
    "check_train_step": 2,                                                          # 07
    "check_karras_sigmas": 1, "check_heun_step": 2,                                 # 08
    "check_guided_score": 1, "check_label_dropout_loss": 2, "check_replacement_step": 2,  # 09
    "check_edm_coefficients": 1, "check_preconditioned_score": 2,                   # 10
}


def _test_mixtures():
    from ..core.densities import GaussianMixture, smiley, two_modes

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    covs3 = a @ a.transpose(1, 2) + 0.5 * torch.eye(3, dtype=torch.float64)
    mix3 = GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                           torch.randn(3, 3, generator=gen, dtype=torch.float64), covs3)
    return [smiley(torch.float64), two_modes(torch.float64), mix3], gen


def _point(x, i) -> str:
    return "x = " + _fmt(x[i])


def check_gaussian_score(fn) -> None:
    """Check ``fn(x, mean, cov) -> (n, D)`` against -Sigma^{-1}(x - mu) (notebook 01, exercise 1).

    Recognised mistakes: the sign (+Sigma^{-1}(x - mu) points away from the mean), Sigma where its inverse
    belongs, and the covariance left out (-(x - mu), right only for Sigma = I)."""
    from ..core.densities import Gaussian

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    cov = a @ a.T + 0.3 * torch.eye(3, dtype=torch.float64)
    mean = torch.randn(3, generator=gen, dtype=torch.float64)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 2
    want = Gaussian(mean, cov).score(x)
    mistakes = [(-want, "the sign is flipped: the score points towards the mean, grad log p = -Sigma^{-1}(x - mu)"),
                (-(x - mean) @ cov.T, "Sigma appears where its inverse belongs: differentiate -1/2 (x-mu)^T Sigma^{-1} (x-mu)"),
                (-(x - mean), "the covariance is missing: -(x - mu) is the score only when Sigma = I")]
    err = _compare("gaussian_score", fn(x, mean, cov), want, 1e-6, "score of N(mean, cov) at 50 points in 3D",
                   mistakes=mistakes, where=lambda i: _point(x, i))
    _passed("gaussian_score", f"max error {err:.1e} on a 3D Gaussian")


def check_gmm_score(fn) -> None:
    """Check ``fn(x, weights, means, covs) -> (n, D)`` against ``GaussianMixture.score``
    on three mixtures, including points far from every mode (notebook 01, exercise 2).

    Recognised mistakes: NaN or inf only at the far-away points (component densities computed with exp
    underflow to 0 there: use log-sum-exp), prior weights w_k where the responsibilities r_k(x) belong,
    and the sign."""
    mixtures, gen = _test_mixtures()
    worst = 0.0
    for p in mixtures:
        near = p.sample(100, generator=gen)
        x = torch.cat([near, 30 * torch.randn(20, p.dim, generator=gen, dtype=torch.float64)])
        got = fn(x, p.weights, p.means, p.covs)
        what = f"{p.n_components}-component mixture in {p.dim}D"
        if isinstance(got, torch.Tensor) and got.shape == x.shape and not torch.isfinite(got).all():
            rows = ~torch.isfinite(got).all(1)
            far = torch.arange(len(x)) >= len(near)
            if not (rows & ~far).any():
                i = int(torch.nonzero(rows)[0])
                dist = float((x[i] - p.means).norm(dim=1).min())
                raise ExerciseFailed(
                    f"gmm_score: NaN/inf at {int(rows.sum())} points, all far from every mode (e.g. at x = "
                    f"{_fmt(x[i])}, {dist:.1f} from the nearest mean), finite near the modes: every component "
                    f"density underflows to 0 there and 0/0 follows. Work with log-densities and normalise them "
                    f"with log-sum-exp (torch.softmax of the log w_k + log N_k) ({what}).")
        precision = torch.linalg.inv(p.covs)
        comp = -torch.einsum("kde,nke->nkd", precision, x[:, None, :] - p.means[None])
        prior = (p.weights[None, :, None] * comp).sum(1)
        want = p.score(x)
        mistakes = [(prior, "the weights must depend on x: use the responsibilities r_k(x) = w_k N_k(x) / p(x), "
                            "not the prior weights w_k"),
                    (-want, "the sign is flipped: each component pulls x towards its mean, -Sigma_k^{-1}(x - mu_k)")]
        worst = max(worst, _compare("gmm_score", got, want, 1e-5, what, mistakes=mistakes,
                                    where=lambda i: _point(x, i) + (" (far from every mode)" if i >= len(near) else "")))
    _passed("gmm_score", f"max error {worst:.1e} on 3 mixtures, far-away points included")


def check_langevin_step(fn) -> None:
    """Check ``fn(x, score, step_size, z)`` returns x + (eps/2) score + sqrt(eps) z, eq. (1).

    Recognised mistakes: eps instead of eps/2 on the score, eps instead of sqrt(eps) on the noise, the
    NCSN code's sqrt(2 eps) noise mixed into eq. (1)'s convention, and a dropped noise term."""
    gen = torch.Generator().manual_seed(2)
    x, s, z = (torch.randn(64, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    for eps in (0.01, 0.5):
        want = x + 0.5 * eps * s + math.sqrt(eps) * z
        mistakes = [(x + eps * s + math.sqrt(eps) * z, "the score term is eps * score: eq. (1) moves by (eps/2) * score"),
                    (x + 0.5 * eps * s + eps * z, "the noise is eps * z: its std must be sqrt(eps), so that the "
                                                  "variance added per step is eps"),
                    (x + 0.5 * eps * s + math.sqrt(2 * eps) * z, "the noise is sqrt(2 eps) * z, the NCSN code's "
                     "convention (x + alpha s + sqrt(2 alpha) z with alpha = eps/2); eq. (1) uses sqrt(eps)"),
                    (x + 0.5 * eps * s, "the noise term is missing: without sqrt(eps) z the chain climbs to a mode "
                                        "(gradient ascent) instead of sampling")]
        _compare("langevin_step", fn(x, s, eps, z), want, 1e-10, f"eq. (1) with eps={eps}", mistakes=mistakes,
                 where=lambda i: _point(x, i))
    _passed("langevin_step", "matches eq. (1) for eps = 0.01 and 0.5")


def check_hutchinson_trace(fn) -> None:
    """Check ``fn(f, x, n_samples) -> (n,)``, a Hutchinson estimate of tr(d f / d x) per point
    (notebook 02): unbiased on a linear map, within 5 standard errors, and not the exact trace
    computed some other way (its spread must match the estimator's)."""
    gen = torch.Generator().manual_seed(3)
    D = 6
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    f = lambda x: x @ A.T  # noqa: E731  (Jacobian A, trace tr(A))
    x = torch.randn(400, D, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    est = fn(f, x, 1)
    if not isinstance(est, torch.Tensor) or est.shape != (400,):
        got = tuple(est.shape) if isinstance(est, torch.Tensor) else type(est).__name__
        raise ExerciseFailed(f"hutchinson_trace: returned {got}; expected one estimate per point, shape (400,).")
    sym = 0.5 * (A + A.T)
    sd = math.sqrt(2 * float((sym**2).sum()))  # std of v^T A v for v ~ N(0, I); Rademacher is smaller
    mean_err = abs(float(est.mean()) - float(torch.trace(A)))
    if mean_err > 5 * sd / math.sqrt(400):
        raise ExerciseFailed(f"hutchinson_trace: the mean estimate is off by {mean_err:.3g} (> 5 standard errors); "
                             "is it E[v^T J v] with E[v v^T] = I?")
    if float(est.std()) < 0.1 * sd:
        raise ExerciseFailed("hutchinson_trace: the estimates do not vary: with n_samples=1 each one should use a single "
                             "random projection, not the exact trace.")
    k = 8  # more probes: still unbiased, and the spread shrinks as 1 / sqrt(n_samples)
    est_k = fn(f, x, k)
    mean_err_k = abs(float(est_k.mean()) - float(torch.trace(A)))
    if mean_err_k > 5 * sd / math.sqrt(k * 400):
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the mean estimate is off by {mean_err_k:.3g} "
                             f"(> 5 standard errors); average the {k} projections v^T J v, do not sum them.")
    ratio = float(est_k.std()) / float(est.std())
    if not 0.2 < ratio < 0.6:
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the estimates spread {ratio:.2f} times as much as "
                             f"with 1; averaging {k} independent projections should give about 1/sqrt({k}) = "
                             f"{1 / math.sqrt(k):.2f}. Draw a fresh v for each of the n_samples projections.")
    _passed("hutchinson_trace", f"unbiased on a {D}x{D} linear map (mean error {mean_err:.2f}, {5 * sd / 20:.2f} "
                                f"allowed); {k} probes shrink the spread by a factor {ratio:.2f} "
                                f"(1/sqrt({k}) = {1 / math.sqrt(k):.3f} expected)")


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
        _compare("dsm_target", fn(xt, x, sigma), want, 1e-9, f"sigma={sigma}", mistakes=mistakes,
                 where=lambda i: f"x~ = {_fmt(xt[i])}, x = {_fmt(x[i])}")
    _passed("dsm_target", "matches -(x~ - x) / sigma^2 for sigma = 0.1 and 2")


def check_sigma_max(fn) -> None:
    """Check ``fn(x) -> float``: technique 1 of Song & Ermon (2020), the largest pairwise distance
    between training points (notebook 04).

    Recognised mistakes: the mean pairwise distance, the largest distance from the origin, and the
    largest coordinate range (a per-axis max - min)."""
    gen = torch.Generator().manual_seed(5)
    for x in (torch.randn(300, 2, generator=gen) * torch.tensor([5.0, 0.5]) + 3.0, torch.rand(200, 7, generator=gen)):
        d = torch.cdist(x.double(), x.double())
        want = d.max()
        got = fn(x)
        got = torch.as_tensor(float(got.item() if isinstance(got, torch.Tensor) else got), dtype=torch.float64)
        n = len(x)
        mistakes = [(d.sum() / (n * (n - 1)), "that is the mean pairwise distance; technique 1 asks for the largest one, "
                                              "so that sigma_1 can carry a chain from any point to any other"),
                    (x.double().norm(dim=1).max(), "that is the largest distance from the origin; take distances "
                                                   "between pairs of points (torch.cdist)"),
                    ((x.max(0).values - x.min(0).values).double().max(), "that is the largest range of one coordinate; "
                                                                         "the distance between two points uses all coordinates")]
        _compare("sigma_max", got, want, 1e-4 * float(want), f"{tuple(x.shape)} data", mistakes=mistakes)
    _passed("sigma_max", "largest pairwise distance on 2D and 7D data")


def check_step_sizes(fn) -> None:
    """Check ``fn(sigmas, step_size) -> (L,)``: eps_i = step_size * sigma_i^2 / sigma_L^2 (notebook 05).

    Recognised mistakes: sigma_i / sigma_L without the square, the ratio upside down, and sigma_1 (the
    largest level) as the reference instead of sigma_L."""
    from ..core.schedules import geometric_sigmas

    for sig, eps in ((geometric_sigmas(10.0, 0.1, 10, dtype=torch.float64), 5e-3),
                     (torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64), 0.1)):
        want = eps * sig**2 / sig[-1] ** 2
        mistakes = [(eps * sig / sig[-1], "sigma_i / sigma_L is not squared: eps_i must scale like sigma_i^2 (the "
                                          "score scales like 1/sigma_i) to keep the update's signal-to-noise ratio"),
                    (eps * sig[-1] ** 2 / sig**2, "the ratio is upside down: the largest noise level takes the largest step"),
                    (eps * sig**2 / sig[0] ** 2, "the reference level is sigma_1; the rule divides by sigma_L, the "
                                                 "smallest level, whose step is eps")]
        _compare("step_sizes", fn(sig, eps), want, 1e-9 * float(eps * (sig[0] / sig[-1]) ** 2),
                 f"eps_i for {len(sig)} levels, eps={eps}", mistakes=mistakes,
                 where=lambda i: f"level {i + 1}, sigma = {float(sig[i]):.4g}")
    _passed("step_sizes", "eps_i = eps sigma_i^2 / sigma_L^2 on two ladders")


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
        _compare("em_step", fn(x, t, dt, s, sde, z), want, 1e-6 * float(want.abs().max()), f"eq. (7) for the {sde.name} SDE, t={t}, dt={dt}",
                 mistakes=mistakes, where=lambda i: _point(x, i))
    _passed("em_step", "one reverse Euler-Maruyama step of eq. (7) for the VP and VE SDEs")


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
        _compare("ve_std", fn(t, smin, smax), want, 1e-6 * smax, f"sigma_min={smin}, sigma_max={smax}",
                 mistakes=mistakes, where=lambda i: f"t = {float(t[i]):.3g}")
    _passed("ve_std", "the VE marginal std at four times for two ladders")


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
        _compare("karras_sigmas", got, want, 1e-6 * smax, f"N={n} levels from {smax} to {smin}, rho={rho}",
                 mistakes=mistakes, where=lambda k: f"i = {k}")
    _passed("karras_sigmas", "two schedules, ends and interior")


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
        _compare("heun_step", fn(x, sigma, sigma_next, denoise), want, 1e-9,
                 f"from sigma={sigma} to {sigma_next}", mistakes=mistakes, where=lambda i: _point(x, i))
    _passed("heun_step", "two Heun steps of dx/dsigma = (x - D) / sigma")


def check_guided_score(fn) -> None:
    """Check ``fn(s_cond, s_uncond, scale)``: classifier-free guidance, s_u + scale (s_c - s_u)
    (notebook 09). Scale 0 must give s_u and scale 1 s_c.

    Recognised mistakes: Ho & Salimans' w used as the scale ((1 + scale) s_c - scale s_u, which starts
    from the conditional score), the difference the wrong way round, the unconditional score left out
    (scale s_c), and the direction alone (scale (s_c - s_u))."""
    gen = torch.Generator().manual_seed(9)
    s_c, s_u = (torch.randn(16, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    for scale in (2.5, 0.0, 1.0):        # 2.5 first: there every catalogued mistake differs from the others
        want = s_u + scale * (s_c - s_u)
        mistakes = [(s_c + scale * (s_c - s_u), "that is Ho & Salimans' (1 + w) s_c - w s_u with w = scale, i.e. it "
                                                "starts from the conditional score; here scale = w + 1 and the guidance "
                                                "starts from the unconditional one: s_u + scale (s_c - s_u)"),
                    (s_u + scale * (s_u - s_c), "the difference points the wrong way: guidance moves towards the "
                                                "conditional score, s_c - s_u"),
                    (scale * s_c, "the unconditional score is missing: s_u + scale (s_c - s_u)"),
                    (scale * (s_c - s_u), "that is only the guidance direction (the implied classifier's gradient); "
                                          "add it to the unconditional score")]
        _compare("guided_score", fn(s_c, s_u, scale), want, 1e-9, f"scale={scale}", mistakes=mistakes,
                 where=lambda i: f"row {i}")
    _passed("guided_score", "scales 0, 1 and 2.5")


def check_replacement_step(fn) -> None:
    """Check ``fn(x, known, mask, alpha_t, std_t, z)``: the replacement step of inpainting (notebook 09):
    where ``mask`` is 1 the state becomes the known values noised to time t, alpha_t known + std_t z;
    elsewhere it stays x.

    Recognised mistakes: the known values put in without noise, the noise without the scale alpha_t,
    the mask the wrong way round, and the variance std_t^2 used as the std."""
    gen = torch.Generator().manual_seed(10)
    x, known, z = (torch.randn(8, 1, 4, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(1, 4, 4, generator=gen) < 0.5).double()
    for alpha, std in ((0.6, 0.8), (1.0, 2.5)):
        noisy = alpha * known + std * z
        want = mask * noisy + (1 - mask) * x
        mistakes = [(mask * known + (1 - mask) * x, "the known entries must look like a sample at time t: noise them, "
                                                    "alpha_t known + std_t z, until the last step"),
                    (mask * (known + std * z) + (1 - mask) * x, "the known values are not scaled by alpha_t: at time t "
                                                                "the kernel's mean is alpha_t x(0)"),
                    ((1 - mask) * noisy + mask * x, "the mask is the wrong way round: 1 marks a known entry"),
                    (mask * (alpha * known + std**2 * z) + (1 - mask) * x, "std_t^2 is the variance; the noise is "
                                                                           "std_t z")]
        _compare("replacement_step", fn(x, known, mask, alpha, std, z), want, 1e-9,
                 f"alpha_t={alpha}, std_t={std}", mistakes=mistakes,
                 where=lambda i: f"sample {i}")
    _passed("replacement_step", "two times, a random mask")


def check_edm_coefficients(fn) -> None:
    """Check ``fn(sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)``, each a tensor of sigma's shape: EDM's
    preconditioning (Karras et al. 2022, table 1; notebook 10): c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4.

    Recognised mistakes: sd for sd^2 in c_skip, c_out or c_in without the square root, c_noise without the
    1/4, and c_skip and c_out swapped roles (c_skip -> 0 at small sigma)."""
    sigma = torch.tensor([0.002, 0.05, 0.5, 3.0, 80.0], dtype=torch.float64)
    for sd in (0.5, 0.3):
        r2 = sigma**2 + sd**2
        want = [sd**2 / r2, sigma * sd / r2.sqrt(), 1 / r2.sqrt(), sigma.log() / 4]
        got = fn(sigma, sd)
        if not isinstance(got, (tuple, list)) or len(got) != 4:
            raise ExerciseFailed(f"edm_coefficients: return the tuple (c_skip, c_out, c_in, c_noise), got "
                                 f"{type(got).__name__}{'' if not hasattr(got, '__len__') else f' of length {len(got)}'}.")
        names = ("c_skip", "c_out", "c_in", "c_noise")
        catalogue = {
            "c_skip": [(sd / r2, "c_skip = sigma_data^2 / (sigma^2 + sigma_data^2): the data's variance over the noisy "
                                 "input's, the weight of the input in the best linear guess"),
                       (sigma**2 / r2, "c_skip must go to 1 as sigma -> 0 (the input is nearly clean: keep it) and "
                                       "to 0 at large sigma; that is 1 - c_skip")],
            "c_out": [(sigma * sd / r2, "c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2): a standard deviation, "
                                        "with a square root")],
            "c_in": [(1 / r2, "c_in scales the input to unit variance: divide by its std sqrt(sigma^2 + sigma_data^2), "
                              "not its variance")],
            "c_noise": [(sigma.log(), "EDM's c_noise is ln(sigma) / 4 (a quarter keeps it in about [-1.5, 1.5])"),
                        (sigma / 4, "c_noise is the log of sigma, divided by 4")]}
        for name, g, w in zip(names, got, want):
            g = torch.as_tensor(g, dtype=torch.float64)
            _compare(f"edm_coefficients ({name})", g, w, 1e-9 * max(1.0, float(w.abs().max())),
                     f"sigma_data={sd}", mistakes=catalogue[name], where=lambda i: f"sigma = {float(sigma[i]):g}")
    _passed("edm_coefficients", "five noise levels from 0.002 to 80, two sigma_data")


def check_preconditioned_score(fn) -> None:
    """Check ``fn(F, y, sigma, sigma_data) -> score``: the score grad log p(y; sigma) of EDM's preconditioned
    denoiser D = c_skip y + c_out F (notebook 10), by Tweedie's formula: score = (D - y) / sigma^2. ``F`` and ``y``
    are (n, d), ``sigma`` a tensor (n,).

    Recognised mistakes: (y - D) / sigma^2 (the sign), (D - y) / sigma (sigma for sigma^2), the skip term
    dropped (D = c_out F), and the raw output used as the denoiser (D = F)."""
    gen = torch.Generator().manual_seed(11)
    y, F = (torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    sigma = torch.tensor([0.01, 0.1, 0.5, 1.0, 4.0, 30.0], dtype=torch.float64)
    for sd in (0.5, 0.3):
        r2 = (sigma**2 + sd**2)[:, None]
        c_skip, c_out, s = sd**2 / r2, sigma[:, None] * sd / r2.sqrt(), sigma[:, None]
        D = c_skip * y + c_out * F
        want = (D - y) / s**2
        mistakes = [((y - D) / s**2, "the sign: the score points from y towards the denoised guess, (D - y) / sigma^2"),
                    ((D - y) / s, "Tweedie's formula divides by the variance sigma^2, not by sigma"),
                    ((c_out * F - y) / s**2, "D = c_skip y + c_out F: the skip connection is part of the denoiser"),
                    ((F - y) / s**2, "F is the raw network's output; the denoiser is D = c_skip y + c_out F")]
        _compare("preconditioned_score", fn(F, y, sigma, sd), want, 1e-8 * float(want.abs().max()),
                 f"sigma_data={sd}", mistakes=mistakes, where=lambda i: f"sigma = {float(sigma[i]):g}")
    _passed("preconditioned_score", "six noise levels, two sigma_data")
