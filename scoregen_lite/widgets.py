"""Interactive explorers for the notebooks.

Each explorer is two layers: a *view*, a plain function of numbers and names
that computes, draws, and returns ``(figure, info)``; and a thin ipywidgets
``interactive`` that wires sliders to it. Notebooks call the view directly for
static figures (and assert on ``info``); tests drive the widget by setting
``w.children[i].value`` and reading ``w.result`` (the ``info`` dict). Views read
no notebook globals.
"""
from __future__ import annotations

import functools
import math

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

import time

from . import _checks, densities, metrics, plot, samplers, schedules
from . import sde as sdes

__all__ = [
    "interactive_view",
    "uniform_start",
    "energy_floor",
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


def interactive_view(view, **controls) -> W.interactive:
    """Wire ``controls`` (widgets or ``ipywidgets.fixed`` values) to ``view(**kwargs) -> (fig, info)``.

    The figure is displayed and closed; ``w.result`` holds ``info``. The time a view took (``info["seconds"]``,
    with ``info["nfe"]``) is printed as a line of text under the figure, not drawn in it: the figure shows only
    what the settings change, so a control that changes nothing leaves it identical (the browser tests rely on it).
    """
    from IPython.display import display

    def show(**kwargs):
        fig, info = view(**kwargs)
        display(fig)
        plt.close(fig)
        if isinstance(info, dict) and "seconds" in info:
            print(f"{info['nfe']} score evaluations in {info['seconds']:.2f} s" if "nfe" in info
                  else f"{info['seconds']:.2f} s")
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


@functools.lru_cache(maxsize=32)
def energy_floor(target: str, n: int, m: int = 4000, repeats: int = 5) -> tuple[float, float]:
    """(mean, std) of the energy distance between two independent samples (sizes n and m) of a ready-made
    target: the noise floor printed beside every distance a view shows (computed once per target and size,
    seeded, then cached so that sliders stay fast)."""
    floor = metrics.energy_noise_floor(densities.target(target), n, m, repeats=repeats,
                                       generator=torch.Generator().manual_seed(12345))
    return floor["mean"], floor["std"]


def _diverged(err: Exception, info: dict):
    """The figure a view shows instead of samples when the chains blew up (``SamplerDiverged``)."""
    info.update(diverged=True, message=str(err))
    fig, ax = plt.subplots(figsize=(6.0, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, "the chains diverged:\n" + str(err).split(";")[0] + "\nlower eps", ha="center", va="center",
            fontsize=9, color="#b91c1c", wrap=True)
    return fig, info


def langevin_view(target: str = "two modes (0.2/0.8)", step_size: float = 0.1, n_steps: int = 300,
                  sampler: str = "Langevin", n_chains: int = 1000, seed: int = 0):
    """Run Langevin (eq. (1)) or MALA with the exact score of a ready-made target and show the result.

    Chains start uniform over the plotting window. Left: the density, the final
    samples and a few paths. Right: the fraction of samples in each mixture
    component next to the true weights.

    Returns ``(fig, info)`` with info keys ``target``, ``step_size``, ``n_steps``,
    ``sampler``, ``true_weights``, ``sample_weights`` (lists), ``max_weight_error``,
    ``diverged`` (True when the step blew the chains up; the figure then says so) and, for MALA,
    ``acceptance``. Used by ``langevin_explorer``; introduced in
    notebooks/01_scores_and_langevin.ipynb.
    """
    p = densities.target(target)
    gen = torch.Generator().manual_seed(seed)
    bounds = p.bounds()
    x0 = uniform_start(n_chains, bounds, generator=gen)
    info = {"target": target, "step_size": step_size, "n_steps": n_steps, "sampler": sampler, "diverged": False}
    _checks.choice("sampler", sampler, {"Langevin", "MALA"})
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


def ladder(sigma_max: float, sigma_min: float, n_levels: int, spacing: str = "geometric") -> torch.Tensor:
    """The noise ladder the schedule widgets use: ``geometric`` (the NCSN choice) or ``linear``."""
    if spacing == "geometric":
        return schedules.geometric_sigmas(sigma_max, sigma_min, n_levels)
    if spacing == "linear":
        return schedules.linear_sigmas(sigma_max, sigma_min, n_levels)
    raise ValueError(f"spacing={spacing!r} is invalid: choose 'geometric' or 'linear'.")


def schedule_view(sigma_max: float = 10.0, sigma_min: float = 0.1, n_levels: int = 10, spacing: str = "geometric",
                  target: str = "two modes (0.2/0.8)", step_size: float = 5e-3):
    """What a sigma ladder does to a 2D target, without sampling anything.

    Top left: the ladder sigma_1 > ... > sigma_L on a log axis, with the largest distance
    between two modes (technique 1 of Song & Ermon 2020: sigma_1 should reach it). Top right:
    step sizes alpha_i = step_size sigma_i^2 / sigma_L^2 and the update's signal-to-noise
    ratio sqrt(alpha_i) / (2 sigma_i), constant for any ladder. Bottom: the exact perturbed
    densities q_sigma at the first, middle and last level (``GaussianMixture.perturb``).

    Returns ``(fig, info)`` with ``sigmas``, ``ratios`` (sigma_{i-1}/sigma_i), ``alphas``,
    ``snr`` (lists) and ``mode_distance``. Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    p = densities.target(target)
    sig = ladder(sigma_max, sigma_min, n_levels, spacing)
    alphas = schedules.step_sizes(sig, step_size)
    snr = schedules.update_snr(sig, step_size)
    mode_distance = torch.cdist(p.means, p.means).max().item()
    bounds = p.bounds()

    fig = plt.figure(figsize=(8.4, 5.4))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 1.15])
    ax = fig.add_subplot(gs[0, :2])
    levels = range(1, len(sig) + 1)
    ax.semilogy(levels, sig, "o-", color="#7c3aed", label=f"sigma_i ({spacing})")
    ax.axhline(mode_distance, color="k", ls="--", lw=1, label=f"largest mode distance {mode_distance:.1f}")
    ax.set_xlabel("level i"); ax.set_ylabel("sigma_i")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    ax.set_title(f"{len(sig)} levels, sigma from {float(sig[0]):.3g} to {float(sig[-1]):.3g}")
    ax2 = fig.add_subplot(gs[0, 2])
    ax2.semilogy(levels, alphas, "s-", color=plot.SAMPLE_COLOR, label="alpha_i")
    ax2.set_xlabel("level i"); ax2.set_ylabel("step size alpha_i")
    tw = ax2.twinx()
    tw.plot(levels, snr, "k:", lw=1.5, label="SNR")
    tw.set_ylim(0, max(0.1, 2 * float(snr.max())))
    tw.set_ylabel("update SNR", fontsize=8)
    ax2.set_title(f"SNR {float(snr[0]):.3f} at every level", fontsize=9)
    picks = sorted({0, len(sig) // 2, len(sig) - 1})
    for k, i in enumerate(picks):
        a = fig.add_subplot(gs[1, k])
        plot.density(a, p.perturb(float(sig[i])).log_prob, bounds, title=f"q at sigma_{i + 1} = {float(sig[i]):.3g}")
        a.set_xticks([]); a.set_yticks([])
    fig.tight_layout()
    info = {"sigmas": sig.tolist(), "ratios": (sig[:-1] / sig[1:]).tolist(), "alphas": alphas.tolist(),
            "snr": snr.tolist(), "mode_distance": mode_distance}
    return fig, info


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
                  spacing: str = "geometric", n_chains: int = 2000, seed: int = 0):
    """Annealed Langevin dynamics from a uniform start, with the exact or a learned score.

    ``score='exact'`` uses ``density.perturbed_score``; ``score='learned'`` uses ``net(x, sigma)``,
    a noise-conditional network trained on the target (e.g. by ``sg.train.train_ncsn``).
    Panels: the chains at the start, after a third and two thirds of the levels, at the end
    (over the density), and the fraction of samples per mixture component.

    Returns ``(fig, info)``, info: ``true_weights``, ``sample_weights``, ``max_weight_error``,
    ``energy_distance`` (to 4000 true samples) and ``energy_floor`` (its noise floor, (mean, std), see
    ``energy_floor``), ``title`` (the figure's title; None when diverged)
    and ``diverged`` (True when the step size blew the chains up; the figure then says so). Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    p = densities.target(target)
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
                energy_distance=metrics.energy_distance(x, p.sample(4000, generator=gen), generator=gen),
                energy_floor=energy_floor(target, n_chains))
    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.9]})
    L = len(sig)
    snaps = [0, max(1, L // 3), max(1, 2 * L // 3), L]
    for ax, k in zip(axes[:4], snaps):
        level_sigma = float(sig[k - 1]) if k > 0 else None
        dens = p.perturb(level_sigma).log_prob if level_sigma else p.log_prob
        plot.density(ax, dens, bounds)
        plot.samples(ax, path[k][:1500], bounds=bounds, s=1.5)
        ax.set_title("start (uniform)" if k == 0 else f"after level {k}, sigma={level_sigma:.2g}", fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
    k = range(p.n_components)
    bar = axes[4]
    bar.bar([i - 0.2 for i in k], info["true_weights"], width=0.4, color="#7c3aed", label="true")
    bar.bar([i + 0.2 for i in k], got, width=0.4, color=plot.SAMPLE_COLOR, label="samples")
    bar.set_ylim(0, 1); bar.set_xticks(list(k)); bar.legend(frameon=False, fontsize=7)
    bar.set_title(f"weight error {info['max_weight_error']:.3f}", fontsize=9)
    info["title"] = (f"annealed Langevin ({score} score): L={L}, eps={step_size:.2g}, T={n_steps_each}, "
                     f"energy distance {info['energy_distance']:.4f} (noise floor {info['energy_floor'][0]:.4f} "
                     f"+- {info['energy_floor'][1]:.4f})")
    fig.suptitle(info["title"], fontsize=10)
    fig.tight_layout()
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
             nets: dict | None = None, target: str = "ring of 8", n_samples: int = 2000, seed: int = 0):
    """Sample a 2D target with a reverse-time sampler and compare with the truth.

    ``sampler``: "EM" (Euler-Maruyama, eq. (7)), "PC" (predictor-corrector with one corrector step at
    ``snr``; n_steps is halved so the cost matches EM) or "ODE" (probability flow, adaptive RK45;
    n_steps is ignored). ``score``: "exact" (``SDEMarginal.score``) or "learned" (``nets[sde_name]``,
    a time-conditional network trained for that SDE).

    Returns ``(fig, info)``: info has ``nfe`` (score evaluations), ``seconds``,
    ``energy_distance`` to 4000 true samples and ``energy_floor`` (its noise floor, (mean, std)). Introduced in notebooks/06_sdes.ipynb.
    """
    _checks.choice("sampler", sampler, {"EM", "PC", "ODE"})
    _checks.choice("sde_name", sde_name, sdes.SDES)
    p = densities.target(target)
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
    ed = metrics.energy_distance(x, p.sample(4000, generator=gen), generator=gen)
    floor = energy_floor(target, n_samples)
    bounds = p.bounds()
    fig, ax = plt.subplots(figsize=(3.8, 3.8))
    plot.density(ax, p.log_prob, bounds)
    plot.samples(ax, x, bounds=bounds)
    ax.set_title(f"{sde_name} SDE, {sampler} ({score}): NFE {nfe}\nenergy distance {ed:.4f} "
                 f"(noise floor {floor[0]:.4f} +- {floor[1]:.4f})", fontsize=9)
    fig.tight_layout()
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


def _digit_noise(seed: int) -> torch.Tensor:
    """The fixed N(0, I) start of the MNIST widgets: 16 digits, so a change of settings is all that changes."""
    return torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def _timed_digits(net, draw):
    """Run ``draw(device) -> (x, nfe)`` on ``net``'s device without gradients; return the digits on the CPU
    in [0, 1], nfe and the seconds it took."""
    device = next(net.parameters()).device if hasattr(net, "parameters") else torch.device("cpu")
    start = time.perf_counter()
    with torch.no_grad():
        x, nfe = draw(device)
    return x.float().cpu().clamp(0, 1), nfe, time.perf_counter() - start


def fast_sampling_view(net, sde, n_steps: int = 18, sigma_max: float = 9.0, sigma_min: float = 0.03, rho: float = 7.0,
                       churn: float = 0.0, solver: str = "heun", noise: torch.Tensor | None = None, seed: int = 0):
    """A sampling schedule on MNIST: the schedule and the digits it gives, from fixed noise.

    Left: ``karras_sigmas(sigma_max, sigma_min, n_steps, rho)`` on a log axis, beside the geometric
    NCSN ladder of notebook 04 with the same ends and length (the rho -> infinity limit) and the
    uniform one (rho = 1). Right: the digits ``solver`` draws from ``noise`` ((16, 1, 28, 28) N(0, I),
    fixed so that a change of settings is all that changes the picture): "heun" or "euler"
    (``sg.samplers.edm_sampler``, with ``churn``) or "dpm" (``sg.samplers.dpm_solver_2m``; churn unused).
    ``net``: a score network ``net(x, t)`` trained for ``sde``.

    Returns ``(fig, info)`` with ``sigmas`` (the schedule before 0), ``nfe``, ``seconds`` and ``samples``.
    Introduced in notebooks/08_fast_sampling.ipynb.
    """
    _checks.choice("solver", solver, {"heun", "euler", "dpm"})
    sig = schedules.karras_sigmas(sigma_max, sigma_min, n_steps, rho=rho, dtype=torch.float64)  # checks first
    noise = _digit_noise(seed) if noise is None else noise

    def draw(device):
        if solver == "dpm":
            return samplers.dpm_solver_2m(sde, net, None, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max,
                                          noise=noise.to(device))
        return samplers.edm_sampler(sde, net, None, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max,
                                    churn=churn, solver=solver, noise=noise.to(device),
                                    generator=torch.Generator(device).manual_seed(seed))

    x, nfe, seconds = _timed_digits(net, draw)

    fig, (ax, ax_img) = plt.subplots(1, 2, figsize=(8.6, 3.6), gridspec_kw={"width_ratios": [1.25, 1]})
    i = range(len(sig))
    ax.semilogy(i, schedules.geometric_sigmas(sigma_max, sigma_min, n_steps), "--", color="0.55", lw=1.2,
                label="geometric (NCSN, rho -> inf)")
    ax.semilogy(i, schedules.linear_sigmas(sigma_max, sigma_min, n_steps), ":", color="0.55", lw=1.2,
                label="uniform (rho = 1)")
    ax.semilogy(i, sig, "o-", color="#7c3aed", ms=4, label=f"Karras, rho = {rho:g}")
    ax.set_xlabel("step i"); ax.set_ylabel("sigma_i")
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    ax.set_title(f"{n_steps} levels from {sigma_max:.3g} to {sigma_min:.3g}, then 0", fontsize=9)
    plot.image_grid(ax_img, x, nrow=4)
    gamma = min(churn / n_steps, math.sqrt(2.0) - 1.0)
    if solver == "dpm":
        what = "DPM-Solver++(2M)" + (" (churn unused: EDM's solvers only)" if churn else "")
    else:
        what = f"EDM {solver}" + (f", churn {churn:g}: gamma = {gamma:.3f}" + (" (capped)" if churn / n_steps > gamma
                                                                                 else "") if churn else "")
    ax_img.set_title(f"{what}: NFE {nfe}", fontsize=9)
    fig.tight_layout()
    return fig, {"sigmas": sig.tolist(), "nfe": nfe, "seconds": seconds, "samples": x, "solver": solver,
                 "gamma": 0.0 if solver == "dpm" else gamma}


def fast_sampling_explorer(net, sde, seed: int = 0, eps: float = 1e-5) -> W.interactive:
    """Sliders for ``fast_sampling_view``: N, sigma_max, sigma_min, rho, churn and the solver, on 16 digits
    from fixed noise (notebook 08). Every slider value changes the picture: sigma_min starts at sigma(eps), the
    smallest level the network trained on (``eps``: its smallest training time); churn stops where
    gamma = S_churn / N reaches its cap sqrt(2) - 1 (its maximum follows N) and is disabled for DPM-Solver,
    which has no churn."""
    top = sde.max_noise_level()
    low = float(sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64)))
    noise = _digit_noise(seed)
    churn = W.FloatSlider(value=0.0, min=0.0, max=_churn_cap(18), step=0.5, description="churn",
                          continuous_update=False)
    n_steps = W.IntSlider(value=18, min=2, max=60, description="N", continuous_update=False)
    solver = W.ToggleButtons(options=["heun", "euler", "dpm"], value="heun", description="solver")
    w = interactive_view(
        fast_sampling_view,
        n_steps=n_steps,
        sigma_max=W.FloatLogSlider(value=min(9.0, top), base=10, min=0, max=float(torch.log10(torch.tensor(top))),
                                   step=0.02, description="sigma_max", continuous_update=False),
        sigma_min=W.FloatLogSlider(value=0.03, base=10, min=math.log10(low), max=-0.5, step=0.05,
                                   description="sigma_min", continuous_update=False),
        rho=W.FloatSlider(value=7.0, min=1.0, max=20.0, step=0.5, description="rho", continuous_update=False),
        churn=churn,
        solver=solver,
        net=W.fixed(net), sde=W.fixed(sde), noise=W.fixed(noise), seed=W.fixed(seed),
    )
    n_steps.observe(lambda change: setattr(churn, "max", _churn_cap(change["new"])), names="value")
    solver.observe(lambda change: setattr(churn, "disabled", change["new"] == "dpm"), names="value")
    return w


def _churn_cap(n_steps: int) -> float:
    """The S_churn at which EDM's gamma = S_churn / N reaches sqrt(2) - 1 (larger values change nothing)."""
    return math.floor(2 * (math.sqrt(2.0) - 1.0) * n_steps) / 2


def guidance_view(net, sde, digit: int = 7, scale: float = 2.0, n_steps: int = 18, churn: float = 40.0,
                  classifier=None, noise: torch.Tensor | None = None, seed: int = 0):
    """Ask a class-conditional network for a digit: 16 samples of ``digit`` with classifier-free guidance at
    ``scale`` (``sg.guidance.classifier_free_net``; 0 ignores the label, 1 is the conditional model), drawn
    by notebook 08's EDM sampler (Heun, ``n_steps`` levels, ``churn``) from fixed ``noise``. With the
    package's ``classifier`` the title says how many are read as ``digit``.

    Returns ``(fig, info)`` with ``nfe``, ``seconds``, ``samples`` and ``accuracy`` (None without a classifier).
    Introduced in notebooks/09_controllable_generation.ipynb."""
    from . import guidance

    score = guidance.classifier_free_net(net, digit, scale)     # checks the digit and the scale first
    noise = _digit_noise(seed) if noise is None else noise
    x, nfe, seconds = _timed_digits(net, lambda device: samplers.edm_sampler(
        sde, score, None, n_steps, churn=churn, noise=noise.to(device), generator=torch.Generator(device).manual_seed(seed)))
    acc = metrics.accuracy(classifier, x, torch.full((len(x),), digit)) if classifier is not None else None
    fig, ax = plt.subplots(figsize=(3.6, 3.9))
    plot.image_grid(ax, x, nrow=4)
    read = f"; {acc:.0%} read as {digit}" if acc is not None else ""
    ax.set_title(f"'{digit}', guidance scale {scale:g}\nNFE {nfe} (x2 with guidance){read}", fontsize=9)
    fig.tight_layout()
    return fig, {"digit": digit, "scale": scale, "nfe": nfe, "seconds": seconds, "samples": x, "accuracy": acc}


def guidance_explorer(net, sde, classifier=None, seed: int = 0) -> W.interactive:
    """Sliders for ``guidance_view``: digit, guidance scale and sampler levels (notebook 09)."""
    noise = _digit_noise(seed)
    return interactive_view(
        guidance_view,
        digit=W.IntSlider(value=7, min=0, max=9, description="digit", continuous_update=False),
        scale=W.FloatSlider(value=2.0, min=0.0, max=6.0, step=0.25, description="scale", continuous_update=False),
        n_steps=W.IntSlider(value=18, min=4, max=40, description="N", continuous_update=False),
        net=W.fixed(net), sde=W.fixed(sde), churn=W.fixed(40.0), classifier=W.fixed(classifier),
        noise=W.fixed(noise), seed=W.fixed(seed),
    )


def inpainting_view(net, sde, images: torch.Tensor, labels: torch.Tensor, digit: int = 3, mask: str = "top",
                    method: str = "RePaint", n_steps: int = 50, resample: int = 5, classifier=None, seed: int = 0):
    """Complete digits from part of them: the first 8 of ``images`` (held-out digits, please) whose label is
    ``digit``, shown only where ``mask`` is 1 (``sg.guidance.make_mask``), completed by the unconditional
    ``net`` with ``method`` "replacement" (``sg.guidance.inpaint``, Euler-Maruyama, ``n_steps``) or "RePaint"
    (the same with ``resample`` passes per step). Rows: originals, what the sampler sees, completions.

    Returns ``(fig, info)`` with ``nfe``, ``seconds``, ``samples`` and ``accuracy_as_original`` (how many
    completions the package's ``classifier`` reads as the original digit; None without one).
    Introduced in notebooks/09_controllable_generation.ipynb."""
    from . import guidance

    _checks.choice("method", method, {"replacement", "RePaint"})
    m = guidance.make_mask(mask, generator=torch.Generator().manual_seed(seed))
    idx = (labels == digit).nonzero().flatten()[:8]
    if len(idx) == 0:
        raise ValueError(f"digit={digit!r}: no image with that label among the {len(labels)} given.")
    known = images[idx]
    x, nfe, seconds = _timed_digits(net, lambda device: guidance.inpaint(
        sde, net, known.to(device), m.to(device), n_steps, sampler="em", resample=resample if method == "RePaint" else 1,
        generator=torch.Generator(device).manual_seed(seed)))
    acc = metrics.accuracy(classifier, x, labels[idx]) if classifier is not None else None
    shown = guidance.masked_view(known, m)
    fig, ax = plt.subplots(figsize=(6.4, 2.9))
    plot.image_grid(ax, torch.cat([known, shown, x]), nrow=len(idx))
    read = f"; {acc:.0%} read as the original" if acc is not None else ""
    ax.set_title(f"{mask} shown, {method}: NFE {nfe}{read}\n(rows: original, shown, completed)",
                 fontsize=9)
    fig.tight_layout()
    return fig, {"digit": digit, "mask": mask, "method": method, "nfe": nfe, "seconds": seconds, "samples": x,
                 "known": known, "accuracy_as_original": acc}


def inpainting_explorer(net, sde, images, labels, classifier=None) -> W.interactive:
    """Controls for ``inpainting_view``: digit, mask and method (notebook 09)."""
    from .guidance import MASKS

    return interactive_view(
        inpainting_view,
        digit=W.IntSlider(value=3, min=0, max=9, description="digit", continuous_update=False),
        mask=W.Dropdown(options=list(MASKS), value="top", description="mask"),
        method=W.ToggleButtons(options=["replacement", "RePaint"], value="RePaint", description="method"),
        net=W.fixed(net), sde=W.fixed(sde), images=W.fixed(images), labels=W.fixed(labels),
        n_steps=W.fixed(50), resample=W.fixed(5), classifier=W.fixed(classifier), seed=W.fixed(0),
    )
