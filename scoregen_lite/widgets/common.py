"""What the 2D explorers share (notebooks 01-06): the uniform start, the energy distance to a ready-made target
and its noise floor, cached density images, and the artists every view draws (a density, a sample scatter, weight
bars, the figure shown when the chains diverged). The explorers themselves are in ``sg.widgets.scores``
(Langevin, DSM) and ``sg.widgets.ladders`` (noise schedule, annealed Langevin, reverse SDE).
"""
from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import torch

from ..core import densities, metrics, plot

__all__ = ["uniform_start", "energy_floor", "target_image", "named_target", "energy_distance_to_target",
           "density_axes", "sample_scatter", "weight_bars", "set_bars", "diverged_figure"]


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
def _mixture_image(mixture, sigma: float):
    q = mixture.perturb(sigma) if sigma > 0 else mixture
    return plot.density_image(q.log_prob, mixture.bounds())


def target_image(target, sigma: float = 0.0):
    """``sg.plot.density_image`` of a mixture (a ready-made target's name, or a ``GaussianMixture``) at
    ``sigma`` = 0, or of its perturbed density q_sigma, over the mixture's plotting window: computed once per
    (mixture, sigma) and cached, so that moving a slider does not re-evaluate a density on 25,600 grid
    points. Returns (image, bounds)."""
    p = named_target(target) if isinstance(target, str) else target
    return _mixture_image(p, float(sigma)), p.bounds()


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
