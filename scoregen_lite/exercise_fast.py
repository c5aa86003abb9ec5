"""Exercise checks for methods students build whole: notebook 08: a whole EDM Heun sampler with churn.
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``."""
from __future__ import annotations

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = []

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {}
