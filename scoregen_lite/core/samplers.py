"""Every sampler of the course in one namespace, ``sg.samplers``: the two families live in their
own modules and are re-exported here, so ``sg.samplers.<name>`` works for all of them.

- ``sg.mcmc``: Langevin dynamics (eq. (1)), MALA and annealed Langevin (notebooks 01, 05).
- ``sg.solvers``: reverse-time SDE samplers (eq. (7)), the probability-flow ODE and its
  likelihood (notebooks 06, 07), and the samplers in the noise level sigma, EDM's Heun/Euler and
  DPM-Solver++(2M) (notebook 08).
"""
from __future__ import annotations

from .fast import *  # noqa: F401,F403
from .fast import __all__ as _fast_all
from .mcmc import *  # noqa: F401,F403
from .mcmc import __all__ as _mcmc_all
from .registry import *  # noqa: F401,F403
from .registry import __all__ as _registry_all
from .solvers import *  # noqa: F401,F403
from .solvers import __all__ as _solvers_all

__all__ = [*_mcmc_all, *_solvers_all, *_fast_all, *_registry_all]
