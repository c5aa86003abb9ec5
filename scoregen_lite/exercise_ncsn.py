"""Exercise checks for methods students build whole: notebooks 04-05: the NCSN loss weighted over the ladder (04), annealed Langevin dynamics, the double loop (05).
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``."""
from __future__ import annotations

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = []

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {}
