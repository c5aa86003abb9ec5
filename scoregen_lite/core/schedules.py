"""Noise schedules: the geometric sigma ladder of NCSN and the rules of thumb of
Song & Ermon (2020), "Improved techniques for training score-based generative
models", for choosing it.

The VE SDE of notebook 06 uses the same parameterisation in continuous time,
sigma(t) = sigma_min (sigma_max / sigma_min)^t, so ``geometric_sigmas(smax,
smin, L)`` is sigma(t) sampled at L evenly spaced times from t = 1 down to 0.
Introduced in notebooks/04_ncsn.ipynb. ``karras_sigmas``, the sampling schedule of
Karras et al. (2022, EDM), is introduced in notebooks/08_fast_sampling.ipynb.
"""
from __future__ import annotations

import math

import torch

from .. import validate

__all__ = [
    "geometric_sigmas",
    "linear_sigmas",
    "karras_sigmas",
    "sigma_max_from_data",
    "ratio_for_dimension",
    "n_levels_for",
    "step_size_for",
    "step_sizes",
    "update_snr",
    "measured_update_snr",
]


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int, dtype=torch.float32) -> torch.Tensor:
    """sigma_1 > sigma_2 > ... > sigma_L, a geometric sequence with constant ratio
    gamma = sigma_{i-1} / sigma_i = (sigma_max / sigma_min)^(1 / (L - 1)) (Song & Ermon 2019, section 4.1;
    the ratio rule: Song & Ermon 2020, technique 2).

    Raises ValueError unless sigma_max > sigma_min > 0 and n_levels >= 2.
    """
    sigma_min, sigma_max = validate.ordered("sigma_min", sigma_min, "sigma_max", sigma_max, " (a descending ladder)")
    n_levels = validate.count("n_levels", n_levels, minimum=2)
    exps = torch.linspace(0.0, 1.0, n_levels, dtype=torch.float64)
    return _positive_in(sigma_max * (sigma_min / sigma_max) ** exps, dtype, sigma_min)


def _positive_in(sigmas: torch.Tensor, dtype, sigma_min: float) -> torch.Tensor:
    """Cast a float64 ladder to ``dtype``, refusing levels that underflow or overflow there."""
    out = sigmas.to(dtype)
    if not torch.isfinite(out).all() or (out < torch.finfo(dtype).tiny).any():   # zero or subnormal there
        raise ValueError(f"sigma_min={sigma_min!r} (or sigma_max) is outside the range of {dtype}; "
                         f"use dtype=torch.float64 or a less extreme ladder.")
    return out


def linear_sigmas(sigma_max: float, sigma_min: float, n_levels: int, dtype=torch.float32) -> torch.Tensor:
    """An evenly spaced (arithmetic) ladder, for comparison with the geometric one in the widgets."""
    geometric_sigmas(sigma_max, sigma_min, n_levels, dtype=torch.float64)  # same validation
    return _positive_in(torch.linspace(sigma_max, sigma_min, n_levels, dtype=torch.float64), dtype, sigma_min)


def karras_sigmas(sigma_max: float, sigma_min: float, n_steps: int, rho: float = 7.0,
                  dtype=torch.float32) -> torch.Tensor:
    """The sampling schedule of Karras et al. (2022, "Elucidating the design space of diffusion-based
    generative models", EDM, eq. (5)): N noise levels, descending, evenly spaced in sigma^(1/rho),

        sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,   i = 0..N-1,

    so sigma_0 = sigma_max and sigma_{N-1} = sigma_min. The samplers of ``sg.samplers`` append
    sigma_N = 0. rho = 1 is uniform in sigma (``linear_sigmas``); as rho grows the schedule
    approaches the geometric ladder of NCSN (``geometric_sigmas``): sigma^(1/rho) = exp(log(sigma)/rho)
    ~ 1 + log(sigma)/rho is then evenly spaced in log sigma. EDM's choice rho = 7 spends more steps
    at small sigma, where the ODE's curvature and the network's error matter most.

    Raises ValueError unless sigma_max > sigma_min > 0, n_steps >= 2 and rho > 0.
    Introduced in notebooks/08_fast_sampling.ipynb.
    """
    sigma_min, sigma_max = validate.ordered("sigma_min", sigma_min, "sigma_max", sigma_max, " (a descending schedule)")
    n_steps = validate.count("n_steps", n_steps, minimum=2)
    rho = validate.positive("rho", rho)
    frac = torch.arange(n_steps, dtype=torch.float64) / (n_steps - 1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + frac * (lo - hi)) ** rho
    sigmas[0], sigmas[-1] = sigma_max, sigma_min   # exact ends, whatever the rounding of the powers
    return _positive_in(sigmas, dtype, sigma_min)


def sigma_max_from_data(x: torch.Tensor, max_points: int = 5000, generator: torch.Generator | None = None) -> float:
    """Technique 1 of Song & Ermon (2020): sigma_1 as large as the maximum Euclidean distance
    between any two training points, so that the largest noise level lets Langevin move
    between any two modes. Computed on at most ``max_points`` points (a random subset)."""
    x = validate.batch("x", x)
    flat = x.reshape(len(x), -1).double()
    if len(flat) > max_points:
        flat = flat[torch.randperm(len(flat), generator=generator)[:max_points].to(flat.device)]
    return torch.cdist(flat, flat).max().item()


def _std_normal_cdf(v: float) -> float:
    return 0.5 * (1 + math.erf(v / math.sqrt(2)))


def ratio_for_dimension(dim: int, target: float = 0.5) -> float:
    """Technique 2 of Song & Ermon (2020): choose gamma = sigma_{i-1}/sigma_i so that
    Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma) ~ ``target`` (0.5),
    i.e. the perturbed distributions of neighbouring levels overlap enough.
    Solved by bisection on gamma in (1, 10]."""
    dim = validate.count("dim", dim)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target={target!r} is invalid: expected a probability in (0, 1), e.g. 0.5.")
    root = math.sqrt(2 * dim)

    def overlap(g):
        return _std_normal_cdf(root * (g - 1) + 3 * g) - _std_normal_cdf(root * (g - 1) - 3 * g)

    lo, hi = 1.0, 10.0  # overlap decreases from ~1 at gamma = 1
    if overlap(hi) > target:
        return hi
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if overlap(mid) > target else (lo, mid)
    return 0.5 * (lo + hi)


def n_levels_for(sigma_max: float, sigma_min: float, ratio: float) -> int:
    """The number of levels L of a geometric ladder from sigma_max to sigma_min with ratio <= ``ratio``."""
    sigma_min, sigma_max = validate.ordered("sigma_min", sigma_min, "sigma_max", sigma_max)
    ratio = validate.positive("ratio", ratio)
    if ratio <= 1:
        raise ValueError(f"ratio={ratio!r} must be > 1.")
    return max(2, math.ceil(math.log(sigma_max / sigma_min) / math.log(ratio)) + 1)


def step_size_for(n_steps_each: int, sigma_min: float, ratio: float) -> float:
    """Technique 4 of Song & Ermon (2020): with eps_i = eps sigma_i^2 / sigma_L^2 and T steps
    per level, choose eps so that the variance at the end of each level is as close as possible
    to the one the next level expects, i.e. the expression

        (1 - eps/s^2)^(2T) (gamma^2 - 2 eps / (s^2 - s^2 (1 - eps/s^2)^2)) + 2 eps / (s^2 - s^2 (1 - eps/s^2)^2),

    with s = sigma_L, is maximally close to 1 (it tends to gamma^2 as eps -> 0 and exceeds 1 for
    every eps, so the rule is a minimisation, done here on a fine log grid then refined).

    The rule is stated for the NCSN update x + eps s + sqrt(2 eps) z; this function returns the
    course's eq. (1) step, ``2 * eps``, ready for ``annealed_langevin``.
    """
    n_steps_each = validate.count("n_steps_each", n_steps_each)
    sigma_min = validate.positive("sigma_min", sigma_min)
    ratio = validate.positive("ratio", ratio)
    if ratio <= 1:
        raise ValueError(f"ratio={ratio!r} must be > 1.")
    s2 = sigma_min**2
    u = torch.logspace(-10, -1e-6, 4001, dtype=torch.float64) * s2   # eps in (0, s^2)
    a = (1 - u / s2) ** 2
    b = 2 * u / (s2 * (1 - a))
    gap = (a**n_steps_each * (ratio**2 - b) + b - 1).abs()
    eps = u[int(gap.argmin())].item()
    return 2 * eps  # NCSN eps -> eq. (1) step


def step_sizes(sigmas: torch.Tensor, step_size: float) -> torch.Tensor:
    """eps_i = step_size * sigma_i^2 / sigma_L^2 for each level (Song & Ermon 2019, algorithm 1, where it is alpha_i)."""
    step_size = validate.positive("step_size", step_size)
    sigmas = validate.tensor("sigmas", torch.as_tensor(sigmas))
    return step_size * sigmas**2 / sigmas[-1] ** 2


def update_snr(sigmas: torch.Tensor, step_size: float, dim: int = 2) -> torch.Tensor:
    """Expected signal-to-noise ratio of one annealed Langevin update at each level,
    ||(eps_i/2) s|| / ||sqrt(eps_i) z|| with ||s|| ~ sqrt(D)/sigma_i (the score of the
    perturbation) and ||z|| ~ sqrt(D): sqrt(eps_i) / (2 sigma_i) = sqrt(step_size) / (2 sigma_L).

    It is the same at every level: the point of eps_i proportional to sigma_i^2. This is the nominal ratio:
    ||s|| ~ sqrt(D)/sigma_i holds only while sigma_i is larger than the data's own spread; below it the
    measured ratio falls (``measured_update_snr``, notebook 05).
    """
    steps = step_sizes(sigmas, step_size)
    sigmas = torch.as_tensor(sigmas, dtype=steps.dtype)
    return torch.sqrt(steps) / (2 * sigmas)


def measured_update_snr(density, sigmas, step_size: float, n_samples: int = 20_000,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The update's signal-to-noise ratio at each level, measured with the exact score instead of assumed:

        E || (eps_i / 2) grad log q_sigma_i(x) ||  /  E || sqrt(eps_i) z ||,   x ~ q_sigma_i,  z ~ N(0, I),

    with eps_i = step_size sigma_i^2 / sigma_L^2 (annealed Langevin, eq. (1) at level i) and q_sigma the
    perturbed density p * N(0, sigma^2 I) of ``density`` (a ``GaussianMixture``: ``density.perturb(sigma)``
    gives its exact score and samples at every level). ``update_snr`` is the same ratio with the assumption
    ||s|| ~ sqrt(D) / sigma_i, which holds while sigma_i dominates the data's own spread; below the spread of
    the data's modes the exact score is smaller and the measured ratio falls below the formula's.
    E||z|| is taken exactly (chi distribution with D degrees of freedom), E||s|| over ``n_samples`` points.

    Returns a float64 tensor (L,). Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    if not hasattr(density, "perturb"):
        raise TypeError(f"density={density!r} must be a GaussianMixture (with .perturb(sigma)), e.g. "
                        f"sg.densities.two_modes().")
    n_samples = validate.count("n_samples", n_samples, minimum=2)
    steps = step_sizes(torch.as_tensor(sigmas, dtype=torch.float64), step_size)   # validates step_size
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sig) < 1 or not torch.isfinite(sig).all() or (sig <= 0).any():
        raise ValueError(f"sigmas={validate.show(sig)} is invalid: expected positive noise levels.")
    dim = density.dim
    mean_norm_z = math.sqrt(2) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))   # E||z||, z ~ N(0, I_D)
    p = density.to(dtype=torch.float64)
    out = []
    for sigma, eps_i in zip(sig.tolist(), steps.tolist()):
        q = p.perturb(sigma)
        x = q.sample(n_samples, generator=generator)
        signal = 0.5 * eps_i * q.score(x).norm(dim=1).mean().item()      # E||(eps_i/2) s(x)||
        out.append(signal / (math.sqrt(eps_i) * mean_norm_z))             # / E||sqrt(eps_i) z||
    return torch.tensor(out, dtype=torch.float64)
