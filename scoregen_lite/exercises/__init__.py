"""Exercise checks, ``sg.exercises.check_<name>(student_function)``, one module per notebook with exercises:
``nb01_scores_and_langevin`` ... ``nb11_flow_matching`` (named as ``notebooks/NN_*.ipynb``). Each check runs
the student's function on known cases, prints a pass line or raises ``ExerciseFailed`` naming the mistake, and
declares beside it, with ``@points(n)``, what it is worth when the course is graded with nbgrader;
``POINTS`` merges them for ``scoregen_lite.courseware.grading``. ``checking`` holds what the checks share.

In a notebook an exercise is a function the student writes, with the teacher's solution between two marker
lines::

    def gmm_score(x, weights, means, covs):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

followed by a cell ``sg.exercises.check_gmm_score(gmm_score)``. Student copies and nbgrader sources are written by
``python -m scoregen_lite.courseware.copies``.
"""
from __future__ import annotations

from . import (
    nb01_scores_and_langevin,
    nb02_score_matching,
    nb03_denoising_score_matching,
    nb04_ncsn,
    nb05_annealed_langevin,
    nb06_sdes,
    nb07_mnist_score_sde,
    nb08_fast_sampling,
    nb09_controllable_generation,
    nb10_training_recipes,
    nb11_flow_matching,
)
from .checking import ExerciseFailed
from .nb01_scores_and_langevin import *  # noqa: F401,F403
from .nb02_score_matching import *  # noqa: F401,F403
from .nb03_denoising_score_matching import *  # noqa: F401,F403
from .nb04_ncsn import *  # noqa: F401,F403
from .nb05_annealed_langevin import *  # noqa: F401,F403
from .nb06_sdes import *  # noqa: F401,F403
from .nb07_mnist_score_sde import *  # noqa: F401,F403
from .nb08_fast_sampling import *  # noqa: F401,F403
from .nb09_controllable_generation import *  # noqa: F401,F403
from .nb10_training_recipes import *  # noqa: F401,F403
from .nb11_flow_matching import *  # noqa: F401,F403

#: the module of each notebook with exercises, in the course's order
NOTEBOOKS = (nb01_scores_and_langevin, nb02_score_matching, nb03_denoising_score_matching, nb04_ncsn,
             nb05_annealed_langevin, nb06_sdes, nb07_mnist_score_sde, nb08_fast_sampling,
             nb09_controllable_generation, nb10_training_recipes, nb11_flow_matching)


def _merged_points() -> dict[str, int]:
    merged: dict[str, int] = {}
    for module in NOTEBOOKS:
        twice = set(merged) & set(module.POINTS)
        if twice:
            raise RuntimeError(f"{module.__name__} declares points for {sorted(twice)}, already declared by another "
                               f"notebook's module: each check lives in one module.")
        merged.update(module.POINTS)
    return merged


#: nbgrader points of every check, declared beside each with ``@points`` and merged from the notebooks' modules
POINTS: dict[str, int] = _merged_points()

__all__ = ["ExerciseFailed", "POINTS"] + [n for m in NOTEBOOKS for n in m.__all__]
