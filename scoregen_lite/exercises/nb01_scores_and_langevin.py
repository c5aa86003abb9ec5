"""Exercise checks of notebook 01, ``notebooks/01_scores_and_langevin.ipynb``: the score of a Gaussian and of a
Gaussian mixture (log-sum-exp far from the modes), one step of unadjusted Langevin dynamics, eq. (1), and the whole
sampler. ``check_langevin``'s reference is ``sg.samplers.langevin``; its noise, drawn from a seeded generator, is
handed to the student's function (``_replayed_noise``), so the comparison is exact."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, at_point, compare, fmt, passed, points, points_of

__all__: list[str] = ["check_gaussian_score", "check_gmm_score", "check_langevin_step", "check_langevin"]


def _test_mixtures():
    from ..core.densities import GaussianMixture, smiley, two_modes

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    covs3 = a @ a.transpose(1, 2) + 0.5 * torch.eye(3, dtype=torch.float64)
    mix3 = GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                           torch.randn(3, 3, generator=gen, dtype=torch.float64), covs3)
    return [smiley(torch.float64), two_modes(torch.float64), mix3], gen


@points(1)
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
    err = compare("gaussian_score", fn(x, mean, cov), want, 1e-6, "score of N(mean, cov) at 50 points in 3D",
                   mistakes=mistakes, where=lambda i: at_point(x, i))
    passed("gaussian_score", f"max error {err:.1e} on a 3D Gaussian")


@points(2)
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
                    f"{fmt(x[i])}, {dist:.1f} from the nearest mean), finite near the modes: every component "
                    f"density underflows to 0 there and 0/0 follows. Work with log-densities and normalise them "
                    f"with log-sum-exp (torch.softmax of the log w_k + log N_k) ({what}).")
        precision = torch.linalg.inv(p.covs)
        comp = -torch.einsum("kde,nke->nkd", precision, x[:, None, :] - p.means[None])
        prior = (p.weights[None, :, None] * comp).sum(1)
        want = p.score(x)
        mistakes = [(prior, "the weights must depend on x: use the responsibilities r_k(x) = w_k N_k(x) / p(x), "
                            "not the prior weights w_k"),
                    (-want, "the sign is flipped: each component pulls x towards its mean, -Sigma_k^{-1}(x - mu_k)")]
        worst = max(worst, compare("gmm_score", got, want, 1e-5, what, mistakes=mistakes,
                                    where=lambda i: at_point(x, i) + (" (far from every mode)" if i >= len(near) else "")))
    passed("gmm_score", f"max error {worst:.1e} on 3 mixtures, far-away points included")


@points(1)
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
        compare("langevin_step", fn(x, s, eps, z), want, 1e-10, f"eq. (1) with eps={eps}", mistakes=mistakes,
                 where=lambda i: at_point(x, i))
    passed("langevin_step", "matches eq. (1) for eps = 0.01 and 0.5")


def _replayed_noise(seed: int, shape, n: int, dtype=torch.float64) -> torch.Tensor:
    """The ``n`` draws ``torch.randn(shape, generator=g)`` that a reference seeded with ``seed`` makes, in order."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for _ in range(n)])


def _langevin_loop(score_fn, x0, step_size, n_steps, zs, *, drift=0.5, noise="sqrt", same_z=False, short=False,
                   noise_first=False, score_once=False):
    """Eq. (1) looped with the noise given (``zs[k]`` at step k), and the catalogued mistakes of ``check_langevin``."""
    scale = {"sqrt": math.sqrt(step_size), "eps": step_size, "sqrt2": math.sqrt(2 * step_size), "none": 0.0}[noise]
    x = x0.clone()
    s0 = score_fn(x)
    for k in range(n_steps - 1 if short else n_steps):
        z = zs[0] if same_z else zs[k]
        if noise_first:
            x = x + scale * z
            x = x + drift * step_size * score_fn(x)
        else:
            x = x + drift * step_size * (s0 if score_once else score_fn(x)) + scale * z
    return x


@points(3)
def check_langevin(fn) -> None:
    """Check ``fn(score_fn, x0, step_size, n_steps, zs) -> x``: the whole unadjusted Langevin sampler, eq. (1)
    (notebook 01): from x = x0 (n, D), ``n_steps`` updates x <- x + (eps/2) score_fn(x) + sqrt(eps) zs[k], with
    eps = ``step_size`` and the noise of step k given as ``zs[k]`` (``zs`` has shape (n_steps, n, D)); return the
    last state x_T, shape (n, D), without changing x0. The reference is ``sg.samplers.langevin`` fed the same noise.

    Recognised mistakes: eps instead of eps/2 on the score, eps or sqrt(2 eps) (the NCSN code's convention) on
    the noise, no noise, the same z at every step, one step too few, the noise added before the score is
    evaluated, the score computed once before the loop, and x0 changed in place."""
    from ..core.densities import ring
    from ..core.mcmc import langevin

    p = ring(dtype=torch.float64)
    score_fn = p.score
    gen = torch.Generator().manual_seed(21)
    x0 = 6 * torch.rand(10, 2, generator=gen, dtype=torch.float64) - 3
    n_steps = 6
    for eps, seed in ((0.02, 22), (0.3, 23)):
        want = langevin(score_fn, x0, eps, n_steps, generator=torch.Generator().manual_seed(seed))
        zs = _replayed_noise(seed, x0.shape, n_steps)
        run = lambda **kw: _langevin_loop(score_fn, x0, eps, n_steps, zs, **kw)  # noqa: E731
        mistakes = [(run(drift=1.0), "the score term is eps * score: eq. (1) moves by (eps/2) * score"),
                    (run(noise="eps"), "the noise is eps * z: its std must be sqrt(eps), so that each step adds "
                                       "variance eps"),
                    (run(noise="sqrt2"), "the noise is sqrt(2 eps) * z, the NCSN code's convention (x + alpha s + "
                                         "sqrt(2 alpha) z with alpha = eps/2); eq. (1) uses sqrt(eps)"),
                    (run(noise="none"), "no noise: without sqrt(eps) z the chains climb to a mode (gradient ascent) "
                                        "instead of sampling"),
                    (run(same_z=True), "every step uses the same noise zs[0]: step k needs its own draw zs[k], "
                                       "otherwise the noise adds up coherently and the chain drifts"),
                    (run(short=True), "one step too few: n_steps updates, for k = 0, ..., n_steps - 1 "
                                      "(range(n_steps))"),
                    (run(noise_first=True), "the score is evaluated after the noise was added: eq. (1) takes the "
                                            "score at the current state x_{t-1}, then adds the drift and the noise "
                                            "to it together"),
                    (run(score_once=True), "the score is computed once, before the loop: it must be evaluated at "
                                           "the current state at every step")]
        x_in = x0.clone()
        got = fn(score_fn, x_in, eps, n_steps, zs.clone())
        if isinstance(got, (tuple, list)):
            raise ExerciseFailed(f"langevin: your function returned a {type(got).__name__}; expected only the last "
                                 f"state x_T, a tensor of shape {tuple(x0.shape)}.")
        if isinstance(got, torch.Tensor) and got.shape == (n_steps + 1, *x0.shape):
            raise ExerciseFailed(f"langevin: your result has shape {tuple(got.shape)}, the whole path; return only "
                                 f"the last state x_T, shape {tuple(x0.shape)}.")
        compare("langevin", got, want, 1e-9 * float(want.abs().max()),
                f"{n_steps} steps of eq. (1) with eps = {eps} on the ring of 8 Gaussians",
                mistakes=mistakes, where=lambda i: "chain " + str(i) + " starting at x0 = " + fmt(x0[i]))
        if not torch.equal(x_in, x0):
            raise ExerciseFailed("langevin: the result is right, but your function changed x0 in place (x = x0 "
                                 "then x += ... writes into x0): the caller's starting points are lost; start from "
                                 "x = x0.clone() or write x = x + ...")
    passed("langevin",
           f"{n_steps} steps of eq. (1) for eps = 0.02 and 0.3 match sg.samplers.langevin fed the same noise")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
