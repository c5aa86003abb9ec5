"""Interactive explorers for the notebooks.

Each explorer is two layers: a *view*, a plain function of numbers and names
that computes, draws, and returns ``(figure, info)``; and a thin widget that
wires sliders to it (``sg.widgets.live.interactive_view``). Notebooks call the view
directly for static figures (and assert on ``info``); tests drive the widget by
setting ``w.children[i].value`` and reading ``w.result`` (the ``info`` dict).
Views read no notebook globals.

Every view takes ``fig=``: given the figure it drew last time, it updates that
figure's artists in place when its structure is unchanged (``sg.widgets.live.reuse``),
and its layout is fixed when the figure is made, so a slider costs the
compute and one draw (issue 23; ``benchmarks/widget_latency.py`` measures it).
Densities drawn behind the samples are computed once per target and noise level
and cached. The 2D explorers (notebooks 01-06) live here; the MNIST explorers
(notebooks 08-09) in ``sg.widgets.images``, also reachable as
``sg.widgets.<name>``.
"""
from __future__ import annotations

import functools
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import validate
from ..core import densities
from ..core import metrics
from ..core import plot
from ..core import samplers
from ..core import schedules
from ..core import sde as sdes
from .images import fast_sampling_explorer, fast_sampling_view, guidance_explorer, guidance_view, inpainting_explorer, inpainting_view
from .live import interactive_view, keep, reuse

__all__ = [
    "interactive_view",
    "uniform_start",
    "energy_floor",
    "target_image",
    "langevin_view",
    "langevin_explorer",
    "dsm_view",
    "dsm_explorer",
    "ladder",
    "schedule_view",
    "schedule_explorer",
    "annealed_view",
    "annealed_explorer",
    "sde_view",
    "sde_explorer",
    "fast_sampling_view",
    "fast_sampling_explorer",
    "guidance_view",
    "guidance_explorer",
    "inpainting_view",
    "inpainting_explorer",
]


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
    p = _named(target) if isinstance(target, str) else target
    return _mixture_image(p, float(sigma)), p.bounds()


@functools.lru_cache(maxsize=None)
def _named(target: str):
    """One mixture object per ready-made target, so its cached images are found again."""
    return densities.target(target)


@functools.lru_cache(maxsize=32)
def _reference(target: str, m: int = 4000, seed: int = 1):
    """The m true samples every energy distance of a view is taken against, with their mean distance
    within (fixed per target and cached: half of an energy distance's cost)."""
    y = densities.target(target).sample(m, generator=torch.Generator().manual_seed(seed))
    return y, metrics.mean_distance_within(y)


def _energy_distance(x, target: str, generator) -> float:
    """Energy distance of samples x to the target's fixed 4000-point reference (``sg.metrics.energy_distance``)."""
    y, within = _reference(target)
    return metrics.energy_distance(x, y, generator=generator, y_within=within)


def _density_axes(ax, image, bounds, cmap=plot.DENSITY_CMAP):
    """An ``imshow`` of a density image as ``sg.plot.density`` draws it; returns the AxesImage. The colour
    scale is fixed to [0, 1] (the images are p / max p), not taken from the first image: ``set_data`` keeps
    the scale, so an image updated in place looks as it would drawn fresh."""
    im = ax.imshow(image, origin="lower", extent=bounds, cmap=cmap, aspect="equal", interpolation="bilinear",
                   vmin=0.0, vmax=1.0)
    ax.set_xlim(bounds[0], bounds[1]); ax.set_ylim(bounds[2], bounds[3])
    return im


def _scatter(ax, s: float = 2.0):
    """An empty sample scatter in the style of ``sg.plot.samples`` (filled by ``set_offsets``)."""
    return ax.scatter([], [], s=s, c=plot.SAMPLE_COLOR, alpha=0.5, linewidths=0)


def _bars(ax, n: int):
    """True weights beside sample fractions per mixture component; returns the two bar containers."""
    k = range(n)
    true = ax.bar([i - 0.2 for i in k], [0.0] * n, width=0.4, label="true weight", color="#7c3aed")
    got = ax.bar([i + 0.2 for i in k], [0.0] * n, width=0.4, label="fraction of samples", color=plot.SAMPLE_COLOR,
                 hatch="//", edgecolor="white", linewidth=0)
    ax.set_xticks(list(k))
    ax.set_xlabel("mixture component")
    ax.set_ylim(0, 1)
    return true, got


def _set_bars(bars, values):
    for rect, v in zip(bars, values):
        rect.set_height(v)


def _diverged(err: Exception, info: dict):
    """The figure a view shows instead of samples when the chains blew up (``SamplerDiverged``)."""
    info.update(diverged=True, message=str(err))
    fig, ax = plt.subplots(figsize=(6.0, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, "the chains diverged:\n" + "\n".join(str(err).split("; ")[:-1]) + "\nlower eps", ha="center", va="center",
            fontsize=9, color="#b91c1c", wrap=True)
    return fig, info


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
        return _diverged(err, info)
    true_w = p.weights.tolist()
    got_w = p.mode_weights(x).tolist()
    info.update(true_weights=true_w, sample_weights=got_w,
                max_weight_error=max(abs(a - b) for a, b in zip(true_w, got_w)))

    n_show = min(5, n_chains)
    live = reuse(fig, ("langevin", target, n_show))
    if live is None:
        fig, (ax, bar) = plt.subplots(1, 2, figsize=(7.2, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
        _density_axes(ax, *target_image(target))
        ax.set_aspect("equal")
        scat = _scatter(ax)
        lines = []
        for i in range(n_show):
            c = plot.PATH_COLORS[i % len(plot.PATH_COLORS)]
            lines.append((ax.plot([], [], "-", color=c, lw=0.9, alpha=0.85)[0],
                          ax.plot([], [], "o", color=c, ms=4, mec="white", mew=0.5)[0],
                          ax.plot([], [], "*", color=c, ms=9, mec="white", mew=0.5)[0]))
        true_bars, got_bars = _bars(bar, p.n_components)
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
    _set_bars(live["true"], true_w)
    _set_bars(live["got"], got_w)
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
        dens = _density_axes(a, image, bounds)
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


def ladder(sigma_max: float, sigma_min: float, n_levels: int, spacing: str = "geometric") -> torch.Tensor:
    """The noise ladder the schedule widgets use: ``geometric`` (the NCSN choice) or ``linear``."""
    if spacing == "geometric":
        return schedules.geometric_sigmas(sigma_max, sigma_min, n_levels)
    if spacing == "linear":
        return schedules.linear_sigmas(sigma_max, sigma_min, n_levels)
    raise ValueError(f"spacing={spacing!r} is invalid: choose 'geometric' or 'linear'.")


def _picks(n_levels: int) -> list[int]:
    """The levels whose q_sigma the schedule view shows: first, middle and last."""
    return sorted({0, n_levels // 2, n_levels - 1})


def schedule_view(sigma_max: float = 10.0, sigma_min: float = 0.1, n_levels: int = 10, spacing: str = "geometric",
                  target: str = "two modes (0.2/0.8)", step_size: float = 5e-3, fig=None):
    """What a sigma ladder does to a 2D target, without sampling anything.

    Top left: the ladder sigma_1 > ... > sigma_L on a log axis, with the largest distance
    between two modes (technique 1 of Song & Ermon 2020: sigma_1 should reach it). Top right:
    step sizes eps_i = step_size sigma_i^2 / sigma_L^2 and the update's nominal signal-to-noise
    ratio sqrt(eps_i) / (2 sigma_i) (``sg.schedules.update_snr``), constant for any ladder; it assumes
    ||s|| ~ sqrt(D)/sigma_i, which fails below the modes' std, where the measured ratio falls
    (``sg.schedules.measured_update_snr``, notebook 05). Bottom: the exact perturbed
    densities q_sigma at the first, middle and last level (``GaussianMixture.perturb``). The three
    curves' y axes keep fixed ranges (all the explorer's sliders can reach), so a move shows the ladder move
    rather than the axes rescale; only a new L redraws the axes. ``fig``: the figure this view drew last
    time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)`` with ``sigmas``, ``ratios`` (sigma_{i-1}/sigma_i), ``steps`` (eps_i),
    ``snr`` (lists) and ``mode_distance``. Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    p = _named(target)
    sig = ladder(sigma_max, sigma_min, n_levels, spacing)
    steps = schedules.step_sizes(sig, step_size)
    snr = schedules.update_snr(sig, step_size)
    mode_distance = torch.cdist(p.means, p.means).max().item()
    bounds = p.bounds()
    picks = _picks(len(sig))
    key = ("schedule", target, len(picks))
    live = reuse(fig, key)
    if live is None:
        fig = plt.figure(figsize=(8.4, 5.4))
        gs = fig.add_gridspec(2, 3, height_ratios=[1, 1.15])
        ax = fig.add_subplot(gs[0, :2])
        line, = ax.semilogy([1], [1], "o-", color="#7c3aed", label=" ")
        ax.axhline(mode_distance, color="k", ls="--", lw=1, label=f"largest mode distance {mode_distance:.1f}")
        ax.set_xlabel("level i"); ax.set_ylabel("sigma_i")
        legend = ax.legend(frameon=False, fontsize=9, loc="lower left")
        ax2 = fig.add_subplot(gs[0, 2])
        aline, = ax2.semilogy([1], [1], "s-", color=plot.SAMPLE_COLOR, label="eps_i")
        ax2.set_xlabel("level i"); ax2.set_ylabel("step size eps_i")
        tw = ax2.twinx()
        sline, = tw.semilogy([1], [1], "k:", lw=1.5, label="nominal SNR")
        tw.set_ylabel("nominal update SNR", fontsize=9)
        images, titles = [], []
        for k in range(len(picks)):
            a = fig.add_subplot(gs[1, k])
            images.append(_density_axes(a, target_image(target, 1.0)[0], bounds))
            titles.append(a.set_title(" "))
            a.set_xticks([]); a.set_yticks([])
        fig.subplots_adjust(left=0.08, right=0.93, bottom=0.03, top=0.93, wspace=0.45, hspace=0.3)
        title, title2 = ax.set_title(" "), ax2.set_title(" ", fontsize=9)
        live = keep(fig, key, ax=ax, ax2=ax2, tw=tw, line=line, aline=aline, sline=sline, legend=legend,
                    images=images, titles=titles, title=title, title2=title2,
                    moving=[line, aline, sline, *images, *titles, title, title2])
    levels = list(range(1, len(sig) + 1))
    live["line"].set_data(levels, sig.tolist())
    live["legend"].get_texts()[0].set_text(f"sigma_i ({spacing})")
    live["aline"].set_data(levels, steps.tolist())
    live["sline"].set_data(levels, snr.tolist())
    # fixed ranges (what the explorer's sliders can reach), so a move shows the ladder moving, not the axes
    # rescaling, and only a new L redraws the axes (sg.live blits the rest)
    for ax in (live["ax"], live["ax2"]):
        ax.set_xlim(0.5, len(sig) + 0.5)
    live["ax"].set_ylim(*_SIGMA_RANGE)
    live["ax2"].set_ylim(*_ALPHA_RANGE)
    live["tw"].set_ylim(*_SNR_RANGE)
    live["static"] = (spacing, len(sig))            # the legend names the spacing; L sets the x axis
    live["title"].set_text(f"{len(sig)} levels, sigma from {float(sig[0]):.3g} to {float(sig[-1]):.3g}")
    live["title2"].set_text(f"nominal SNR {float(snr[0]):.3f} at every level")
    for im, title, i in zip(live["images"], live["titles"], picks):
        im.set_data(target_image(target, float(sig[i]))[0])
        title.set_text(f"q at sigma_{i + 1} = {float(sig[i]):.3g}")
    info = {"sigmas": sig.tolist(), "ratios": (sig[:-1] / sig[1:]).tolist(), "steps": steps.tolist(),
            "snr": snr.tolist(), "mode_distance": mode_distance}
    return fig, info


#: the schedule view's fixed axis ranges: sigma_i, eps_i and the nominal update SNR over every value its sliders reach
#: (sigma in [0.01, 50], eps in [1e-4, 0.1]; values outside are clipped by the axes)
_SIGMA_RANGE, _ALPHA_RANGE, _SNR_RANGE = (5e-3, 1e2), (3e-5, 1e7), (1e-3, 3e1)


def _ladder_controls() -> dict:
    """The sliders both schedule widgets share: sigma_1, sigma_L, L and eps (new widgets each call)."""
    return {
        "sigma_max": W.FloatLogSlider(value=10.0, base=10, min=-0.5, max=1.7, step=0.05, description="sigma_1",
                                      continuous_update=False),
        "sigma_min": W.FloatLogSlider(value=0.1, base=10, min=-2, max=0, step=0.05, description="sigma_L",
                                      continuous_update=False),
        "n_levels": W.IntSlider(value=10, min=2, max=30, description="L", continuous_update=False),
        "step_size": W.FloatLogSlider(value=5e-3, base=10, min=-4, max=-1, step=0.1, description="eps",
                                      continuous_update=False),
    }


def schedule_explorer() -> W.interactive:
    """Sliders for ``schedule_view``: sigma_1, sigma_L, L, spacing, target, eps (notebook 05)."""
    controls = _ladder_controls()
    step_size = controls.pop("step_size")
    return interactive_view(
        schedule_view,
        **controls,
        spacing=W.ToggleButtons(options=["geometric", "linear"], value="geometric", description="spacing"),
        target=W.Dropdown(options=list(densities.TARGETS), value="two modes (0.2/0.8)", description="target"),
        step_size=step_size,
    )


def annealed_view(sigma_max: float = 10.0, sigma_min: float = 0.1, n_levels: int = 10, step_size: float = 5e-3,
                  n_steps_each: int = 100, score: str = "exact", net=None, target: str = "two modes (0.2/0.8)",
                  spacing: str = "geometric", n_chains: int = 2000, seed: int = 0, fig=None):
    """Annealed Langevin dynamics from a uniform start, with the exact or a learned score.

    ``score='exact'`` uses ``density.perturbed_score``; ``score='learned'`` uses ``net(x, sigma)``,
    a noise-conditional network trained on the target (e.g. by ``sg.train.train_ncsn``).
    Panels: the chains at the start, after a third and two thirds of the levels, at the end
    (over the density), and the fraction of samples per mixture component. ``fig``: the figure this
    view drew last time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)``, info: ``true_weights``, ``sample_weights``, ``max_weight_error``,
    ``energy_distance`` (to 4000 true samples) and ``energy_floor`` (its noise floor, (mean, std), see
    ``energy_floor``), ``title`` (the figure's title; None when diverged)
    and ``diverged`` (True when the step size blew the chains up; the figure then says so). Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    p = _named(target)
    if score == "exact":
        score_fn = p.perturbed_score
    elif score == "learned":
        if net is None:
            raise ValueError("score='learned' needs net=<a noise-conditional network trained on this target>.")
        score_fn = net
    else:
        raise ValueError(f"score={score!r} is invalid: choose 'exact' or 'learned'.")
    sig = ladder(sigma_max, sigma_min, n_levels, spacing)
    gen = torch.Generator().manual_seed(seed)
    bounds = p.bounds()
    x0 = uniform_start(n_chains, bounds, generator=gen)
    info = {"score": score, "sigmas": sig.tolist(), "step_size": step_size, "n_steps_each": n_steps_each,
            "true_weights": p.weights.tolist(), "diverged": False}
    try:
        x, path = samplers.annealed_langevin(score_fn, x0, sig, step_size, n_steps_each, return_path=True,
                                             generator=gen)
    except samplers.SamplerDiverged as err:
        info.update(sample_weights=None, max_weight_error=None, energy_distance=None, energy_floor=None, title=None)
        return _diverged(err, info)
    got = p.mode_weights(x).tolist()
    info.update(sample_weights=got, max_weight_error=max(abs(a - b) for a, b in zip(info["true_weights"], got)),
                energy_distance=_energy_distance(x, target, gen),
                energy_floor=energy_floor(target, n_chains))
    key = ("annealed", target)
    live = reuse(fig, key)
    if live is None:
        fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.9]})
        images, scats, titles = [], [], []
        for ax in axes[:4]:
            images.append(_density_axes(ax, target_image(target)[0], bounds))
            scats.append(_scatter(ax, s=1.5))
            titles.append(ax.set_title(" ", fontsize=9))
            ax.set_xticks([]); ax.set_yticks([])
        true_bars, got_bars = _bars(axes[4], p.n_components)
        axes[4].set_xlabel("")
        axes[4].legend(["true", "samples"], frameon=False, fontsize=9)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.1, top=0.8, wspace=0.12)
        bar_title, suptitle = axes[4].set_title(" ", fontsize=9), fig.suptitle(" ", fontsize=10)
        live = keep(fig, key, images=images, scats=scats, titles=titles, true=true_bars, got=got_bars,
                    bar_title=bar_title, suptitle=suptitle,
                    moving=[*images, *scats, *titles, *true_bars, *got_bars, bar_title, suptitle])
    L = len(sig)
    snaps = [0, max(1, L // 3), max(1, 2 * L // 3), L]
    for j, (im, scat, title, k) in enumerate(zip(live["images"], live["scats"], live["titles"], snaps)):
        im.axes.set_visible(k not in snaps[:j])    # L < 3 has fewer distinct snapshots than panels: hide repeats
        level_sigma = float(sig[k - 1]) if k > 0 else 0.0
        im.set_data(target_image(target, level_sigma)[0])
        scat.set_offsets(path[k][:1500].float().numpy())
        title.set_text("start (uniform)" if k == 0 else f"after level {k}, sigma={level_sigma:.2g}")
    _set_bars(live["true"], info["true_weights"])
    _set_bars(live["got"], got)
    live["bar_title"].set_text(f"weight error {info['max_weight_error']:.3f}")
    info["title"] = (f"annealed Langevin ({score} score): L={L}, eps={step_size:.2g}, T={n_steps_each}, "
                     f"energy distance {info['energy_distance']:.4f} (noise floor {info['energy_floor'][0]:.4f} "
                     f"+- {info['energy_floor'][1]:.4f})")
    live["suptitle"].set_text(info["title"])
    return fig, info


def annealed_explorer(net=None, target: str = "two modes (0.2/0.8)", n_chains: int = 2000) -> W.interactive:
    """Sliders for ``annealed_view``: sigma_1, sigma_L, L, eps, T and (when ``net`` is given)
    exact vs learned score (notebook 05)."""
    return interactive_view(
        annealed_view,
        **_ladder_controls(),
        n_steps_each=W.IntSlider(value=100, min=10, max=300, step=10, description="T", continuous_update=False),
        score=W.ToggleButtons(options=["exact", "learned"] if net is not None else ["exact"], value="exact",
                              description="score"),
        net=W.fixed(net),
        target=W.fixed(target),
        spacing=W.fixed("geometric"),
        n_chains=W.fixed(n_chains),
        seed=W.fixed(0),
    )


def sde_view(sampler: str = "EM", n_steps: int = 100, snr: float = 0.16, sde_name: str = "VP", score: str = "exact",
             nets: dict | None = None, target: str = "ring of 8", n_samples: int = 2000, seed: int = 0, fig=None):
    """Sample a 2D target with a reverse-time sampler and compare with the truth.

    ``sampler``: "EM" (Euler-Maruyama, eq. (7)), "PC" (predictor-corrector with one corrector step at
    ``snr``; n_steps is halved so the cost matches EM) or "ODE" (probability flow, adaptive RK45;
    n_steps is ignored). ``score``: "exact" (``SDEMarginal.score``) or "learned" (``nets[sde_name]``,
    a time-conditional network trained for that SDE). ``fig``: the figure this view drew last time,
    updated in place (``sg.widgets.live``).

    Returns ``(fig, info)``: info has ``nfe`` (score evaluations), ``seconds``,
    ``energy_distance`` to 4000 true samples and ``energy_floor`` (its noise floor, (mean, std)). Introduced in notebooks/06_sdes.ipynb.
    """
    validate.choice("sampler", sampler, {"EM", "PC", "ODE"})
    validate.choice("sde_name", sde_name, sdes.SDES)
    p = _named(target)
    sde = sdes.SDES[sde_name]()
    if score == "exact":
        score_fn = densities.SDEMarginal(p, sde).score
    elif score == "learned":
        if not nets or sde_name not in nets:
            raise ValueError(f"score='learned' needs nets={{'{sde_name}': <network trained for the {sde_name} SDE>}}.")
        score_fn = nets[sde_name]
    else:
        raise ValueError(f"score={score!r} is invalid: choose 'exact' or 'learned'.")
    gen = torch.Generator().manual_seed(seed)
    shape = (n_samples, 2)
    start = time.perf_counter()
    if sampler == "EM":
        x = samplers.euler_maruyama(sde, score_fn, shape, n_steps, generator=gen)
        nfe = n_steps
    elif sampler == "PC":
        x = samplers.predictor_corrector(sde, score_fn, shape, max(1, n_steps // 2), snr=snr, generator=gen)
        nfe = 2 * max(1, n_steps // 2)
    else:
        x, nfe = samplers.probability_flow_ode(sde, score_fn, shape, rtol=1e-4, atol=1e-4, generator=gen)
    seconds = time.perf_counter() - start
    ed = _energy_distance(x, target, gen)
    floor = energy_floor(target, n_samples)
    key = ("sde", target)
    live = reuse(fig, key)
    if live is None:
        fig, ax = plt.subplots(figsize=(3.8, 3.8))
        _density_axes(ax, *target_image(target))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.86)
        scat, title = _scatter(ax), ax.set_title(" ", fontsize=9)
        live = keep(fig, key, scat=scat, title=title, moving=[scat, title])
    live["scat"].set_offsets(x.float().numpy())
    live["title"].set_text(f"{sde_name} SDE, {sampler} ({score}): NFE {nfe}\nenergy distance {ed:.4f} "
                           f"(noise floor {floor[0]:.4f} +- {floor[1]:.4f})")
    return fig, {"sampler": sampler, "sde": sde_name, "score": score, "nfe": nfe, "seconds": seconds,
                 "energy_distance": ed, "energy_floor": floor, "n_steps": n_steps, "snr": snr}


def sde_explorer(nets: dict | None = None, target: str = "ring of 8", n_samples: int = 2000) -> W.interactive:
    """Sliders for ``sde_view``: sampler, number of steps, corrector SNR, SDE and (with ``nets``)
    exact vs learned score. The SNR slider is enabled only for PC (the only sampler with a corrector), the
    steps slider not for the adaptive ODE solver. Introduced in notebooks/06_sdes.ipynb."""
    sampler = W.ToggleButtons(options=["EM", "PC", "ODE"], value="EM", description="sampler")
    n_steps = W.IntSlider(value=100, min=2, max=1000, step=2, description="steps", continuous_update=False)
    snr = W.FloatLogSlider(value=0.16, base=10, min=-2, max=0, step=0.1, description="snr", continuous_update=False,
                           disabled=True)
    w = interactive_view(
        sde_view,
        sampler=sampler,
        n_steps=n_steps,
        snr=snr,
        sde_name=W.ToggleButtons(options=list(sdes.SDES), value="VP", description="SDE"),
        score=W.ToggleButtons(options=["exact", "learned"] if nets else ["exact"], value="exact", description="score"),
        nets=W.fixed(nets),
        target=W.fixed(target),
        n_samples=W.fixed(n_samples),
        seed=W.fixed(0),
    )

    def enable(change):
        snr.disabled, n_steps.disabled = change["new"] != "PC", change["new"] == "ODE"

    sampler.observe(enable, names="value")
    return w
