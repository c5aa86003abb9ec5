"""The explorers of noise ladders (notebooks 05 and 06): what a sigma ladder does to a 2D target, annealed
Langevin dynamics down it (exact or learned score), and reverse-time SDE samplers (EM, PC, probability flow).
Two layers each, as ``sg.widgets`` describes: a ``(fig, info)`` view and a widget.
"""
from __future__ import annotations

import contextlib
import functools
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import validate
from ..core import densities, plot, samplers, schedules
from ..core import sde as sdes
from .common import (
    check_detail,
    density_axes,
    detail_count,
    diverged_figure,
    energy_distance_to_target,
    energy_floor,
    level_mixture,
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

__all__ = ["ladder", "schedule_view", "schedule_explorer", "annealed_view", "annealed_explorer", "sde_view",
           "sde_explorer", "exact_sde_score"]


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
                  target: str = "two modes (0.2/0.8)", step_size: float = 5e-3, fig=None, detail: float = 1.0):
    """What a sigma ladder does to a 2D target, without sampling anything.

    Top left: the ladder sigma_1 > ... > sigma_L on a log axis, with the largest distance
    between two modes (technique 1 of Song & Ermon 2020: sigma_1 should reach it). Top right:
    step sizes eps_i = step_size sigma_i^2 / sigma_L^2 and the update's nominal signal-to-noise
    ratio sqrt(eps_i) / (2 sigma_i) (``sg.schedules.update_snr``), constant for any ladder; it assumes
    ||s|| ~ sqrt(D)/sigma_i, which fails below the modes' std, where the measured ratio falls
    (``sg.schedules.measured_update_snr``, notebook 05). Bottom: the exact perturbed
    densities q_sigma at the first, middle and last level (``GaussianMixture.perturb``). The three
    curves' y axes keep fixed ranges (all the explorer's sliders can reach), so a move shows the ladder move
    rather than the axes rescale; a new L moves the x axes, which are redrawn with the curves (not the whole
    figure). ``fig``: the figure this view drew last time, updated in place (``sg.widgets.live``). ``detail``:
    the fraction of the densities' grid points to evaluate: below 1 a preview with images of
    round(sqrt(detail) 160) pixels a side, labelled so in the figure (info is the same at any detail).

    Returns ``(fig, info)`` with ``sigmas``, ``ratios`` (sigma_{i-1}/sigma_i), ``steps`` (eps_i),
    ``snr`` (lists), ``mode_distance`` and ``detail``. Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    detail = check_detail(detail)
    side = detail_count(detail ** 0.5, _IMAGE_SIDE)
    p = named_target(target)
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
            images.append(density_axes(a, target_image(target, 1.0)[0], bounds))
            titles.append(a.set_title(" "))
            a.set_xticks([]); a.set_yticks([])
        fig.subplots_adjust(left=0.08, right=0.93, bottom=0.03, top=0.93, wspace=0.45, hspace=0.3)
        title, title2, label = ax.set_title(" "), ax2.set_title(" ", fontsize=9), preview_label(images[0].axes)
        # the x axes move with L: drawn with the curves over a background that never changes (sg.widgets.live)
        live = keep(fig, key, ax=ax, ax2=ax2, tw=tw, line=line, aline=aline, sline=sline, legend=legend,
                    images=images, titles=titles, title=title, title2=title2, label=label,
                    moving=[ax.xaxis, ax2.xaxis, line, legend, aline, sline, *images, *titles, title, title2, label])
    levels = list(range(1, len(sig) + 1))
    live["line"].set_data(levels, sig.tolist())
    live["legend"].get_texts()[0].set_text(f"sigma_i ({spacing})")
    live["aline"].set_data(levels, steps.tolist())
    live["sline"].set_data(levels, snr.tolist())
    # fixed ranges (what the explorer's sliders can reach), so a move shows the ladder moving, not the axes
    # rescaling; only the x axes follow L
    for ax in (live["ax"], live["ax2"]):
        ax.set_xlim(0.5, len(sig) + 0.5)
    live["ax"].set_ylim(*_SIGMA_RANGE)
    live["ax2"].set_ylim(*_ALPHA_RANGE)
    live["tw"].set_ylim(*_SNR_RANGE)
    live["title"].set_text(f"{len(sig)} levels, sigma from {float(sig[0]):.3g} to {float(sig[-1]):.3g}")
    live["title2"].set_text(f"nominal SNR {float(snr[0]):.3f} at every level")
    for im, title, i in zip(live["images"], live["titles"], picks):
        im.set_data(target_image(target, float(sig[i]), side)[0])
        title.set_text(f"q at sigma_{i + 1} = {float(sig[i]):.3g}")
    show_preview(live["label"], side**2, _IMAGE_SIDE**2, "grid points")
    info = {"sigmas": sig.tolist(), "ratios": (sig[:-1] / sig[1:]).tolist(), "steps": steps.tolist(),
            "snr": snr.tolist(), "mode_distance": mode_distance, "detail": detail}
    return fig, info


#: the schedule view's fixed axis ranges: sigma_i, eps_i and the nominal update SNR over every value its sliders reach
#: (sigma in [0.01, 50], eps in [1e-4, 0.1]; values outside are clipped by the axes)
_SIGMA_RANGE, _ALPHA_RANGE, _SNR_RANGE = (5e-3, 1e2), (3e-5, 1e7), (1e-3, 3e1)
#: pixels a side of the schedule view's density images (``target_image``'s default)
_IMAGE_SIDE = 160


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
                  spacing: str = "geometric", n_chains: int = 2000, seed: int = 0, fig=None, detail: float = 1.0):
    """Annealed Langevin dynamics from a uniform start, with the exact or a learned score.

    ``score='exact'`` uses ``density.perturbed_score``; ``score='learned'`` uses ``net(x, sigma)``,
    a noise-conditional network trained on the target (e.g. by ``sg.train.train_ncsn``).
    Panels: the chains at the start, after a third and two thirds of the levels, at the end
    (over the density), and the fraction of samples per mixture component. ``fig``: the figure this
    view drew last time, updated in place (``sg.widgets.live``). ``detail``: the fraction of the chains to
    run (each takes every step of every level): below 1 a preview of round(detail n_chains) chains, labelled so
    in the figure (info then describes those chains, the energy distance's floor is that of their number).
    With the exact score the chains run in one fused loop (``sg.widgets.common.mixture_chains``: the chains of
    ``sg.samplers.annealed_langevin``, faster).

    Returns ``(fig, info)``, info: ``true_weights``, ``sample_weights``, ``max_weight_error``,
    ``energy_distance`` (to 4000 true samples) and ``energy_floor`` (its noise floor, (mean, std), see
    ``energy_floor``), ``title`` (the figure's title; None when diverged), ``detail``
    and ``diverged`` (True when the step size blew the chains up; the figure then says so).
    Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    detail = check_detail(detail)
    p = named_target(target)
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
    drawn = detail_count(detail, n_chains, minimum=2)
    x0 = uniform_start(drawn, bounds, generator=gen)
    info = {"score": score, "sigmas": sig.tolist(), "step_size": step_size, "n_steps_each": n_steps_each,
            "true_weights": p.weights.tolist(), "diverged": False, "detail": detail}
    try:
        out = _exact_annealed(target, x0, sig, step_size, n_steps_each, gen) if score == "exact" else None
        x, path = out if out is not None else samplers.annealed_langevin(
            score_fn, x0, sig, step_size, n_steps_each, return_path=True, generator=gen)
    except samplers.SamplerDiverged as err:
        info.update(sample_weights=None, max_weight_error=None, energy_distance=None, energy_floor=None, title=None)
        return diverged_figure(err, info)
    got = p.mode_weights(x).tolist()
    info.update(sample_weights=got, max_weight_error=max(abs(a - b) for a, b in zip(info["true_weights"], got)),
                energy_distance=energy_distance_to_target(x, target, gen),
                energy_floor=energy_floor(target, drawn))
    key = ("annealed", target)
    live = reuse(fig, key)
    if live is None:
        fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.9]})
        images, scats, titles = [], [], []
        for ax in axes[:4]:
            images.append(density_axes(ax, target_image(target)[0], bounds))
            scats.append(sample_scatter(ax, s=1.5))
            titles.append(ax.set_title(" ", fontsize=9))
            ax.set_xticks([]); ax.set_yticks([])
        true_bars, got_bars = weight_bars(axes[4], p.n_components)
        axes[4].set_xlabel("")
        axes[4].legend(["true", "samples"], frameon=False, fontsize=9)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.1, top=0.8, wspace=0.12)
        bar_title, suptitle = axes[4].set_title(" ", fontsize=9), fig.suptitle(" ", fontsize=10)
        label = preview_label(axes[3])
        live = keep(fig, key, images=images, scats=scats, titles=titles, true=true_bars, got=got_bars,
                    bar_title=bar_title, suptitle=suptitle, label=label,
                    moving=[*images, *scats, *titles, *true_bars, *got_bars, bar_title, suptitle, label])
    L = len(sig)
    snaps = [0, max(1, L // 3), max(1, 2 * L // 3), L]
    for j, (im, scat, title, k) in enumerate(zip(live["images"], live["scats"], live["titles"], snaps)):
        im.axes.set_visible(k not in snaps[:j])    # L < 3 has fewer distinct snapshots than panels: hide repeats
        level_sigma = float(sig[k - 1]) if k > 0 else 0.0
        im.set_data(target_image(target, level_sigma)[0])
        scat.set_offsets(path[k][:1500].float().numpy())
        title.set_text("start (uniform)" if k == 0 else f"after level {k}, sigma={level_sigma:.2g}")
    set_bars(live["true"], info["true_weights"])
    set_bars(live["got"], got)
    live["bar_title"].set_text(f"weight error {info['max_weight_error']:.3f}")
    info["title"] = (f"annealed Langevin ({score} score): L={L}, eps={step_size:.2g}, T={n_steps_each}, "
                     f"energy distance {info['energy_distance']:.4f} (noise floor {info['energy_floor'][0]:.4f} "
                     f"+- {info['energy_floor'][1]:.4f})")
    live["suptitle"].set_text(info["title"])
    show_preview(live["label"], drawn, n_chains, "chains")
    return fig, info


def _exact_annealed(target: str, x0, sigmas, step_size, n_steps_each, gen):
    """Annealed Langevin with the target's exact perturbed scores in the fused loop (``mixture_chains``):
    (x, states after each level), or None where ``sg.samplers.annealed_langevin`` must run instead, from the
    same generator state: settings it refuses (it says why) and chains that overflowed (it says where)."""
    x0 = validate.batch("x0", x0)
    step_size = validate.positive("step_size", step_size)
    n_steps_each = validate.count("n_steps_each", n_steps_each)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sig) < 1 or not torch.isfinite(sig).all() or (sig <= 0).any() or (sig[:-1] <= sig[1:]).any():
        return None
    sig = sig.tolist()
    levels = [(level_mixture(target, sigma), step_size * sigma**2 / sig[-1] ** 2) for sigma in sig]  # eps_i
    state = gen.get_state()
    out = mixture_chains(levels, x0, n_steps_each, gen)
    if out is None:
        gen.set_state(state)
        return None
    return out[0], out[1]


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
             nets: dict | None = None, target: str = "ring of 8", n_samples: int = 2000, seed: int = 0, fig=None,
             detail: float = 1.0):
    """Sample a 2D target with a reverse-time sampler and compare with the truth.

    ``sampler``: "EM" (Euler-Maruyama, eq. (7)), "PC" (predictor-corrector with one corrector step at
    ``snr``; n_steps is halved so the cost matches EM) or "ODE" (probability flow, adaptive RK45;
    n_steps is ignored). ``score``: "exact" (``SDEMarginal.score``) or "learned" (``nets[sde_name]``,
    a time-conditional network trained for that SDE). ``fig``: the figure this view drew last time,
    updated in place (``sg.widgets.live``). ``detail``: the fraction of the samples to draw (each takes
    every step): below 1 a preview of round(detail n_samples) points, labelled so in the figure (info then
    describes those points; the energy distance's floor is that of their number). The exact score's
    marginals p_t are kept per time (``exact_sde_score``), so steps a slider revisits cost the score alone.

    Returns ``(fig, info)``: info has ``nfe`` (score evaluations), ``seconds``,
    ``energy_distance`` to 4000 true samples, ``energy_floor`` (its noise floor, (mean, std)) and ``detail``.
    Introduced in notebooks/06_sdes.ipynb.
    """
    detail = check_detail(detail)
    validate.choice("sampler", sampler, {"EM", "PC", "ODE"})
    validate.choice("sde_name", sde_name, sdes.SDES)
    p = named_target(target)
    sde = sdes.SDES[sde_name]()
    if score == "exact":
        score_fn = densities.SDEMarginal(p, sde).score if sampler == "ODE" else exact_sde_score(target, sde_name)
    elif score == "learned":
        if not nets or sde_name not in nets:
            raise ValueError(f"score='learned' needs nets={{'{sde_name}': <network trained for the {sde_name} SDE>}}.")
        score_fn = nets[sde_name]
    else:
        raise ValueError(f"score={score!r} is invalid: choose 'exact' or 'learned'.")
    gen = torch.Generator().manual_seed(seed)
    drawn = detail_count(detail, n_samples, minimum=2)
    shape = (drawn, 2)
    start = time.perf_counter()
    with one_thread() if score == "exact" else contextlib.nullcontext():    # small operations: see one_thread
        if sampler == "EM":
            x = samplers.euler_maruyama(sde, score_fn, shape, n_steps, generator=gen)
            nfe = n_steps
        elif sampler == "PC":
            x = samplers.predictor_corrector(sde, score_fn, shape, max(1, n_steps // 2), snr=snr, generator=gen)
            nfe = 2 * max(1, n_steps // 2)
        else:
            x, nfe = samplers.probability_flow_ode(sde, score_fn, shape, rtol=1e-4, atol=1e-4, generator=gen)
    seconds = time.perf_counter() - start
    ed = energy_distance_to_target(x, target, gen)
    floor = energy_floor(target, drawn)
    key = ("sde", target)
    live = reuse(fig, key)
    if live is None:
        fig, ax = plt.subplots(figsize=(3.8, 3.8))
        density_axes(ax, *target_image(target))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.86)
        scat, title, label = sample_scatter(ax), ax.set_title(" ", fontsize=9), preview_label(ax)
        live = keep(fig, key, scat=scat, title=title, label=label, moving=[scat, title, label])
    live["scat"].set_offsets(x.float().numpy())
    live["title"].set_text(f"{sde_name} SDE, {sampler} ({score}): NFE {nfe}\nenergy distance {ed:.4f} "
                           f"(noise floor {floor[0]:.4f} +- {floor[1]:.4f})")
    show_preview(live["label"], drawn, n_samples, "samples")
    return fig, {"sampler": sampler, "sde": sde_name, "score": score, "nfe": nfe, "seconds": seconds,
                 "energy_distance": ed, "energy_floor": floor, "n_steps": n_steps, "snr": snr, "detail": detail}


@functools.lru_cache(maxsize=4096)
def _marginal_at(target: str, sde_name: str, t: float):
    return densities.SDEMarginal(named_target(target), sdes.SDES[sde_name]()).at(t)


def exact_sde_score(target: str, sde_name: str):
    """``sg.densities.SDEMarginal(target, SDES[sde_name]()).score``, the same numbers, with the marginal p_t
    (a ``GaussianMixture`` and its cached parameters) kept per time t: a reverse sampler's grid of times is
    the same at every slider move that keeps the number of steps, so those moves pay for the score alone.
    Used by ``sde_view`` (notebook 06)."""
    marginal = densities.SDEMarginal(named_target(target), sdes.SDES[sde_name]())

    def score(x, t):
        common = marginal.common_time(t)
        return marginal.score(x, t) if common is None else _marginal_at(target, sde_name, common).score(x)

    return score


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
