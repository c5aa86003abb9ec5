"""scoregen-lite: an interactive course on score-based generative modelling.

Notebooks write ``import scoregen_lite as sg`` and reach everything from there. The folders show the course:

- ``runtime``, ``artifacts``, ``validate``: the ground floor (device, precision, quick mode, seeds; files,
  sha256, the cache; argument checks). Nothing below imports from above.
- ``core``: the science, checked on 2D mixtures with exact scores: densities, SDEs, losses, samplers and
  solvers, noise schedules, score metrics, guidance, training recipes, the training loop, plots.
- ``images``: MNIST: data, the U-Net, image training, evaluation, classifiers, checkpoints, the command line.
- ``widgets``: the interactive explorers (a plain function returns (figure, info); sliders drive it).
- ``exercises``: the checks of the students' exercises, with their nbgrader points.
- ``courseware``: teacher and website tools (site, results tables, grading, student copies, notebook
  cleaning, timings); students never need to import it.

``sg.<module>`` names each module the notebooks use (``sg.densities``, ``sg.samplers``, ``sg.mnist``, ...),
whatever its folder. Equation numbers refer to the course notes (``eq. (1)`` ... ``eq. (8)``).
"""
from __future__ import annotations

import importlib

from . import artifacts  # noqa: F401
from .core import (  # noqa: F401
    densities,
    fast,
    flow,
    guidance,
    losses,
    mcmc,
    metrics,
    mixture,
    nets,
    plot,
    recipes,
    registry,
    samplers,
    schedules,
    sde,
    solvers,
    train,
)
from .runtime import QUICK, __version__, device, device_name, precision, quick, seed_everything  # noqa: F401

# Loaded on first use, so the package imports on a headless GPU box that has torch but no Jupyter stack
# (ipywidgets), and ``python -m`` of a module does not import it twice.
_LAZY = {
    "exercises": "scoregen_lite.exercises",
    "widgets": "scoregen_lite.widgets",
    "data": "scoregen_lite.images.data",
    "unet": "scoregen_lite.images.unet",
    "image_training": "scoregen_lite.images.training",
    "checkpoints": "scoregen_lite.images.checkpoints",
    "evaluation": "scoregen_lite.images.evaluation",
    "image_guidance": "scoregen_lite.images.guidance",
    "mnist": "scoregen_lite.images.mnist",
    "results": "scoregen_lite.courseware.results",
    "site": "scoregen_lite.courseware.site",
    "grading": "scoregen_lite.courseware.grading",
    "notation": "scoregen_lite.courseware.notation",
}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    if name in ("images", "courseware"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'scoregen_lite' has no attribute {name!r}")


def setup_notebook(seed: int = 0):
    """The one setup call at the top of every notebook: plot style, seeds, and a status line.

    Prints the device and whether quick mode is on, so a stored notebook tells
    which mode produced its outputs.
    """
    import torch

    plot.use_style()
    gen = seed_everything(seed)
    mode = "quick mode (SCOREGEN_QUICK=1)" if QUICK else "full mode"
    print(f"scoregen-lite {__version__} | torch {torch.__version__} | device: {device()} | {mode}")
    return gen


__all__ = ["QUICK", "quick", "device", "precision", "device_name", "seed_everything", "setup_notebook",
           "densities", "samplers", "plot", "widgets", "exercises", "nets", "losses", "train", "metrics",
           "schedules", "sde", "mcmc", "solvers", "guidance", "recipes", "data", "mnist", "results", "site",
           "grading"]
