"""The science of the course, checked on 2D mixtures whose score is exact at every noise level.

``densities`` (targets with exact scores), ``sde`` (VE/VP SDEs, eq. (5)-(6)), ``losses`` (score matching, DSM,
eq. (2)-(4)), ``schedules`` (noise ladders), ``mcmc`` (Langevin, eq. (1)), ``solvers`` (reverse SDE and
ODE, eq. (7)-(8)), ``samplers`` (every sampler in one namespace, with the registry), ``metrics`` (score
errors, energy distance), ``guidance`` (guided scores, inpainting), ``recipes`` (preconditioning, noise
levels, weightings), ``flow`` (flow matching on the straight path, notebook 11), ``nets`` (small score
networks), ``train`` (the one training loop, EMA), ``plot``.
"""
