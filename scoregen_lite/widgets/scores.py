"""The explorers of scores and how they are learned (notebooks 01 and 03): Langevin dynamics (or MALA) with the
exact score of a ready-made target, and a network trained by denoising score matching against the exact
perturbed score. Two layers each, as ``sg.widgets`` describes: a ``(fig, info)`` view and a widget.
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import validate
from ..core import densities, metrics, plot, samplers
from .common import density_axes, diverged_figure, sample_scatter, set_bars, target_image, uniform_start, weight_bars
from .live import interactive_view, keep, reuse

__all__ = ["langevin_view", "langevin_explorer", "dsm_view", "dsm_explorer"]


def langevin_view(target: str = "two modes (0.2/0.8)", step_size: float = 0.1, n_steps: int = 300,
                  sampler: str = "Langevin", n_chains: int = 1000, seed: int = 0, fig=None):
    """Run Langevin (eq. (1)) or MALA with the exact score of a ready-made target and show the result.

    Chains start uniform over the plotting window. Left: the density, the final
    samples and a few paths. Right: the fraction of samples in each mixture
    component next to the true weights. ``fig``: the figure this view drew last
    time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)`` with info keys ``target``, ``step_size``, ``n_steps``,
    ``sampler``, ``true_weights``, ``sample_weights`` (lists), ``max_weight_error``,
    ``diverged`` (True when the step blew the chains up; the figure then says so) and, for MALA,
    ``acceptance``. Used by ``langevin_explorer``; introduced in
    notebooks/01_scores_and_langevin.ipynb.
    """
    p = densities.target(target)
    gen = torch.Generator().manual_seed(seed)
    bounds = p.bounds()
    info = {"target": target, "step_size": step_size, "n_steps": n_steps, "sampler": sampler, "diverged": False}
    validate.choice("sampler", sampler, {"Langevin", "MALA"})
    x0 = uniform_start(n_chains, bounds, generator=gen)
    try:
        if sampler == "MALA":
            x, rate, path = samplers.mala(p.log_prob, p.score, x0, step_size, n_steps, return_path=True,
                                          generator=gen)
            info["acceptance"] = rate
        else:
            x, path = samplers.langevin(p.score, x0, step_size, n_steps, return_path=True, generator=gen)
    except samplers.SamplerDiverged as err:
        info.update(sample_weights=None, max_weight_error=None)
        return diverged_figure(err, info)
    true_w = p.weights.tolist()
    got_w = p.mode_weights(x).tolist()
    info.update(true_weights=true_w, sample_weights=got_w,
                max_weight_error=max(abs(a - b) for a, b in zip(true_w, got_w)))

    n_show = min(5, n_chains)
    live = reuse(fig, ("langevin", target, n_show))
    if live is None:
        fig, (ax, bar) = plt.subplots(1, 2, figsize=(7.2, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
        density_axes(ax, *target_image(target))
        ax.set_aspect("equal")
        scat = sample_scatter(ax)
        lines = []
        for i in range(n_show):
            c = plot.PATH_COLORS[i % len(plot.PATH_COLORS)]
            lines.append((ax.plot([], [], "-", color=c, lw=0.9, alpha=0.85)[0],
                          ax.plot([], [], "o", color=c, ms=4, mec="white", mew=0.5)[0],
                          ax.plot([], [], "*", color=c, ms=9, mec="white", mew=0.5)[0]))
        true_bars, got_bars = weight_bars(bar, p.n_components)
        bar.legend(loc="upper left", fontsize=9, frameon=False)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
        title, bar_title = ax.set_title(" "), bar.set_title(" ")
        live = keep(fig, ("langevin", target, n_show), scat=scat, lines=lines, true=true_bars, got=got_bars,
                    title=title, bar_title=bar_title,
                    moving=[scat, *(a for trio in lines for a in trio), *true_bars, *got_bars, title, bar_title])
    live["scat"].set_offsets(x.float().numpy())
    chains = path[:, :n_show].float().numpy()
    for i, (line, start, end) in enumerate(live["lines"]):
        line.set_data(chains[:, i, 0], chains[:, i, 1])
        start.set_data(chains[:1, i, 0], chains[:1, i, 1])
        end.set_data(chains[-1:, i, 0], chains[-1:, i, 1])
    set_bars(live["true"], true_w)
    set_bars(live["got"], got_w)
    extra = f", accept {info['acceptance']:.0%}" if sampler == "MALA" else ""
    live["title"].set_text(f"{sampler}: eps={step_size:.3g}, T={n_steps}{extra}")
    live["bar_title"].set_text(f"max weight error {info['max_weight_error']:.3f}")
    return fig, info


def langevin_explorer(n_chains: int = 1000) -> W.interactive:
    """Sliders for ``langevin_view``: target, step size eps, number of steps T, sampler.

    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """
    return interactive_view(
        langevin_view,
        target=W.Dropdown(options=list(densities.TARGETS), value="two modes (0.2/0.8)", description="target"),
        step_size=W.FloatLogSlider(value=0.1, base=10, min=-3, max=0.5, step=0.1, description="eps",
                                   continuous_update=False),
        n_steps=W.IntSlider(value=300, min=0, max=2000, step=50, description="T", continuous_update=False),
        sampler=W.ToggleButtons(options=["Langevin", "MALA"], value="Langevin", description="sampler"),
        n_chains=W.fixed(n_chains),
        seed=W.fixed(0),
    )


def dsm_view(nets: dict, density, sigma: float, n_grid: int = 60, fig=None):
    """Learned DSM score at one noise level against the exact perturbed score.

    ``nets`` maps sigma -> a network trained by denoising score matching, eq. (3),
    at that sigma (trained once in the notebook; the view never retrains);
    ``density`` is the data density (a ``GaussianMixture``), so the target is
    ``density.perturb(sigma).score``. Left: q_sigma with the learned field.
    Right: log10 of the error ||s_theta - grad log q_sigma|| with contours of q_sigma.
    ``fig``: the figure this view drew last time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)``, info = {"sigma", "error_high", "error_low", "ratio"}
    (mean error where the data density is high / low, see ``sg.metrics.error_by_density``).
    Introduced in notebooks/03_denoising_score_matching.ipynb.
    """
    if sigma not in nets:
        raise ValueError(f"sigma={sigma!r} has no trained network; choose one of {sorted(nets)}.")
    net = nets[sigma]
    q = density.perturb(sigma)
    bounds = density.bounds()
    stats = metrics.error_by_density(net, q, bounds, region=density)
    err = metrics.score_error_map(net, q.score, bounds, n=n_grid)
    image, _ = target_image(density, sigma)
    xs, ys, pts = plot.grid(bounds, n_grid)
    live = reuse(fig, ("dsm", id(density), n_grid))
    if live is None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(7.4, 3.4))
        dens = density_axes(a, image, bounds)
        im = b.imshow(err.numpy(), origin="lower", extent=bounds, cmap="viridis", vmin=-2, vmax=1.5)
        fig.colorbar(im, ax=b, fraction=0.046, label="log10 error")
        fig.subplots_adjust(left=0.06, right=0.93, bottom=0.1, top=0.9, wspace=0.18)
        live = keep(fig, ("dsm", id(density), n_grid), a=a, b=b, dens=dens, err=im, quiver=None, contour=None,
                    title=a.set_title(" "), err_title=b.set_title(" ", fontsize=9))
    a, b = live["a"], live["b"]
    live["dens"].set_data(image)
    live["err"].set_data(err.clamp(min=1e-3).log10().numpy())
    for name in ("quiver", "contour"):          # redrawn on top (the same order as a fresh figure)
        if live[name] is not None:
            live[name].remove()
    plot.score_field(a, net, bounds, n=17)
    live["quiver"] = a.collections[-1]
    live["contour"] = b.contour(xs.numpy(), ys.numpy(), q.log_prob(pts).reshape(n_grid, n_grid).numpy(), levels=6,
                                colors="white", linewidths=0.6)
    live["title"].set_text(f"q_sigma and learned score, sigma={sigma:g}")
    live["err_title"].set_text(f"error: {stats['high']:.2f} where p is high, {stats['low']:.2f} where low")
    live["moving"] = [live["dens"], live["err"], live["quiver"], live["contour"], live["title"], live["err_title"]]
    return fig, {"sigma": sigma, "error_high": stats["high"], "error_low": stats["low"], "ratio": stats["ratio"]}


def dsm_explorer(nets: dict, density) -> W.interactive:
    """A slider over the trained noise levels of ``nets`` for ``dsm_view``.

    Introduced in notebooks/03_denoising_score_matching.ipynb.
    """
    sigmas = sorted(nets)
    return interactive_view(
        dsm_view,
        nets=W.fixed(nets),
        density=W.fixed(density),
        sigma=W.SelectionSlider(options=sigmas, value=sigmas[0], description="sigma", continuous_update=False),
        n_grid=W.fixed(60),
    )
