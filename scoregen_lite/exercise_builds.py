"""Exercise checks for methods students build whole: notebooks 01-03: the whole unadjusted Langevin sampler (01), the sliced score matching loss (02), the DSM loss and one optimiser step (03).
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``."""
from __future__ import annotations

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = []

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {}
