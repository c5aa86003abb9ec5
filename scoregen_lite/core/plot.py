"""Figures for the course, in one consistent style: density heat maps, score
quiver fields, samples and chain paths, and chain animations.

Every function draws on a matplotlib ``Axes`` it is given (or makes one) and
returns it, so notebooks compose panels freely. Introduced in
notebooks/01_scores_and_langevin.ipynb.
"""
from __future__ import annotations

from typing import Callable

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = [
    "use_style",
    "panels",
    "grid",
    "density",
    "density_image",
    "score_field",
    "samples",
    "paths",
    "animate_chains",
    "image_grid",
    "grid_array",
    "save_image_grid",
    "DENSITY_CMAP",
]

#: Colour map of every density heat map.
DENSITY_CMAP = "magma"
SAMPLE_COLOR = "#22d3ee"
PATH_COLORS = plt.get_cmap("tab10").colors

Bounds = tuple[float, float, float, float]


#: Okabe & Ito's colour-blind-safe palette; the course's line cycle pairs each colour with its own line style,
#: so two curves differ in more than colour (in print and for colour-blind readers).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)))
#: Markers for curves drawn with markers (``marker=MARKERS[k]``), one shape per series.
MARKERS = "osD^vP*"


def use_style() -> None:
    """The course's matplotlib style: figures legible at a notebook's width (100 dpi, fonts of 9 pt or more),
    Okabe & Ito's colour-blind-safe palette with a line style per colour (``PALETTE``, ``LINESTYLES``), no
    top/right spines. Stored notebooks stay small: PNGs at 100 dpi."""
    from cycler import cycler

    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "figure.figsize": (4.0, 3.6),
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": cycler(color=list(PALETTE), linestyle=list(LINESTYLES)),
            "image.cmap": DENSITY_CMAP,
            "animation.embed_limit": 8.0,
            "animation.frame_format": "jpeg",
        }
    )


def panels(ncols: int = 1, nrows: int = 1, size: float = 3.2, **kwargs):
    """``plt.subplots`` with square panels of ``size`` inches; returns (fig, axes as a flat array)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, **kwargs)
    return fig, axes.ravel()


def grid(bounds: Bounds, n: int = 100, dtype=torch.float32):
    """A regular n x n grid over ``bounds`` = (xmin, xmax, ymin, ymax).

    Returns (xs, ys, points): 1D tick arrays and the grid points as a tensor of
    shape (n * n, 2), rows ordered so that ``values.reshape(n, n)`` is an image
    with y along the first axis.
    """
    xmin, xmax, ymin, ymax = bounds
    xs = torch.linspace(xmin, xmax, n, dtype=dtype)
    ys = torch.linspace(ymin, ymax, n, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xs, ys, torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _square(ax, bounds):
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")


@torch.no_grad()
def density_image(log_prob_fn: Callable, bounds: Bounds = (-8, 8, -8, 8), n: int = 160, log: bool = False) -> np.ndarray:
    """The n x n array ``density`` shows: p(x) / max p over the grid of ``bounds`` (or log p, clipped 20 nats
    below its maximum, with ``log=True``), y along the first axis. The widgets cache it per target and noise
    level so that a slider does not re-evaluate the density (``sg.widgets``, issue 23)."""
    _, _, pts = grid(bounds, n)
    values = log_prob_fn(pts).reshape(n, n).float()
    image = values if log else torch.exp(values - values.max())
    if log:
        image = image.clamp(min=float(values.max()) - 20)
    return image.cpu().numpy()


@torch.no_grad()
def density(ax=None, log_prob_fn: Callable | None = None, bounds: Bounds = (-8, 8, -8, 8), n: int = 160,
            log: bool = False, title: str | None = None, cmap: str = DENSITY_CMAP, colorbar: bool = True,
            label: str | None = None, **kwargs):
    """Heat map of p(x) = exp(log_prob_fn(x)) over ``bounds``, scaled to its maximum on the grid (or of log p with
    ``log=True``), with a colour bar that says which (``colorbar=False``: none, e.g. for small multiples that
    share one scale and say so in their caption; ``label``: the bar's text instead, e.g. "q_sigma(x) / max q_sigma"
    for a perturbed density)."""
    ax = _ax(ax)
    im = ax.imshow(density_image(log_prob_fn, bounds, n, log=log), origin="lower", extent=bounds, cmap=cmap,
                   aspect="equal", interpolation="bilinear", **kwargs)
    if colorbar:
        bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label(label or ("log p(x)" if log else "p(x) / max p"), fontsize=9)
        bar.ax.tick_params(labelsize=9)
    _square(ax, bounds)
    if title:
        ax.set_title(title)
    return ax


@torch.no_grad()
def score_field(ax=None, score_fn: Callable | None = None, bounds: Bounds = (-8, 8, -8, 8), n: int = 21,
                normalize: bool = True, color: str = "white", title: str | None = None, **kwargs):
    """Quiver plot of the score field on an n x n grid.

    With ``normalize`` every arrow has the same length (direction only) and its
    opacity shows the magnitude on a log scale: the score is huge far from the
    data and tiny near the modes, so raw arrows would hide one or the other.
    """
    ax = _ax(ax)
    xs, ys, pts = grid(bounds, n)
    s = score_fn(pts).float().cpu()
    u, v = s[:, 0].numpy(), s[:, 1].numpy()
    mag = np.hypot(u, v)
    if normalize:
        u, v = u / (mag + 1e-12), v / (mag + 1e-12)
    xx, yy = np.meshgrid(xs.numpy(), ys.numpy())
    logm = np.log10(mag + 1e-12)
    alpha = 0.35 + 0.65 * (logm - logm.min()) / (np.ptp(logm) + 1e-12)
    kwargs.setdefault("scale", n * 1.15 if normalize else None)
    kwargs.setdefault("width", 0.005)
    colors = matplotlib.colors.to_rgba_array([color] * len(u))
    colors[:, 3] = alpha
    ax.quiver(xx.ravel(), yy.ravel(), u, v, color=colors, angles="xy", **kwargs)
    _square(ax, bounds)
    if title:
        ax.set_title(title)
    return ax


def samples(ax=None, x=None, bounds: Bounds | None = None, color: str = SAMPLE_COLOR, s: float = 2.0,
            alpha: float = 0.5, title: str | None = None, **kwargs):
    """Scatter of 2D points x (n, 2)."""
    ax = _ax(ax)
    x = torch.as_tensor(x).detach().float().cpu()
    ax.scatter(x[:, 0], x[:, 1], s=s, c=color, alpha=alpha, linewidths=0, **kwargs)
    if bounds is not None:
        _square(ax, bounds)
    if title:
        ax.set_title(title)
    return ax


def paths(ax=None, path=None, n_show: int = 8, bounds: Bounds | None = None, title: str | None = None):
    """Chain trajectories: ``path`` of shape (T + 1, n, 2); the first ``n_show`` chains are drawn,
    start marked with a circle and end with a star."""
    ax = _ax(ax)
    p = torch.as_tensor(path).detach().float().cpu()[:, :n_show]
    for i in range(p.shape[1]):
        c = PATH_COLORS[i % len(PATH_COLORS)]
        ax.plot(p[:, i, 0], p[:, i, 1], "-", color=c, lw=0.9, alpha=0.85)
        ax.plot(p[0, i, 0], p[0, i, 1], "o", color=c, ms=4, mec="white", mew=0.5)
        ax.plot(p[-1, i, 0], p[-1, i, 1], "*", color=c, ms=9, mec="white", mew=0.5)
    if bounds is not None:
        _square(ax, bounds)
    if title:
        ax.set_title(title)
    return ax


def animate_chains(path, log_prob_fn: Callable | None = None, bounds: Bounds = (-8, 8, -8, 8),
                   n_frames: int = 30, n_trails: int = 6, size: float = 3.2, fps: int = 8, title: str = ""):
    """Animation of chains moving over a density: all chains as dots, a few with trails.

    ``path`` has shape (T + 1, n, 2) (from ``langevin(..., return_path=True)``).
    Returns an ``IPython.display.HTML`` with a JavaScript player (frames
    embedded as small JPEGs, so a stored notebook stays light).
    """
    from IPython.display import HTML
    from matplotlib import animation

    p = torch.as_tensor(path).detach().float().cpu().numpy()
    frames = np.unique(np.linspace(0, len(p) - 1, min(n_frames, len(p))).round().astype(int))
    fig, ax = plt.subplots(figsize=(size, size))
    if log_prob_fn is not None:
        density(ax, log_prob_fn, bounds)
    else:
        _square(ax, bounds)
    dots = ax.scatter(p[0, :, 0], p[0, :, 1], s=3, c=SAMPLE_COLOR, alpha=0.6, linewidths=0)
    trails = [ax.plot([], [], "-", lw=1, color=PATH_COLORS[i % 10])[0] for i in range(min(n_trails, p.shape[1]))]
    label = ax.set_title(title)

    def update(k):
        step = frames[k]
        dots.set_offsets(p[step])
        for i, line in enumerate(trails):
            line.set_data(p[: step + 1, i, 0], p[: step + 1, i, 1])
        label.set_text(f"{title}  step {step}".strip())
        return [dots, *trails, label]

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=1000 / fps, blit=False)
    html = HTML(anim.to_jshtml(fps=fps, default_mode="once"))
    plt.close(fig)
    return html


def grid_array(images, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Images (n, 1, H, W) or (n, H, W) in [0, 1] tiled ``nrow`` per row on a white canvas, as one array
    (what ``image_grid`` shows; the MNIST widgets refill their image with it, ``sg.widgets.images``)."""
    x = torch.as_tensor(images).detach().float().cpu().clamp(0, 1)
    if x.dim() == 4:
        x = x[:, 0]
    n, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    canvas = np.ones((ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[i].numpy()
    return canvas


def image_grid(ax=None, images=None, nrow: int | None = None, title: str | None = None):
    """Show images (n, 1, H, W) or (n, H, W) in [0, 1] as one grid (white on black digits)."""
    ax = _ax(ax)
    ax.imshow(grid_array(images, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def save_image_grid(images, path, nrow: int | None = None) -> None:
    """Write images as one PNG grid (used by the command line)."""
    plt.imsave(path, grid_array(images, nrow), cmap="gray", vmin=0, vmax=1)
