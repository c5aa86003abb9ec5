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
from .common import (
    check_detail,
    density_axes,
    detail_count,
    diverged_figure,
    mixture_chains,
    named_target,
    one_thread,
    preview_label,
    sample_scatter,
    set_bars,
    show_preview,
    target_image,
    uniform_start,
    weight_bars,
)
from .live import interactive_view, keep, reuse

__all__ = ["langevin_view", "langevin_explorer", "dsm_view", "dsm_explorer"]


def langevin_view(target: str = "two modes (0.2/0.8)", step_size: float = 0.1, n_steps: int = 300,
                  sampler: str = "Langevin", n_chains: int = 1000, seed: int = 0, fig=None, detail: float = 1.0):
    """Run Langevin (eq. (1)) or MALA with the exact score of a ready-made target and show the result.

    Chains start uniform over the plotting window. Left: the density, the final
    samples and a few paths. Right: the fraction of samples in each mixture
    component next to the true weights. ``fig``: the figure this view drew last
    time, updated in place (``sg.widgets.live``). ``detail``: the fraction of the
    chains to run (every chain takes all n_steps steps): below 1 a preview of
    round(detail n_chains) chains, labelled so in the figure, the same picture with
    fewer dots (info then describes those chains).

    Returns ``(fig, info)`` with info keys ``target``, ``step_size``, ``n_steps``,
    ``sampler``, ``true_weights``, ``sample_weights`` (lists), ``max_weight_error``,
    ``diverged`` (True when the step blew the chains up; the figure then says so), ``detail`` and, for MALA,
    ``acceptance``. Langevin runs in one fused loop (``sg.widgets.common.mixture_chains``, the chains of
    ``sg.samplers.langevin``), MALA on one thread (``one_thread``). Used by ``langevin_explorer``; introduced in
    notebooks/01_scores_and_langevin.ipynb.
    """
    detail = check_detail(detail)
    validate.choice("sampler", sampler, {"Langevin", "MALA"})
    p = named_target(target)
    gen = torch.Generator().manual_seed(seed)
    bounds = p.bounds()
    info = {"target": target, "step_size": step_size, "n_steps": n_steps, "sampler": sampler, "diverged": False,
            "detail": detail}
    drawn = detail_count(detail, n_chains, minimum=1)
    x0 = uniform_start(drawn, bounds, generator=gen)
    n_show = min(5, drawn)
    try:
        if sampler == "MALA":
            with one_thread():                                  # small operations: see one_thread
                x, rate, path = samplers.mala(p.log_prob, p.score, x0, step_size, n_steps, return_path=True,
                                              generator=gen)
            info["acceptance"] = rate
        else:
            x, path = _langevin_chains(p, x0, step_size, n_steps, gen, n_show)
    except samplers.SamplerDiverged as err:
        info.update(sample_weights=None, max_weight_error=None)
        return diverged_figure(err, info)
    true_w = p.weights.tolist()
    got_w = p.mode_weights(x).tolist()
    info.update(true_weights=true_w, sample_weights=got_w,
                max_weight_error=max(abs(a - b) for a, b in zip(true_w, got_w)))

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
        title, bar_title, label = ax.set_title(" "), bar.set_title(" "), preview_label(ax)
        live = keep(fig, ("langevin", target, n_show), scat=scat, lines=lines, true=true_bars, got=got_bars,
                    title=title, bar_title=bar_title, label=label,
                    moving=[scat, *(a for trio in lines for a in trio), *true_bars, *got_bars, title, bar_title,
                            label])
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
    show_preview(live["label"], drawn, n_chains, "chains")
    return fig, info


def _langevin_chains(p, x0, step_size, n_steps, gen, n_show: int):
    """Langevin with p's exact score: the fused loop, or, when the chains overflowed, ``sg.samplers.langevin``
    from the same generator state (it raises ``SamplerDiverged`` saying where). Returns (x_T, paths of n_show)."""
    x0 = validate.batch("x0", x0)
    step_size = validate.positive("step_size", step_size)
    n_steps = validate.count("n_steps", n_steps, minimum=0)
    state = gen.get_state()
    out = mixture_chains([(p, step_size)], x0, n_steps, gen, keep=n_show)
    if out is not None:
        return out[0], out[2]
    gen.set_state(state)
    x, path = samplers.langevin(p.score, x0, step_size, n_steps, return_path=True, generator=gen)
    return x, path[:, :n_show]


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


def dsm_view(nets: dict, density, sigma: float, n_grid: int = 60, fig=None, detail: float = 1.0):
    """Learned DSM score at one noise level against the exact perturbed score.

    ``nets`` maps sigma -> a network trained by denoising score matching, eq. (3),
    at that sigma (trained once in the notebook; the view never retrains);
    ``density`` is the data density (a ``GaussianMixture``), so the target is
    ``density.perturb(sigma).score``. Left: q_sigma with the learned field.
    Right: log10 of the error ||s_theta - grad log q_sigma|| with contours of q_sigma.
    ``fig``: the figure this view drew last time, updated in place (``sg.widgets.live``). ``detail``: the
    fraction of the grid points to evaluate (the error map's n_grid^2 and the 80^2 of the errors' means):
    below 1 a preview on grids of round(sqrt(detail) n) points a side, labelled so in the figure (info then
    holds the coarser grid's means).

    Returns ``(fig, info)``, info = {"sigma", "error_high", "error_low", "ratio", "detail"}
    (mean error where the data density is high / low, see ``sg.metrics.error_by_density``).
    Introduced in notebooks/03_denoising_score_matching.ipynb.
    """
    detail = check_detail(detail)
    side = detail_count(detail ** 0.5, n_grid)
    if sigma not in nets:
        raise ValueError(f"sigma={sigma!r} has no trained network; choose one of {sorted(nets)}.")
    net = nets[sigma]
    q = density.perturb(sigma)
    bounds = density.bounds()
    stats = metrics.error_by_density(net, q, bounds, region=density, n=detail_count(detail ** 0.5, _STATS_GRID))
    err = metrics.score_error_map(net, q.score, bounds, n=side)
    image, _ = target_image(density, sigma)
    xs, ys, pts = plot.grid(bounds, side)
    live = reuse(fig, ("dsm", id(density), n_grid))
    if live is None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(7.4, 3.4))
        dens = density_axes(a, image, bounds)
        im = b.imshow(err.numpy(), origin="lower", extent=bounds, cmap="viridis", vmin=-2, vmax=1.5)
        fig.colorbar(im, ax=b, fraction=0.046, label="log10 error")
        fig.subplots_adjust(left=0.06, right=0.93, bottom=0.1, top=0.9, wspace=0.18)
        live = keep(fig, ("dsm", id(density), n_grid), a=a, b=b, dens=dens, err=im, quiver=None, contour=None,
                    title=a.set_title(" "), err_title=b.set_title(" ", fontsize=9), label=preview_label(b))
    a, b = live["a"], live["b"]
    live["dens"].set_data(image)
    live["err"].set_data(err.clamp(min=1e-3).log10().numpy())
    for name in ("quiver", "contour"):          # redrawn on top (the same order as a fresh figure)
        if live[name] is not None:
            live[name].remove()
    plot.score_field(a, net, bounds, n=17)
    live["quiver"] = a.collections[-1]
    live["contour"] = b.contour(xs.numpy(), ys.numpy(), q.log_prob(pts).reshape(side, side).numpy(), levels=6,
                                colors="white", linewidths=0.6)
    live["title"].set_text(f"q_sigma and learned score, sigma={sigma:g}")
    live["err_title"].set_text(f"error: {stats['high']:.2f} where p is high, {stats['low']:.2f} where low")
    show_preview(live["label"], side**2, n_grid**2, "grid points")
    live["moving"] = [live["dens"], live["err"], live["quiver"], live["contour"], live["title"], live["err_title"],
                      live["label"]]
    return fig, {"sigma": sigma, "error_high": stats["high"], "error_low": stats["low"], "ratio": stats["ratio"],
                 "detail": detail}


#: grid points a side of the errors' means ``dsm_view`` reports (``sg.metrics.error_by_density``'s default)
_STATS_GRID = 80


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
