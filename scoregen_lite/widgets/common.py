"""What the 2D explorers share (notebooks 01-06): the uniform start, the energy distance to a ready-made target
and its noise floor, cached density images, the artists every view draws (a density, a sample scatter, weight
bars, the figure shown when the chains diverged), the ``detail`` of a preview and its label, and the Langevin
chains of the exact score in one fused NumPy loop (``mixture_chains``). The explorers themselves are in
``sg.widgets.scores`` (Langevin, DSM) and ``sg.widgets.ladders`` (noise schedule, annealed Langevin, reverse SDE).
"""
from __future__ import annotations

import contextlib
import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..core import densities, metrics, plot

__all__ = ["uniform_start", "energy_floor", "target_image", "named_target", "energy_distance_to_target",
           "density_axes", "sample_scatter", "weight_bars", "set_bars", "diverged_figure", "check_detail",
           "detail_count", "preview_label", "show_preview", "level_mixture", "mixture_chains", "score_arrays",
           "numpy_score", "one_thread"]


def uniform_start(n: int, bounds, generator=None, dtype=torch.float32) -> torch.Tensor:
    """n points uniform on the box ``bounds`` = (xmin, xmax, ymin, ymax): a prior that knows nothing."""
    xmin, xmax, ymin, ymax = bounds
    u = torch.rand(n, 2, generator=generator, dtype=dtype)
    return torch.stack([xmin + (xmax - xmin) * u[:, 0], ymin + (ymax - ymin) * u[:, 1]], dim=1)


@functools.lru_cache(maxsize=32)
def energy_floor(target: str, n: int, m: int = 4000, repeats: int = 5) -> tuple[float, float]:
    """(mean, std) of the energy distance between two independent samples (sizes n and m) of a ready-made
    target: the noise floor printed beside every distance a view shows (computed once per target and size,
    seeded, then cached so that sliders stay fast)."""
    floor = metrics.energy_noise_floor(densities.target(target), n, m, repeats=repeats,
                                       generator=torch.Generator().manual_seed(12345))
    return floor["mean"], floor["std"]


@functools.lru_cache(maxsize=128)
def _mixture_image(mixture, sigma: float, n: int):
    q = mixture.perturb(sigma) if sigma > 0 else mixture
    return plot.density_image(q.log_prob, mixture.bounds(), n=n)


def target_image(target, sigma: float = 0.0, n: int = 160):
    """``sg.plot.density_image`` of a mixture (a ready-made target's name, or a ``GaussianMixture``) at
    ``sigma`` = 0, or of its perturbed density q_sigma, over the mixture's plotting window, on n x n points:
    computed once per (mixture, sigma, n) and cached, so that moving a slider does not re-evaluate a density
    on 25,600 grid points. Returns (image, bounds)."""
    p = named_target(target) if isinstance(target, str) else target
    return _mixture_image(p, float(sigma), int(n)), p.bounds()


@functools.lru_cache(maxsize=None)
def named_target(target: str):
    """One mixture object per ready-made target, so its cached images are found again."""
    return densities.target(target)


@functools.lru_cache(maxsize=32)
def _reference(target: str, m: int = 4000, seed: int = 1):
    """The m true samples every energy distance of a view is taken against, with their mean distance
    within (fixed per target and cached: half of an energy distance's cost)."""
    y = densities.target(target).sample(m, generator=torch.Generator().manual_seed(seed))
    return y, metrics.mean_distance_within(y)


def energy_distance_to_target(x, target: str, generator) -> float:
    """Energy distance of samples x to the target's fixed 4000-point reference (``sg.metrics.energy_distance``)."""
    y, within = _reference(target)
    return metrics.energy_distance(x, y, generator=generator, y_within=within)


def density_axes(ax, image, bounds, cmap=plot.DENSITY_CMAP):
    """An ``imshow`` of a density image as ``sg.plot.density`` draws it; returns the AxesImage. The colour
    scale is fixed to [0, 1] (the images are p / max p), not taken from the first image: ``set_data`` keeps
    the scale, so an image updated in place looks as it would drawn fresh."""
    im = ax.imshow(image, origin="lower", extent=bounds, cmap=cmap, aspect="equal", interpolation="bilinear",
                   vmin=0.0, vmax=1.0)
    ax.set_xlim(bounds[0], bounds[1]); ax.set_ylim(bounds[2], bounds[3])
    return im


def sample_scatter(ax, s: float = 2.0):
    """An empty sample scatter in the style of ``sg.plot.samples`` (filled by ``set_offsets``)."""
    return ax.scatter([], [], s=s, c=plot.SAMPLE_COLOR, alpha=0.5, linewidths=0)


def weight_bars(ax, n: int):
    """True weights beside sample fractions per mixture component; returns the two bar containers."""
    k = range(n)
    true = ax.bar([i - 0.2 for i in k], [0.0] * n, width=0.4, label="true weight", color="#7c3aed")
    got = ax.bar([i + 0.2 for i in k], [0.0] * n, width=0.4, label="fraction of samples", color=plot.SAMPLE_COLOR,
                 hatch="//", edgecolor="white", linewidth=0)
    ax.set_xticks(list(k))
    ax.set_xlabel("mixture component")
    ax.set_ylim(0, 1)
    return true, got


def set_bars(bars, values):
    """Set the heights of the bars of ``weight_bars`` to ``values`` (one per component)."""
    for rect, v in zip(bars, values):
        rect.set_height(v)


def diverged_figure(err: Exception, info: dict):
    """The figure a view shows instead of samples when the chains blew up (``SamplerDiverged``)."""
    info.update(diverged=True, message=str(err))
    fig, ax = plt.subplots(figsize=(6.0, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, "the chains diverged:\n" + "\n".join(str(err).split("; ")[:-1]) + "\nlower eps", ha="center", va="center",
            fontsize=9, color="#b91c1c", wrap=True)
    return fig, info


def check_detail(detail) -> float:
    """The ``detail`` of a 2D view (the fraction of its chains, points or grid that it computes: 1.0 draws the
    full figure, less a preview that says so), checked before any work."""
    if isinstance(detail, bool) or not isinstance(detail, (int, float)) or not 0.0 < float(detail) <= 1.0:
        raise ValueError(f"detail={detail!r} is invalid: expected a fraction in (0, 1] of the work to draw "
                         f"(1.0 for the full figure, e.g. 0.25 for a quick preview).")
    return float(detail)


def detail_count(detail: float, n: int, minimum: int = 2) -> int:
    """How many of n chains (points, grid points) a view computes at ``detail``: round(detail n), at least
    ``minimum`` (an energy distance needs two points) and at most n."""
    return n if detail >= 1.0 else min(n, max(minimum, round(detail * n)))


def preview_label(ax):
    """The label a view shows on a preview (``show_preview``), hidden on the full figure: a text artist in the
    top left corner of ``ax``, kept with the view's moving artists so a full pass after a preview hides it."""
    return ax.text(0.02, 0.98, " ", transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#92400e",
                   bbox={"boxstyle": "round,pad=0.2", "facecolor": "#fef3c7", "edgecolor": "none", "alpha": 0.9},
                   visible=False, zorder=10)


def show_preview(label, drawn: int, total: int, what: str) -> None:
    """Show "preview: 500 of 2,000 chains" on ``label`` when a view drew fewer than all; hide it otherwise."""
    label.set_visible(drawn < total)
    label.set_text(f"preview: {drawn:,} of {total:,} {what}" if drawn < total else " ")


@functools.lru_cache(maxsize=512)
def level_mixture(target: str, sigma: float):
    """q_sigma of a ready-made target (``GaussianMixture.perturb``; the target itself at sigma = 0): one object
    per (target, sigma), so its cached parameters serve every slider move that keeps the level."""
    p = named_target(target)
    return p.perturb(sigma) if sigma > 0 else p


def mixture_chains(levels, x0: torch.Tensor, n_steps: int, generator, keep: int = 0):
    """Langevin chains, eq. (1), on exact mixture scores, every chain at once in one loop: for each
    (mixture, eps) of ``levels``, ``n_steps`` steps of x <- x + (eps / 2) s(x) + sqrt(eps) z.

    The chains of ``sg.samplers.langevin(p.score, ...)`` (one level) and ``sg.samplers.annealed_langevin(
    p.perturbed_score, ...)`` (a ladder, eps_i of its formula): the same start, the same noise drawn in the same
    order from ``generator``, the same update, in NumPy (``numpy_score``), whose operations on a few thousand
    numbers cost a microsecond where torch's cost several, and checked for overflow once per 100 steps and per
    level instead of at every step. NumPy's exp and matrix products round some last bits differently, so the
    chains agree up to float rounding (measured on the five targets with 1 to 2,000 chains, 300 Langevin steps
    at eps = 0.1 and 10 x 100 annealed steps: at most 1e-3 apart, most chains to the bit, every chain in the
    same mode; ``tests/test_widgets.py``). Returns torch tensors (x_T, the states at the start and after each level
    (L + 1, n, D), the path of the first ``keep`` chains (L n_steps + 1, keep, D)), or None when chains
    overflowed: the caller then runs the checked sampler from the same generator state, which says where
    (``SamplerDiverged``). Used by ``langevin_view`` (notebook 01) and ``annealed_view`` (notebook 05)."""
    xt = np.ascontiguousarray(x0.numpy().T)                           # points as columns (D, n)
    ends, path = [xt], [xt[:, :keep]]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):   # overflow: checked below
        for mixture, eps in levels:
            arrays = score_arrays(mixture, xt.dtype)
            half, noise_scale = xt.dtype.type(0.5 * eps), xt.dtype.type(math.sqrt(eps))   # as torch rounds them
            for i in range(n_steps):
                z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).numpy().T
                xt = xt + half * numpy_score(arrays, xt) + noise_scale * z          # eq. (1)
                if keep:
                    path.append(xt[:, :keep])
                if (i + 1) % 100 == 0 and not np.isfinite(xt).all():
                    return None
            if not np.isfinite(xt).all():
                return None
            ends.append(xt)
    as_rows = lambda arrays: torch.from_numpy(np.stack([a.T for a in arrays]))   # noqa: E731
    return torch.from_numpy(np.ascontiguousarray(xt.T)), as_rows(ends), as_rows(path)


@functools.lru_cache(maxsize=512)
def score_arrays(mixture, dtype=np.float32):
    """The constants of a mixture's exact score for ``numpy_score``, as NumPy arrays of ``dtype`` (computed in
    float64 from ``weights``, ``means``, ``covs``, as ``GaussianMixture`` computes its own, and cached per
    mixture): the precisions Sigma_k^{-1} stacked (K D, D), Sigma_k^{-1} mu_k (K D, 1), mu_k (K, D, 1) and
    log w_k - (D log 2 pi + log det Sigma_k) / 2 (K, 1)."""
    covs, means = mixture.covs.double(), mixture.means.double()
    chol = torch.linalg.cholesky(covs)
    precision = torch.cholesky_inverse(chol)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    k, d = means.shape
    const = torch.log(mixture.weights.double()) - 0.5 * (d * math.log(2 * math.pi) + logdet)
    out = (precision.reshape(k * d, d), (precision @ means[:, :, None]).reshape(k * d, 1), means[:, :, None],
           const[:, None])
    return tuple(np.ascontiguousarray(a.numpy().astype(dtype)) for a in out)


def numpy_score(arrays, xt: np.ndarray) -> np.ndarray:
    """The exact score grad log p = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k) of a Gaussian mixture
    (``GaussianMixture.score``'s formula) at the points xt, stored as columns (D, n), in NumPy: ``arrays`` are
    ``score_arrays(mixture)``. Returns the scores as columns (D, n)."""
    precision, p_mu, mu, const = arrays
    k, d = mu.shape[:2]
    sol = precision @ xt - p_mu                                        # Sigma_k^{-1} (x - mu_k), (K D, n)
    maha = ((xt - mu).reshape(k * d, -1) * sol).reshape(k, d, -1).sum(1)    # Mahalanobis terms, (K, n)
    logits = const - 0.5 * maha                                        # log w_k N(x; mu_k, Sigma_k), (K, n)
    resp = np.exp(logits - logits.max(0))
    resp /= resp.sum(0)                                                # responsibilities r_k(x)
    return -(resp[:, None] * sol.reshape(k, d, -1)).sum(0)


@contextlib.contextmanager
def one_thread():
    """Run the block on one CPU thread, torch's intra-op threads restored after it: a loop of small tensor
    operations (2,000 chains x 2 coordinates) runs faster on one thread than on two, whose start and join cost
    more than the arithmetic they share (measured: 1,000 annealed Langevin steps of 2,000 chains in 90 ms on
    one thread, 112 to 160 ms on two, before they moved to NumPy). Used by ``sg.widgets.scores.langevin_view``
    (MALA) and ``sg.widgets.ladders.sde_view`` (exact score)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
