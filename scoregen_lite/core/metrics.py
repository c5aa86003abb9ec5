"""How good is a learned score, and how good are samples?

Score error against a known score (on points or on a grid), a density-weighted
Fisher divergence, and the energy distance between two sample sets. Introduced
in notebooks/02_score_matching.ipynb and 03_denoising_score_matching.ipynb.
"""
from __future__ import annotations

import torch

from .. import validate

__all__ = ["score_mse", "fisher_divergence", "score_error_map", "error_by_density", "energy_distance",
           "mean_distance", "mean_distance_within", "moment_z", "energy_noise_floor", "score_norm_law"]


@torch.no_grad()
def score_mse(score_fn, true_score_fn, x: torch.Tensor) -> float:
    """Mean over the points x of ||s(x) - s*(x)||^2 (summed over dimensions)."""
    x = validate.batch("x", x)
    diff = score_fn(x) - true_score_fn(x)
    return diff.pow(2).reshape(len(x), -1).sum(1).mean().item()


@torch.no_grad()
def fisher_divergence(score_fn, density, n: int = 10_000, generator: torch.Generator | None = None) -> float:
    """Density-weighted Fisher divergence (1/2) E_{x~p} ||s(x) - grad log p(x)||^2, by Monte Carlo
    with ``n`` samples of ``density`` (anything with ``sample`` and ``score``, e.g. a mixture).

    This is the quantity score matching minimises, eq. (2): errors count where
    the data are, and not at all where p is negligible.
    """
    n = validate.count("n", n)
    x = density.sample(n, generator=generator)
    return 0.5 * score_mse(score_fn, density.score, x)


@torch.no_grad()
def score_error_map(score_fn, true_score_fn, bounds, n: int = 80) -> torch.Tensor:
    """||s(x) - s*(x)|| on an n x n grid over ``bounds``, as an (n, n) image (y along rows).

    Plot it next to the density to see where a learned score is wrong.
    """
    from .plot import grid

    n = validate.count("n", n, minimum=2)
    _, _, pts = grid(bounds, n)
    return (score_fn(pts) - true_score_fn(pts)).norm(dim=1).reshape(n, n)


@torch.no_grad()
def error_by_density(score_fn, density, bounds, n: int = 80, high: float = 0.1, low: float = 1e-3,
                     region=None) -> dict:
    """Mean score error ||s(x) - grad log p(x)|| on a grid, split by how likely the grid point is.

    ``density`` gives the true score; ``region`` (default: ``density``) the density r that
    splits the grid: "high" points have r(x) >= high * max r, "low" points r(x) <= low * max r.
    For a DSM network pass the perturbed density as ``density`` and the data density as
    ``region``. Returns {"high": mean error there, "low": mean error there, "ratio": low / high}.
    It turns "the learned score is wrong where data are scarce" into a number (notebook 03).
    """
    from .plot import grid

    n = validate.count("n", n, minimum=2)
    _, _, pts = grid(bounds, n)
    err = (score_fn(pts) - density.score(pts)).norm(dim=1)
    region = density if region is None else region
    log_r = region.log_prob(pts)
    rel = log_r - log_r.max()
    hi_mask, lo_mask = rel >= torch.log(torch.tensor(high)), rel <= torch.log(torch.tensor(low))
    if not hi_mask.any() or not lo_mask.any():
        raise ValueError(f"bounds={bounds} hold no grid point with p >= {high} max or none with p <= {low} max; widen them.")
    out = {"high": err[hi_mask].mean().item(), "low": err[lo_mask].mean().item()}
    out["ratio"] = out["low"] / max(out["high"], 1e-12)
    return out


@torch.no_grad()
def energy_distance(x: torch.Tensor, y: torch.Tensor, max_points: int = 4000,
                    generator: torch.Generator | None = None, y_within: float | None = None) -> float:
    """Energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| between two sample sets (n, D), (m, D).

    Zero exactly when the two distributions are equal, positive otherwise; it
    has the units of x. The within-set terms exclude the diagonal (unbiased
    U-statistics), so for two samples of one distribution the estimate scatters
    around 0 and can be slightly negative. Sets larger than ``max_points`` are subsampled (seeded by
    ``generator``) to bound the O(n m) cost. ``y_within``: E||Y - Y'|| of ``y`` computed once by
    ``mean_distance_within(y)``, when many sample sets are compared with one reference (the widgets do;
    y is then used whole, so it must have at most ``max_points`` rows).
    """
    x = validate.points("x", x).double()
    y = validate.points("y", y).double()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} but y has {y.shape[1]}; expected the same.")
    max_points = validate.count("max_points", max_points, minimum=2)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need at least 2 points in each set, got {len(x)} and {len(y)}.")

    def sub(a):
        if len(a) <= max_points:
            return a
        return a[torch.randperm(len(a), generator=generator)[:max_points].to(a.device)]

    x = sub(x)
    if y_within is None:
        y = sub(y)
        y_term = mean_distance_within(y)
    elif len(y) > max_points:
        raise ValueError(f"y_within was given for y of {len(y)} rows, more than max_points={max_points}: "
                         f"y would be subsampled; pass at most {max_points} reference points.")
    else:
        y_term = float(y_within)
    return 2 * mean_distance(x, y) - mean_distance_within(x) - y_term


@torch.no_grad()
def mean_distance(x: torch.Tensor, y: torch.Tensor, rows: int = 256) -> float:
    """E||X - Y|| over all pairs of rows of x (n, D) and y (m, D), the cross term of ``energy_distance``: the
    distances summed ``rows`` rows of x at a time, so each (rows, m) block stays in the processor's cache (three
    times faster than one (n, m) matrix for a widget's 2,000 x 4,000 points, issue 35); equal to
    ``torch.cdist(x, y).mean()`` up to the order of the sum (float rounding)."""
    total = sum(torch.cdist(x[i:i + rows], y).sum() for i in range(0, len(x), rows))
    return float(total / (len(x) * len(y)))


@torch.no_grad()
def mean_distance_within(a: torch.Tensor) -> float:
    """E||A - A'|| over distinct pairs of the rows of a (n, D), the U-statistic ``energy_distance`` uses for
    each set (diagonal excluded): computed once for a fixed reference and passed as ``y_within``."""
    a = validate.points("a", a).double()
    if len(a) < 2:
        raise ValueError(f"need at least 2 points, got {len(a)}.")
    return float(torch.cdist(a, a).sum() / (len(a) * (len(a) - 1)))


@torch.no_grad()
def energy_noise_floor(target, n: int, m: int | None = None, repeats: int = 10,
                       generator: torch.Generator | None = None) -> dict:
    """The energy distance between two independent samples of the same ``target`` (anything with
    ``sample(n, generator)``), of sizes ``n`` and ``m`` (default n), ``repeats`` times: the noise floor
    that a sampler's distance to a reference sample is compared with.

    Returns {"mean", "std", "values"}. The estimator is unbiased (``energy_distance``), so the floor's
    mean is about 0 and single values are as often negative as positive; a sampler whose distance is
    within a few ``std`` of it is indistinguishable from exact sampling at this sample size.
    Introduced in notebooks/06_sdes.ipynb.
    """
    n = validate.count("n", n, minimum=2)
    m = n if m is None else validate.count("m", m, minimum=2)
    repeats = validate.count("repeats", repeats, minimum=2)
    values = torch.tensor([energy_distance(target.sample(n, generator=generator), target.sample(m, generator=generator),
                                           generator=generator) for _ in range(repeats)], dtype=torch.float64)
    return {"mean": values.mean().item(), "std": values.std().item(), "values": values.tolist()}


@torch.no_grad()
def moment_z(x: torch.Tensor, target) -> dict:
    """How many standard errors a sample's moments are from a mixture's exact ones (``target``: a
    ``GaussianMixture``): a sampler check that complements a distance (notebooks 06, 08, 09).

    Returns {"mean": z of each coordinate of the mean (D,), "cov": z of each covariance entry (D, D),
    "within": z of each entry of the pooled within-component covariance (D, D), "max": the largest |z|}.
    Standard errors are estimated from x itself (std of the per-sample terms / sqrt(n)). "within" uses
    the exact component means: (1/n) sum_i (x_i - mu_k(i))(x_i - mu_k(i))^T, with k(i) the most responsible
    component, against sum_k w_k Sigma_k; for well-separated components it is unbiased, and it catches
    what the global covariance hides behind the spread of the means (e.g. modes blurred by extra noise).
    For exact samples |z| < 4 almost always (D + D^2 values, each roughly standard normal).
    """
    x = validate.points("x", x).double()
    n = len(x)
    if n < 10:
        raise ValueError(f"x has {n} points; moment_z needs at least 10 to estimate standard errors.")
    mean, cov = target.moments()
    mean, cov = mean.to(x.device), cov.to(x.device)
    d = x - x.mean(0)
    z_mean = (x.mean(0) - mean) / (d.std(0) / n**0.5)
    prod = d[:, :, None] * d[:, None, :]
    z_cov = (prod.sum(0) / (n - 1) - cov) / (prod.std(0) / n**0.5).clamp_min(1e-300)
    k = target.assign(x.to(target.means.dtype))
    e = x - target.means.double().to(x.device)[k]
    within = e[:, :, None] * e[:, None, :]
    want = (target.weights.double()[:, None, None] * target.covs.double()).sum(0).to(x.device)
    z_within = (within.mean(0) - want) / (within.std(0) / n**0.5).clamp_min(1e-300)
    worst = max(z_mean.abs().max().item(), z_cov.abs().max().item(), z_within.abs().max().item())
    return {"mean": z_mean, "cov": z_cov, "within": z_within, "max": worst}


# ---------------------------------------------------------------------------
# Sample quality on MNIST (notebook 07): a classifier trained here, no downloaded weights
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Memorisation (notebook 10): does a sample copy a training digit?
# ---------------------------------------------------------------------------


@torch.no_grad()
def score_norm_law(score_fn, sde, x0: torch.Tensor, times, generator: torch.Generator | None = None) -> dict:
    """Notebook 04's 1/sigma law, measured on any score model of an SDE (notebook 07 does it on the U-Net).

    For each t of ``times``, perturb the data points ``x0`` (n, ...) with the SDE's kernel,
    x_t = mean_t(x0) + std_t z, and evaluate s = ``score_fn(x_t, t)``. The kernel's own score is
    -z / std_t, of norm about sqrt(D) / std_t in D dimensions, and where the data are far apart compared
    with std_t (or all within std_t of each other) the true score is close to it. Returns lists over
    ``times`` (a list or 1-d tensor of times in (0, 1]): ``std`` (std_t), ``norm`` (mean ||s||),
    ``ratio`` (std_t * mean ||s|| / sqrt(D): 1 on the law) and ``cosine`` (mean cosine between s and -z:
    1 when the score points back along the noise).
    """
    x0 = validate.batch("x0", x0)
    out = {"std": [], "norm": [], "ratio": [], "cosine": []}
    dim = x0[0].numel()
    for t in torch.as_tensor(times, dtype=torch.float32).reshape(-1).tolist():
        tt = torch.full((len(x0),), float(t), device=x0.device)
        mean, std = sde.marginal_prob(x0, tt)
        z = torch.randn(x0.shape, generator=generator, device=x0.device)   # ``generator`` on x0's device
        s = score_fn(mean + std.view(-1, *[1] * (x0.dim() - 1)) * z, tt).reshape(len(x0), -1).float()
        norm = s.norm(dim=1).mean().item()
        sd = float(std.reshape(-1)[0])
        out["std"].append(sd)
        out["norm"].append(norm)
        out["ratio"].append(sd * norm / dim ** 0.5)
        out["cosine"].append(torch.nn.functional.cosine_similarity(s, -z.reshape(len(x0), -1).float()).mean().item())
    return out
