"""Interactive explorers for the notebooks.

Each explorer is two layers: a *view*, a plain function of numbers and names
that computes, draws, and returns ``(figure, info)``; and a thin ipywidgets
``interactive`` that wires sliders to it. Notebooks call the view directly for
static figures (and assert on ``info``); tests drive the widget by setting
``w.children[i].value`` and reading ``w.result`` (the ``info`` dict). Views read
no notebook globals.
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from . import densities, metrics, plot, samplers

__all__ = ["interactive_view", "langevin_view", "langevin_explorer", "uniform_start", "dsm_view", "dsm_explorer"]


def interactive_view(view, **controls) -> W.interactive:
    """Wire ``controls`` (widgets or ``ipywidgets.fixed`` values) to ``view(**kwargs) -> (fig, info)``.

    The figure is displayed and closed; ``w.result`` holds ``info``.
    """
    from IPython.display import display

    def show(**kwargs):
        fig, info = view(**kwargs)
        display(fig)
        plt.close(fig)
        return info

    show.__name__ = view.__name__
    show.__doc__ = view.__doc__
    w = W.interactive(show, **controls)
    w.layout = W.Layout(border="1px solid #ddd", padding="4px")
    return w


def uniform_start(n: int, bounds, generator=None, dtype=torch.float32) -> torch.Tensor:
    """n points uniform on the box ``bounds`` = (xmin, xmax, ymin, ymax): a prior that knows nothing."""
    xmin, xmax, ymin, ymax = bounds
    u = torch.rand(n, 2, generator=generator, dtype=dtype)
    return torch.stack([xmin + (xmax - xmin) * u[:, 0], ymin + (ymax - ymin) * u[:, 1]], dim=1)


def langevin_view(target: str = "two modes (0.2/0.8)", step_size: float = 0.1, n_steps: int = 300,
                  sampler: str = "Langevin", n_chains: int = 1000, seed: int = 0):
    """Run Langevin (eq. (1)) or MALA with the exact score of a ready-made target and show the result.

    Chains start uniform over the plotting window. Left: the density, the final
    samples and a few paths. Right: the fraction of samples in each mixture
    component next to the true weights.

    Returns ``(fig, info)`` with info keys ``target``, ``step_size``, ``n_steps``,
    ``sampler``, ``true_weights``, ``sample_weights`` (lists), ``max_weight_error``
    and, for MALA, ``acceptance``. Used by ``langevin_explorer``; introduced in
    notebooks/01_scores_and_langevin.ipynb.
    """
    p = densities.target(target)
    gen = torch.Generator().manual_seed(seed)
    bounds = p.bounds()
    x0 = uniform_start(n_chains, bounds, generator=gen)
    info = {"target": target, "step_size": step_size, "n_steps": n_steps, "sampler": sampler}
    if sampler == "MALA":
        x, rate, path = samplers.mala(p.log_prob, p.score, x0, step_size, n_steps, return_path=True, generator=gen)
        info["acceptance"] = rate
    elif sampler == "Langevin":
        x, path = samplers.langevin(p.score, x0, step_size, n_steps, return_path=True, generator=gen)
    else:
        raise ValueError(f"sampler={sampler!r} is invalid: choose 'Langevin' or 'MALA'.")
    x = torch.nan_to_num(x, nan=1e6).clamp(-1e6, 1e6)
    true_w = p.weights.tolist()
    got_w = p.mode_weights(x).tolist()
    info.update(true_weights=true_w, sample_weights=got_w,
                max_weight_error=max(abs(a - b) for a, b in zip(true_w, got_w)))

    fig, (ax, bar) = plt.subplots(1, 2, figsize=(7.2, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
    plot.density(ax, p.log_prob, bounds)
    plot.samples(ax, x, bounds=bounds)
    plot.paths(ax, path, n_show=5, bounds=bounds)
    extra = f", accept {info['acceptance']:.0%}" if sampler == "MALA" else ""
    ax.set_title(f"{sampler}: eps={step_size:.3g}, T={n_steps}{extra}")
    k = range(p.n_components)
    bar.bar([i - 0.2 for i in k], true_w, width=0.4, label="true weight", color="#7c3aed")
    bar.bar([i + 0.2 for i in k], got_w, width=0.4, label="fraction of samples", color=plot.SAMPLE_COLOR)
    bar.set_xticks(list(k))
    bar.set_xlabel("mixture component")
    bar.set_ylim(0, 1)
    bar.legend(loc="upper left", fontsize=8, frameon=False)
    bar.set_title(f"max weight error {info['max_weight_error']:.3f}")
    fig.tight_layout()
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


def dsm_view(nets: dict, density, sigma: float, n_grid: int = 60):
    """Learned DSM score at one noise level against the exact perturbed score.

    ``nets`` maps sigma -> a network trained by denoising score matching, eq. (3),
    at that sigma (trained once in the notebook; the view never retrains);
    ``density`` is the data density (a ``GaussianMixture``), so the target is
    ``density.perturb(sigma).score``. Left: q_sigma with the learned field.
    Right: log10 of the error ||s_theta - grad log q_sigma|| with contours of q_sigma.

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
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.4, 3.4))
    plot.density(a, q.log_prob, bounds, title=f"q_sigma and learned score, sigma={sigma:g}")
    plot.score_field(a, net, bounds, n=17)
    im = b.imshow(err.clamp(min=1e-3).log10().numpy(), origin="lower", extent=bounds, cmap="viridis", vmin=-2, vmax=1.5)
    xs, ys, pts = plot.grid(bounds, n_grid)
    b.contour(xs.numpy(), ys.numpy(), q.log_prob(pts).reshape(n_grid, n_grid).numpy(), levels=6, colors="white",
              linewidths=0.6)
    fig.colorbar(im, ax=b, fraction=0.046, label="log10 error")
    b.set_title(f"error: {stats['high']:.2f} where p is high, {stats['low']:.2f} where low", fontsize=9)
    fig.tight_layout()
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
