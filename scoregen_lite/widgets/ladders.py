"""The explorers of noise ladders (notebooks 05 and 06): what a sigma ladder does to a 2D target, annealed
Langevin dynamics down it (exact or learned score), and reverse-time SDE samplers (EM, PC, probability flow).
Two layers each, as ``sg.widgets`` describes: a ``(fig, info)`` view and a widget.
"""
from __future__ import annotations

import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import validate
from ..core import densities, plot, samplers, schedules
from ..core import sde as sdes
from .common import (
    density_axes,
    diverged_figure,
    energy_distance_to_target,
    energy_floor,
    named_target,
    sample_scatter,
    set_bars,
    target_image,
    uniform_start,
    weight_bars,
)
from .live import interactive_view, keep, reuse

__all__ = ["ladder", "schedule_view", "schedule_explorer", "annealed_view", "annealed_explorer", "sde_view",
           "sde_explorer"]


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
    and ``diverged`` (True when the step size blew the chains up; the figure then says so).
    Introduced in notebooks/05_annealed_langevin.ipynb.
    """
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
    x0 = uniform_start(n_chains, bounds, generator=gen)
    info = {"score": score, "sigmas": sig.tolist(), "step_size": step_size, "n_steps_each": n_steps_each,
            "true_weights": p.weights.tolist(), "diverged": False}
    try:
        x, path = samplers.annealed_langevin(score_fn, x0, sig, step_size, n_steps_each, return_path=True,
                                             generator=gen)
    except samplers.SamplerDiverged as err:
        info.update(sample_weights=None, max_weight_error=None, energy_distance=None, energy_floor=None, title=None)
        return diverged_figure(err, info)
    got = p.mode_weights(x).tolist()
    info.update(sample_weights=got, max_weight_error=max(abs(a - b) for a, b in zip(info["true_weights"], got)),
                energy_distance=energy_distance_to_target(x, target, gen),
                energy_floor=energy_floor(target, n_chains))
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
    set_bars(live["true"], info["true_weights"])
    set_bars(live["got"], got)
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
    ``energy_distance`` to 4000 true samples and ``energy_floor`` (its noise floor, (mean, std)).
    Introduced in notebooks/06_sdes.ipynb.
    """
    validate.choice("sampler", sampler, {"EM", "PC", "ODE"})
    validate.choice("sde_name", sde_name, sdes.SDES)
    p = named_target(target)
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
    ed = energy_distance_to_target(x, target, gen)
    floor = energy_floor(target, n_samples)
    key = ("sde", target)
    live = reuse(fig, key)
    if live is None:
        fig, ax = plt.subplots(figsize=(3.8, 3.8))
        density_axes(ax, *target_image(target))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.86)
        scat, title = sample_scatter(ax), ax.set_title(" ", fontsize=9)
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
