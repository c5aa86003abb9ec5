"""The interactive explorers, ``sg.widgets.<name>_explorer``.

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
and cached.

- ``scores``: Langevin/MALA (notebook 01) and denoising score matching (03);
- ``ladders``: the noise schedule and annealed Langevin (05), reverse-time SDE samplers (06);
- ``common``: what the 2D explorers share (uniform start, energy distance and its floor, density images);
- ``images``: the MNIST explorers (08, 09);
- ``flow``: the straight path's flow against the probability-flow ODE (11);
- ``live``: the live-update machinery.

Every explorer and view is reachable as ``sg.widgets.<name>``.
"""
from . import common, flow, images, ladders, live, scores  # noqa: F401
from .common import energy_floor, target_image, uniform_start
from .flow import flow_explorer, flow_view
from .images import (
    fast_sampling_explorer,
    fast_sampling_view,
    guidance_explorer,
    guidance_view,
    inpainting_explorer,
    inpainting_view,
)
from .ladders import annealed_explorer, annealed_view, ladder, schedule_explorer, schedule_view, sde_explorer, sde_view
from .live import interactive_view
from .scores import dsm_explorer, dsm_view, langevin_explorer, langevin_view

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
    "flow_view",
    "flow_explorer",
]
