"""How good is a learned score, and how good are samples?

Score error against a known score (on points or on a grid), a density-weighted
Fisher divergence, and the energy distance between two sample sets. Introduced
in notebooks/02_score_matching.ipynb and 03_denoising_score_matching.ipynb.
"""
from __future__ import annotations

import torch

from . import _checks

__all__ = ["score_mse", "fisher_divergence", "score_error_map", "error_by_density", "energy_distance"]


@torch.no_grad()
def score_mse(score_fn, true_score_fn, x: torch.Tensor) -> float:
    """Mean over the points x of ||s(x) - s*(x)||^2 (summed over dimensions)."""
    x = _checks.batch("x", x)
    diff = score_fn(x) - true_score_fn(x)
    return diff.pow(2).reshape(len(x), -1).sum(1).mean().item()


@torch.no_grad()
def fisher_divergence(score_fn, density, n: int = 10_000, generator: torch.Generator | None = None) -> float:
    """Density-weighted Fisher divergence (1/2) E_{x~p} ||s(x) - grad log p(x)||^2, by Monte Carlo
    with ``n`` samples of ``density`` (anything with ``sample`` and ``score``, e.g. a mixture).

    This is the quantity score matching minimises, eq. (2): errors count where
    the data are, and not at all where p is negligible.
    """
    n = _checks.count("n", n)
    x = density.sample(n, generator=generator)
    return 0.5 * score_mse(score_fn, density.score, x)


@torch.no_grad()
def score_error_map(score_fn, true_score_fn, bounds, n: int = 80) -> torch.Tensor:
    """||s(x) - s*(x)|| on an n x n grid over ``bounds``, as an (n, n) image (y along rows).

    Plot it next to the density to see where a learned score is wrong.
    """
    from .plot import grid

    n = _checks.count("n", n, minimum=2)
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

    n = _checks.count("n", n, minimum=2)
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
                    generator: torch.Generator | None = None) -> float:
    """Energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| between two sample sets (n, D), (m, D).

    Zero exactly when the two distributions are equal, positive otherwise; it
    has the units of x. The within-set terms exclude the diagonal (unbiased
    U-statistics), so for two samples of one distribution the estimate scatters
    around 0 and can be slightly negative. Sets larger than ``max_points`` are subsampled (seeded by
    ``generator``) to bound the O(n m) cost.
    """
    x = _checks.points("x", x).double()
    y = _checks.points("y", y).double()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} but y has {y.shape[1]}; expected the same.")
    max_points = _checks.count("max_points", max_points, minimum=2)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need at least 2 points in each set, got {len(x)} and {len(y)}.")

    def sub(a):
        if len(a) <= max_points:
            return a
        return a[torch.randperm(len(a), generator=generator)[:max_points].to(a.device)]

    x, y = sub(x), sub(y)

    def mean_within(a):
        d = torch.cdist(a, a)
        return d.sum() / (len(a) * (len(a) - 1))

    return (2 * torch.cdist(x, y).mean() - mean_within(x) - mean_within(y)).item()
