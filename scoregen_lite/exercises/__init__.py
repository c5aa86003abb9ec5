"""Exercise checks, ``sg.exercises.check_<name>(student_function)``: each runs the student's function on
known cases, prints a pass line or raises ``ExerciseFailed`` naming the mistake, and is worth ``POINTS[name]``
when the course is graded with nbgrader (``scoregen_lite.courseware.grading``).

- ``basics``: one formula or one step (notebooks 01-10);
- ``methods``: a sampler, a loss or a training step of notebooks 06, 07 and 09;
- ``builds``: the methods students build whole in notebooks 01-03;
- ``ncsn``: notebooks 04-05; ``fast``: notebook 08; ``recipes``: notebook 10;
- ``checking``: ``ExerciseFailed`` and the comparison every check uses.
"""
from __future__ import annotations

from . import basics, builds, fast, methods, ncsn, recipes
from .basics import *  # noqa: F401,F403
from .builds import *  # noqa: F401,F403
from .checking import ExerciseFailed
from .fast import *  # noqa: F401,F403
from .methods import *  # noqa: F401,F403
from .ncsn import *  # noqa: F401,F403
from .recipes import *  # noqa: F401,F403

#: nbgrader points of every check, merged from the modules that define them
POINTS: dict[str, int] = {**basics.POINTS, **builds.POINTS, **ncsn.POINTS, **fast.POINTS, **recipes.POINTS}

__all__ = ["ExerciseFailed", "POINTS"] + [n for m in (basics, methods, builds, ncsn, fast, recipes)
                                          for n in m.__all__ if n != "ExerciseFailed"]
