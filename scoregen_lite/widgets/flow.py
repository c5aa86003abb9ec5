"""The flow matching explorer (notebook 11): the exact marginal velocity of the straight path on a 2D target, and
trajectories of one fixed set of noise points integrated with Euler's method, on the straight path's exact velocity
beside notebook 06's probability-flow ODE (VE or VP SDE, exact score), with the same number of steps. Two layers, as
``sg.widgets`` describes: the ``(fig, info)`` view ``flow_view`` and the widget ``flow_explorer``.
"""
from __future__ import annotations

import functools
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.collections import LineCollection

from .. import validate
from ..core import densities, plot
from ..core import flow as flows
from ..core import sde as sdes
from .common import (
    check_detail,
    density_axes,
    detail_count,
    energy_distance_to_target,
    energy_floor,
    named_target,
    preview_label,
    show_preview,
)
from .live import interactive_view, keep, reuse

__all__ = ["flow_trajectories", "flow_view", "flow_explorer"]

#: the ODE the straight flow is compared with: notebook 06's probability-flow ODE of these SDEs
PATHS = ("VE", "VP")
#: the end time of the probability-flow ODE (``sg.samplers.probability_flow_ode``'s eps)
T_EPS = 1e-3
_GRID = 17                         # arrows per side of the velocity field
_AT_T_COLOR = "#f97316"            # the points' positions at the slider's t


def _window(target: str) -> tuple[float, float, float, float]:
    """The target's plotting window, widened to hold the noise N(0, I) too (the trajectories start there)."""
    lo, hi, _, _ = named_target(target).bounds()
    lo, hi = min(lo, -3.5), max(hi, 3.5)
    return lo, hi, lo, hi


@functools.lru_cache(maxsize=64)
def flow_trajectories(target: str, n_steps: int, path: str, n_points: int = 200, seed: int = 0) -> dict:
    """The same ``n_points`` noise points z ~ N(0, I) (seeded) integrated from t = 1 to the data with ``n_steps``
    Euler steps, (a) on the straight path with its exact marginal velocity (``sg.flow.euler_flow`` with
    ``sg.flow.marginal_velocity``), and (b) through the probability-flow ODE dx/dt = f - (1/2) g^2 score (eq. (7)
    with ``ode``; ``sg.sde.SDES[path]``, the exact score ``sg.densities.SDEMarginal``) from x(1) = prior_std z on
    notebook 06's grid, n_steps even steps from t = 1 to ``T_EPS``.

    Both as paths in the straight path's coordinates: a state x(t) = alpha_t x(0) + std_t z of the SDE is
    x(t) / (alpha_t + std_t) = (1 - u) x(0) + u z with u = std_t / (alpha_t + std_t), a point of the straight path
    at time u (every Gaussian path is one family; for VE, u = sigma / (1 + sigma)). Returns a dict (float64, cached
    per setting, so a time slider costs no integration): ``straight`` and ``ode``, paths (n_steps + 1, n, 2) in those
    coordinates; ``u_straight`` and ``u_ode``, the times u of their nodes (decreasing); ``end_straight`` and
    ``end_ode``, the samples (the ODE's unscaled x(T_EPS)). Introduced in notebooks/11_flow_matching.ipynb."""
    validate.choice("path", path, PATHS)
    p = densities.target(target, dtype=torch.float64)
    z = torch.randn(n_points, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x, _, straight = flows.euler_flow(functools.partial(flows.marginal_velocity, p), z, n_steps, dtype=torch.float64,
                                      return_path=True)
    sde = sdes.SDES[path]()
    score = densities.SDEMarginal(p, sde).score
    ts = torch.linspace(1.0, T_EPS, n_steps + 1, dtype=torch.float64)
    y = sde.prior_std() * z
    nodes = [y]
    with torch.no_grad():
        for k in range(n_steps):                          # Euler on the probability-flow ODE, notebook 06's grid
            tv = torch.full((n_points,), float(ts[k]), dtype=torch.float64)
            y = y + float(ts[k + 1] - ts[k]) * sde.reverse_drift(y, tv, score(y, tv), ode=True)
            nodes.append(y)
    alpha, std = sde.marginal_coeffs(ts)
    ode = torch.stack(nodes) / (alpha + std)[:, None, None]
    return {"straight": straight, "u_straight": torch.linspace(1.0, 0.0, n_steps + 1, dtype=torch.float64),
            "ode": ode, "u_ode": std / (alpha + std), "end_straight": x, "end_ode": y}


def _at(path: torch.Tensor, us: torch.Tensor, u: float) -> torch.Tensor:
    """The points of a piecewise-linear path (nodes ``path`` at the decreasing times ``us``) at time u (clamped to
    the path's range): an Euler path is a straight segment between its nodes."""
    u = min(max(u, float(us[-1])), float(us[0]))
    k = min(int((us >= u).sum()) - 1, len(us) - 2)
    span = float(us[k] - us[k + 1])
    w = (float(us[k]) - u) / span if span > 0 else 0.0
    return (1 - w) * path[k] + w * path[k + 1]


@functools.lru_cache(maxsize=64)
def _velocity_image(target: str, t: float):
    """p_t of the straight path on the plotting grid (normalised to max 1) and the exact velocity on the arrow grid,
    cached per (target, t)."""
    p = densities.target(target, dtype=torch.float64)
    bounds = _window(target)
    image = plot.density_image(flows.marginal(p, t).log_prob, bounds, n=120)
    g = torch.linspace(bounds[0], bounds[1], _GRID + 2, dtype=torch.float64)[1:-1]
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    return image, pts.numpy(), -flows.marginal_velocity(p, pts, t).numpy()      # -v: where a point moves as t falls


def _outside(x: torch.Tensor, bounds) -> int:
    lo, hi = bounds[0], bounds[1]
    return int(((x < lo) | (x > hi)).any(1).sum())


def _panel(ax, bounds, title: str):
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.set_title(title, fontsize=9)


def flow_view(t: float = 0.5, n_steps: int = 4, path: str = "VE", target: str = "ring of 8", n_points: int = 200,
              seed: int = 0, fig=None, detail: float = 1.0):
    """The straight path's flow against a probability-flow ODE, on a 2D target, everything exact.

    Left: the exact marginal velocity v_t(x) = E[z - x(0) | x_t = x] (``sg.flow.marginal_velocity``) at time ``t``,
    drawn as -v_t (the way a point moves as the sampler takes t down to 0) over p_t (``sg.flow.marginal``), with the
    straight flow's points at t. Middle: ``n_points`` fixed noise
    points carried from t = 1 to 0 by ``n_steps`` Euler steps of that velocity. Right: the same noise through the
    ``path`` ("VE" or "VP") SDE's probability-flow ODE with the exact score and the same number of Euler steps
    (notebook 06's ODE), drawn in the straight path's coordinates x / (alpha_t + std_t) (``flow_trajectories``);
    its points at the same noise fraction u = t are marked (VE's prior N(0, 10^2 I) sits at u = 10/11, short of
    the pure noise, so for t above that its marks stay at the start). Euler's last step on the straight path lands on the
    denoiser E[x(0) | x_{1/N}]: with one step every point lands on the target's mean (v_1(x) = x - E[x(0)]).
    ``fig``: the figure this view drew last time, updated in place (``sg.widgets.live``). ``detail``: the fraction of
    the noise points to carry (every trajectory takes all n_steps steps): below 1 a preview of round(detail n_points)
    trajectories, labelled so in the figure (info then describes those points; the floor is that of their number).

    Returns ``(fig, info)``: ``energy_distance_straight`` and ``energy_distance_ode`` (of the end points to 4000
    target samples, ``sg.metrics.energy_distance``), ``energy_floor`` (its noise floor, (mean, std), for
    ``n_points`` samples), ``outside_straight`` and ``outside_ode`` (end points outside the window), ``nfe`` (velocity
    or score evaluations of each, = n_steps), ``end_straight`` and ``end_ode`` (the samples), ``at_t`` (the straight
    flow's points at t), ``seconds``, ``detail``. Introduced in notebooks/11_flow_matching.ipynb."""
    detail = check_detail(detail)
    validate.choice("path", path, PATHS)
    validate.choice("target", target, densities.TARGETS)
    n_steps = validate.count("n_steps", n_steps)
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t={t!r} is outside [0, 1]: the straight path has the data at t = 0 and the noise at t = 1.")
    start = time.perf_counter()
    drawn = detail_count(detail, validate.count("n_points", n_points, minimum=2))
    traj = flow_trajectories(target, n_steps, path, drawn, seed)
    image, pts, vel = _velocity_image(target, round(t, 6))
    at_straight = _at(traj["straight"], traj["u_straight"], t)
    at_ode = _at(traj["ode"], traj["u_ode"], t)
    gen = torch.Generator().manual_seed(seed)
    ed_straight = energy_distance_to_target(traj["end_straight"].float(), target, gen)
    ed_ode = energy_distance_to_target(traj["end_ode"].float(), target, gen)
    floor = energy_floor(target, drawn)
    bounds = _window(target)
    key = ("flow", target)
    live = reuse(fig, key)
    if live is None:
        fig, axes = plt.subplots(1, 3, figsize=(11.4, 4.1))
        field_im = density_axes(axes[0], image, bounds)
        arrows = axes[0].quiver(pts[:, 0], pts[:, 1], vel[:, 0], vel[:, 1], color="white", angles="xy",
                                scale_units="xy", scale=6.0, width=0.004, alpha=0.85)
        field_dots = axes[0].scatter([], [], s=4, c=_AT_T_COLOR, linewidths=0)
        titles = [_panel(axes[0], bounds, " ")]
        lines, ends, dots = [], [], []
        for ax in axes[1:]:
            density_axes(ax, *_target_image(target, bounds))
            lines.append(ax.add_collection(LineCollection([], colors="#cbd5e1", linewidths=0.5, alpha=0.45)))
            ends.append(ax.scatter([], [], s=5, c=plot.SAMPLE_COLOR, linewidths=0))
            dots.append(ax.scatter([], [], s=4, c=_AT_T_COLOR, linewidths=0))
            titles.append(_panel(ax, bounds, " "))
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.05)
        suptitle, label = fig.suptitle(" ", fontsize=10), preview_label(axes[1])
        live = keep(fig, key, field_im=field_im, arrows=arrows, field_dots=field_dots, lines=lines, ends=ends,
                    dots=dots, titles=titles, suptitle=suptitle, label=label,
                    moving=[field_im, arrows, field_dots, *lines, *ends, *dots, *titles, suptitle, label])
    live["field_im"].set_data(image)
    live["arrows"].set_UVC(vel[:, 0], vel[:, 1])
    live["field_dots"].set_offsets(at_straight.float().numpy())
    live["titles"][0].set_text(f"-v_t(x), exact, over p_t at t = {t:.2f}: where points\n"
                               f"move as t falls (orange: the straight flow's points)")
    out = {}
    for k, (name, label) in enumerate((("straight", "straight path, exact velocity"),
                                       ("ode", f"{path} probability-flow ODE, exact score"))):
        paths = traj[name].float().numpy().transpose(1, 0, 2)         # (n, n_steps + 1, 2)
        live["lines"][k].set_segments(list(paths))
        live["ends"][k].set_offsets(paths[:, -1])
        live["dots"][k].set_offsets((at_straight if name == "straight" else at_ode).float().numpy())
        out[name] = _outside(traj[name][-1], bounds)
        ed = ed_straight if name == "straight" else ed_ode
        gone = f", {out[name]} of {drawn} outside" if out[name] else ""
        live["titles"][k + 1].set_text(f"{label}\n{n_steps} Euler steps: energy distance {ed:.3f}{gone}")
    live["suptitle"].set_text(f"{drawn} noise points, the same for both: noise floor of the energy distance "
                              f"{floor[0]:.3f} +- {floor[1]:.3f}; orange: the points at noise fraction u = {t:.2f}")
    info = {"t": t, "n_steps": n_steps, "path": path, "target": target, "nfe": n_steps,
            "energy_distance_straight": ed_straight, "energy_distance_ode": ed_ode, "energy_floor": floor,
            "outside_straight": out["straight"], "outside_ode": out["ode"], "end_straight": traj["end_straight"],
            "end_ode": traj["end_ode"], "at_t": at_straight, "seconds": time.perf_counter() - start, "detail": detail}
    show_preview(live["label"], drawn, n_points, "noise points")
    return fig, info


@functools.lru_cache(maxsize=16)
def _target_image(target: str, bounds):
    """The target's density on the explorer's (wider) window, cached: (image, bounds)."""
    p = named_target(target)
    return plot.density_image(p.log_prob, bounds, n=120), bounds


def flow_explorer(target: str = "ring of 8", n_points: int = 200) -> W.interactive:
    """Sliders for ``flow_view``: the time t of the velocity field (and of the marked points), the number of Euler
    steps (1 to 20) of both samplers, and the SDE whose probability-flow ODE is shown beside the straight path
    (VE or VP). Introduced in notebooks/11_flow_matching.ipynb."""
    return interactive_view(
        flow_view,
        t=W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", continuous_update=False),
        n_steps=W.IntSlider(value=4, min=1, max=20, description="steps", continuous_update=False),
        path=W.ToggleButtons(options=list(PATHS), value="VE", description="ODE"),
        target=W.fixed(target),
        n_points=W.fixed(n_points),
        seed=W.fixed(0),
    )
