"""The MNIST explorers (notebooks 08 and 09): a sampling schedule, classifier-free guidance and inpainting,
each on a few digits from fixed noise. Same two layers as ``sg.widgets`` (a ``(fig, info)`` view with
``fig=`` for in-place updates, and a ``sg.widgets.live`` widget), and reachable as ``sg.widgets.<name>``.

Sized for a laptop CPU (issue 23): 16 digits for the schedule and guidance explorers (one batch through
the network per evaluation), 8 for inpainting with fewer RePaint passes than notebook 09's static figure;
the status line says "computing..." the moment a control moves, and every control sends its value only
when released (``continuous_update=False``), so a drag never queues stale sampling runs.

Each takes a ``ScoreModel`` (``sg.mnist.pretrained(name)``): the network, its SDE and its trained noise range
[t_min, 1], which bounds the levels a widget offers and where its samplers stop (``sg.samplers.end_time``).
"""
from __future__ import annotations

import math
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import validate
from ..core import guidance, plot, registry, samplers, schedules
from ..images import evaluation
from ..images.checkpoints import ScoreModel
from .live import interactive_view, keep, reuse

__all__ = ["fast_sampling_view", "fast_sampling_explorer", "guidance_view", "guidance_explorer", "inpainting_view",
           "inpainting_explorer"]


def _grid_axes(ax, x, nrow):
    """``sg.plot.image_grid`` as one AxesImage that ``set_data`` can refill."""
    im = ax.imshow(plot.grid_array(x, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _digit_noise(seed: int) -> torch.Tensor:
    """The fixed N(0, I) start of the MNIST widgets: 16 digits, so a change of settings is all that changes."""
    return torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def _timed_digits(model: ScoreModel, draw):
    """Run ``draw(device) -> (x, nfe)`` on the model's device without gradients; return the digits on the CPU
    in [0, 1], nfe and the seconds it took."""
    device = model.device
    start = time.perf_counter()
    with torch.no_grad():
        x, nfe = draw(device)
    return x.float().cpu().clamp(0, 1), nfe, time.perf_counter() - start


def fast_sampling_view(model: ScoreModel, n_steps: int = 18, sigma_max: float = 9.0, sigma_min: float = 0.03,
                       rho: float = 7.0, churn: float = 0.0, solver: str = "heun", noise: torch.Tensor | None = None,
                       seed: int = 0, fig=None):
    """A sampling schedule on MNIST: the schedule and the digits it gives, from fixed noise.

    Left: ``karras_sigmas(sigma_max, sigma_min, n_steps, rho)`` on a log axis, beside the geometric
    NCSN ladder of notebook 04 with the same ends and length (the rho -> infinity limit) and the
    uniform one (rho = 1). Right: the digits ``solver`` draws from ``noise`` ((16, 1, 28, 28) N(0, I),
    fixed so that a change of settings is all that changes the picture): a solver of ``sg.samplers.SIGMA_SOLVERS``,
    "heun" or "euler" (``sg.samplers.edm_sampler``, with ``churn``) or "dpm" (``sg.samplers.dpm_solver_2m``; churn
    unused). ``model``: a ``ScoreModel``; ``sigma_min`` may not go below its ``sigma_t_min``, the smallest level
    the network was trained on. ``fig``: the figure this view drew last time, updated in place
    (``sg.widgets.live``).

    Returns ``(fig, info)`` with ``sigmas`` (the schedule before 0), ``nfe``, ``seconds`` and ``samples``.
    Introduced in notebooks/08_fast_sampling.ipynb.
    """
    model = ScoreModel.of(model)
    validate.choice("solver", solver, registry.SIGMA_SOLVERS)
    sig = schedules.karras_sigmas(sigma_max, sigma_min, n_steps, rho=rho, dtype=torch.float64)  # checks first
    if sigma_min < model.sigma_t_min * (1 - 1e-9):
        raise ValueError(f"sigma_min={sigma_min!r} is below the smallest noise level the network was trained on, "
                         f"sigma_t_min = {model.sigma_t_min:.4g} (t_min = {model.t_min:g}); pass sigma_min >= "
                         f"{model.sigma_t_min:.4g}.")
    noise = _digit_noise(seed) if noise is None else noise
    spec = registry.sampler_for(solver)
    options = {"churn": churn, "solver": solver} if "churn" in spec.keywords else {}

    def draw(device):
        return spec.function(model.sde, model.net, None, n_steps, rho=rho, sigma_min=sigma_min, sigma_max=sigma_max,
                             noise=noise.to(device), generator=torch.Generator(device).manual_seed(seed), **options)

    x, nfe, seconds = _timed_digits(model, draw)

    live = reuse(fig, ("fast_sampling", len(x)))
    if live is None:
        fig, (ax, ax_img) = plt.subplots(1, 2, figsize=(8.6, 3.6), gridspec_kw={"width_ratios": [1.25, 1]})
        geo, = ax.semilogy([0], [1], "--", color="0.55", lw=1.2, label="geometric (NCSN, rho -> inf)")
        uni, = ax.semilogy([0], [1], ":", color="0.55", lw=1.2, label="uniform (rho = 1)")
        kar, = ax.semilogy([0], [1], "o-", color="#7c3aed", ms=4, label=" ")
        ax.set_xlabel("step i")
        ax.set_ylabel("sigma_i")
        legend = ax.legend(frameon=False, fontsize=9, loc="lower left")
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.9, wspace=0.12)
        grid, title, img_title = _grid_axes(ax_img, x, 4), ax.set_title(" ", fontsize=9), ax_img.set_title(" ", fontsize=9)
        live = keep(fig, ("fast_sampling", len(x)), ax=ax, geo=geo, uni=uni, kar=kar, legend=legend, grid=grid,
                    title=title, img_title=img_title, moving=[geo, uni, kar, grid, title, img_title])
    i = list(range(len(sig)))
    live["geo"].set_data(i, schedules.geometric_sigmas(sigma_max, sigma_min, n_steps).tolist())
    live["uni"].set_data(i, schedules.linear_sigmas(sigma_max, sigma_min, n_steps).tolist())
    live["kar"].set_data(i, sig.tolist())
    live["legend"].get_texts()[2].set_text(f"Karras, rho = {rho:g}")
    live["ax"].relim()
    live["ax"].autoscale_view()
    live["static"] = (rho, live["ax"].get_xlim(), live["ax"].get_ylim())       # the legend names rho
    live["title"].set_text(f"{n_steps} levels from {sigma_max:.3g} to {sigma_min:.3g}, then 0")
    live["grid"].set_data(plot.grid_array(x, 4))
    # EDM's gamma at the churned levels (sg.samplers.churn_etas: the one formula); 0 for a solver without churn
    gamma = float(samplers.churn_etas(sig, churn, top=model.sde.max_noise_level()).max()) if options else 0.0
    if not options:
        what = "DPM-Solver++(2M)" + (" (churn unused: EDM's solvers only)" if churn else "")
    else:
        what = f"EDM {solver}" + (f", churn {churn:g}: eta = {gamma:.3f}" + (" (capped)" if churn / n_steps > gamma
                                                                                 else "") if churn else "")
    live["img_title"].set_text(f"{what}: NFE {nfe}")
    return fig, {"sigmas": sig.tolist(), "nfe": nfe, "seconds": seconds, "samples": x, "solver": solver,
                 "gamma": gamma}


def fast_sampling_explorer(model: ScoreModel, seed: int = 0) -> W.interactive:
    """Sliders for ``fast_sampling_view``: N, sigma_max, sigma_min, rho, churn and the solver
    (``sg.samplers.SIGMA_SOLVERS``), on 16 digits from fixed noise (notebook 08). Every slider value changes the
    picture: sigma_min starts at the model's ``sigma_t_min``, the smallest level the network trained on (read from
    the model, never passed by hand); churn stops where gamma = S_churn / N reaches its cap sqrt(2) - 1 (its
    maximum follows N) and is disabled for a solver without churn (DPM-Solver)."""
    model = ScoreModel.of(model)
    top = model.sde.max_noise_level()
    low = model.sigma_t_min
    noise = _digit_noise(seed)
    churn = W.FloatSlider(value=0.0, min=0.0, max=_churn_cap(18), step=0.5, description="churn",
                          continuous_update=False)
    n_steps = W.IntSlider(value=18, min=2, max=60, description="N", continuous_update=False)
    solver = W.ToggleButtons(options=list(registry.SIGMA_SOLVERS), value="heun", description="solver")
    w = interactive_view(
        fast_sampling_view,
        n_steps=n_steps,
        sigma_max=W.FloatLogSlider(value=min(9.0, top), base=10, min=0, max=float(torch.log10(torch.tensor(top))),
                                   step=0.02, description="sigma_max", continuous_update=False),
        sigma_min=W.FloatLogSlider(value=max(0.03, low), base=10, min=math.log10(low),
                                   max=max(-0.5, math.log10(low) + 0.5), step=0.05,
                                   description="sigma_min", continuous_update=False),
        rho=W.FloatSlider(value=7.0, min=1.0, max=20.0, step=0.5, description="rho", continuous_update=False),
        churn=churn,
        solver=solver,
        model=W.fixed(model), noise=W.fixed(noise), seed=W.fixed(seed),
    )
    n_steps.observe(lambda change: setattr(churn, "max", _churn_cap(change["new"])), names="value")
    solver.observe(lambda change: setattr(churn, "disabled", "churn" not in registry.sampler_for(change["new"]).keywords),
                   names="value")
    return w


def _churn_cap(n_steps: int) -> float:
    """The S_churn at which EDM's gamma = S_churn / N reaches sqrt(2) - 1 (larger values change nothing)."""
    return math.floor(2 * (math.sqrt(2.0) - 1.0) * n_steps) / 2


def guidance_view(model: ScoreModel, digit: int = 7, scale: float = 2.0, n_steps: int = 18, churn: float = 40.0,
                  classifier=None, noise: torch.Tensor | None = None, seed: int = 0, fig=None):
    """Ask a class-conditional ``ScoreModel`` for a digit: 16 samples of ``digit`` with classifier-free guidance at
    ``scale`` (``sg.guidance.classifier_free_net``; 0 ignores the label, 1 is the conditional model), drawn
    by notebook 08's EDM sampler (Heun, ``n_steps`` levels, ``churn``, down to the end of the model's trained
    range, ``sg.samplers.end_time``) from fixed ``noise``. With the
    package's ``classifier`` the title says how many are read as ``digit``. ``fig``: the figure this view
    drew last time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)`` with ``nfe``, ``seconds``, ``samples`` and ``accuracy`` (None without a classifier).
    Introduced in notebooks/09_controllable_generation.ipynb."""

    model = ScoreModel.of(model)
    score = guidance.classifier_free_net(model.net, digit, scale)     # checks the digit and the scale first
    noise = _digit_noise(seed) if noise is None else noise
    sigma_end = registry.end_sigma(model.sde, model.t_min)
    x, nfe, seconds = _timed_digits(model, lambda device: samplers.edm_sampler(
        model.sde, score, None, n_steps, churn=churn, sigma_min=sigma_end, noise=noise.to(device),
        generator=torch.Generator(device).manual_seed(seed)))
    acc = evaluation.accuracy(classifier, x, torch.full((len(x),), digit)) if classifier is not None else None
    live = reuse(fig, ("guidance", len(x)))
    if live is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.9))
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86)
        grid, title = _grid_axes(ax, x, 4), ax.set_title(" ", fontsize=9)
        live = keep(fig, ("guidance", len(x)), grid=grid, title=title, moving=[grid, title])
    live["grid"].set_data(plot.grid_array(x, 4))
    read = f"; {acc:.0%} read as {digit}" if acc is not None else ""
    live["title"].set_text(f"'{digit}', guidance scale κ = {scale:g}\nNFE {nfe} (x2 with guidance){read}")
    return fig, {"digit": digit, "scale": scale, "nfe": nfe, "seconds": seconds, "samples": x, "accuracy": acc}


def guidance_explorer(model: ScoreModel, classifier=None, seed: int = 0) -> W.interactive:
    """Sliders for ``guidance_view``: digit, guidance scale and sampler levels (notebook 09)."""
    model = ScoreModel.of(model)
    noise = _digit_noise(seed)
    return interactive_view(
        guidance_view,
        digit=W.IntSlider(value=7, min=0, max=9, description="digit", continuous_update=False),
        scale=W.FloatSlider(value=2.0, min=0.0, max=6.0, step=0.25, description="scale", continuous_update=False),
        n_steps=W.IntSlider(value=18, min=4, max=40, description="N", continuous_update=False),
        model=W.fixed(model), churn=W.fixed(40.0), classifier=W.fixed(classifier),
        noise=W.fixed(noise), seed=W.fixed(seed),
    )


def inpainting_view(model: ScoreModel, images: torch.Tensor, labels: torch.Tensor, digit: int = 3, mask: str = "top",
                    method: str = "RePaint", n_steps: int = 50, resample: int = 5, classifier=None, seed: int = 0,
                    fig=None):
    """Complete digits from part of them: the first 8 of ``images`` (held-out digits, please) whose label is
    ``digit``, shown only where ``mask`` is 1 (``sg.guidance.make_mask``), completed by the unconditional
    ``model`` (a ``ScoreModel``) with ``method`` "replacement" (``sg.guidance.inpaint``, Euler-Maruyama, ``n_steps``,
    down to ``sg.samplers.end_time`` of its trained range) or "RePaint" (the same with ``resample`` passes per
    step). Rows: originals, what the sampler sees, completions.
    ``fig``: the figure this view drew last time, updated in place (``sg.widgets.live``).

    Returns ``(fig, info)`` with ``nfe``, ``seconds``, ``samples`` and ``accuracy_as_original`` (how many
    completions the package's ``classifier`` reads as the original digit; None without one).
    Introduced in notebooks/09_controllable_generation.ipynb."""
    from ..core import guidance

    model = ScoreModel.of(model)
    validate.choice("method", method, {"replacement", "RePaint"})
    m = guidance.make_mask(mask, generator=torch.Generator().manual_seed(seed))
    idx = (labels == digit).nonzero().flatten()[:8]
    if len(idx) == 0:
        raise ValueError(f"digit={digit!r}: no image with that label among the {len(labels)} given.")
    known = images[idx]
    x, nfe, seconds = _timed_digits(model, lambda device: guidance.inpaint(
        model.sde, model.net, known.to(device), m.to(device), n_steps, sampler="em",
        resample=resample if method == "RePaint" else 1, eps=registry.end_time(model.t_min),
        generator=torch.Generator(device).manual_seed(seed)))
    acc = evaluation.accuracy(classifier, x, labels[idx]) if classifier is not None else None
    shown = guidance.masked_view(known, m)
    rows = torch.cat([known, shown, x])
    live = reuse(fig, ("inpainting", len(idx)))
    if live is None:
        fig, ax = plt.subplots(figsize=(6.4, 2.9))
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.84)
        grid, title = _grid_axes(ax, rows, len(idx)), ax.set_title(" ", fontsize=9)
        live = keep(fig, ("inpainting", len(idx)), grid=grid, title=title, moving=[grid, title])
    live["grid"].set_data(plot.grid_array(rows, len(idx)))
    read = f"; {acc:.0%} read as the original" if acc is not None else ""
    live["title"].set_text(f"{mask} shown, {method}: NFE {nfe}{read}\n(rows: original, shown, completed)")
    return fig, {"digit": digit, "mask": mask, "method": method, "nfe": nfe, "seconds": seconds, "samples": x,
                 "known": known, "accuracy_as_original": acc}


def inpainting_explorer(model: ScoreModel, images, labels, classifier=None) -> W.interactive:
    """Controls for ``inpainting_view``: digit, mask and method (notebook 09). Sized for a CPU: 30 levels with
    3 RePaint passes: 88 network evaluations of 8 digits, where the view's default 50 x 5 takes 246, so an
    update takes about a third of the time (``benchmarks/widget_latency.py``)."""
    from ..core.guidance import MASKS

    return interactive_view(
        inpainting_view,
        digit=W.IntSlider(value=3, min=0, max=9, description="digit", continuous_update=False),
        mask=W.Dropdown(options=list(MASKS), value="top", description="mask"),
        method=W.ToggleButtons(options=["replacement", "RePaint"], value="RePaint", description="method"),
        model=W.fixed(ScoreModel.of(model)), images=W.fixed(images), labels=W.fixed(labels),
        n_steps=W.fixed(30), resample=W.fixed(3), classifier=W.fixed(classifier), seed=W.fixed(0),
    )
