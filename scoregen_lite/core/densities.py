"""Densities with exact scores, and sample-only 2D datasets.

Introduced in notebooks/01_scores_and_langevin.ipynb and used by every later
notebook. The score of a density p is grad_x log p(x) (Hyvarinen 2005,
"Estimation of non-normalized statistical models by score matching").
Gaussians and Gaussian mixtures have it in closed form, and so does the
density of x + sigma * z for z ~ N(0, I), which is again a mixture with
covariances cov + sigma^2 I: this is what makes them the course's test bed for
every score-matching loss and sampler.
"""
from __future__ import annotations

import math

import torch

from .. import validate
from .mixture import Gaussian, GaussianMixture, SDEMarginal  # noqa: F401 (sg.densities.<name>)

__all__ = [
    "two_modes",
    "ring",
    "anisotropic_gaussian",
    "smiley",
    "grid_mixture",
    "TARGETS",
    "target",
    "sample_moons",
    "sample_swiss_roll",
    "sample_checkerboard",
    "DATASETS",
]

_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# Ready-made 2D targets
# ---------------------------------------------------------------------------

def two_modes(dtype=torch.float32) -> GaussianMixture:
    """The NCSN paper's toy: 0.2 N((-5, -5), I) + 0.8 N((5, 5), I).

    Plain Langevin dynamics cannot recover its weights; annealed Langevin can
    (notebooks 01 and 05).
    """
    means = torch.tensor([[-5.0, -5.0], [5.0, 5.0]], dtype=dtype)
    return GaussianMixture(torch.tensor([0.2, 0.8], dtype=dtype), means, torch.ones(2, dtype=dtype))


def ring(n_modes: int = 8, radius: float = 4.0, std: float = 0.4, dtype=torch.float32) -> GaussianMixture:
    """``n_modes`` equal Gaussians evenly spaced on a circle."""
    n_modes = validate.count("n_modes", n_modes, minimum=2)
    radius = validate.positive("radius", radius)
    std = validate.positive("std", std)
    angle = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    weights = torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64)
    return GaussianMixture(weights.to(dtype), means.to(dtype), torch.full((n_modes,), std**2, dtype=dtype))


def anisotropic_gaussian(dtype=torch.float32) -> Gaussian:
    """A tilted, elongated Gaussian: its score field is not radial."""
    return Gaussian(torch.tensor([0.5, -0.5], dtype=dtype), torch.tensor([[3.0, 1.5], [1.5, 1.2]], dtype=dtype))


def smiley(dtype=torch.float32) -> GaussianMixture:
    """Two eyes and a smiling mouth: nine components of different shapes and weights."""
    angles = torch.linspace(math.pi * 1.15, math.pi * 1.85, 7, dtype=torch.float64)
    mouth = 3.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) + torch.tensor([0.0, 0.5])
    eyes = torch.tensor([[-1.6, 2.0], [1.6, 2.0]], dtype=torch.float64)
    means = torch.cat([eyes, mouth])
    eye_cov = torch.tensor([[0.15, 0.0], [0.0, 0.45]], dtype=torch.float64)
    mouth_cov = 0.12 * torch.eye(2, dtype=torch.float64)
    covs = torch.stack([eye_cov, eye_cov] + [mouth_cov] * 7)
    weights = torch.tensor([0.15, 0.15] + [0.1] * 7, dtype=torch.float64)
    return GaussianMixture(weights.to(dtype), means.to(dtype), covs.to(dtype))


def grid_mixture(side: int = 3, spacing: float = 4.0, std: float = 0.5, dtype=torch.float32) -> GaussianMixture:
    """``side`` x ``side`` equal Gaussians on a square grid centred at the origin."""
    side = validate.count("side", side, minimum=1)
    spacing = validate.positive("spacing", spacing)
    std = validate.positive("std", std)
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    means = torch.cartesian_prod(ticks, ticks)
    k = side * side
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=dtype), means.to(dtype), torch.full((k,), std**2, dtype=dtype))


#: Name -> factory of the ready-made 2D targets (used by the widgets' drop-downs).
TARGETS = {
    "two modes (0.2/0.8)": two_modes,
    "ring of 8": ring,
    "anisotropic Gaussian": anisotropic_gaussian,
    "smiley": smiley,
    "3x3 grid": grid_mixture,
}


def target(name: str, dtype=torch.float32) -> GaussianMixture:
    """The ready-made 2D target called ``name`` (a key of ``TARGETS``)."""
    validate.choice("name", name, TARGETS)
    return TARGETS[name](dtype=dtype)


# ---------------------------------------------------------------------------
# Sample-only 2D datasets (no closed-form score): for the learned-score parts
# ---------------------------------------------------------------------------

def _noise(n, noise, generator, dtype):
    noise = validate.positive("noise", noise, allow_zero=True)
    return noise * torch.randn(n, 2, generator=generator, dtype=dtype)


def sample_moons(n: int, noise: float = 0.08, generator=None, dtype=torch.float32) -> torch.Tensor:
    """Two interleaving half circles, scaled to about [-2, 2]^2; shape (n, 2)."""
    n = validate.count("n", n)
    upper = torch.rand(n, generator=generator) < 0.5
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 2.0
    return pts.to(dtype) + _noise(n, noise, generator, dtype)


def sample_swiss_roll(n: int, noise: float = 0.1, generator=None, dtype=torch.float32) -> torch.Tensor:
    """A 2D swiss roll (spiral), scaled to about [-3, 3]^2; shape (n, 2)."""
    n = validate.count("n", n)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 5.0
    return pts.to(dtype) + _noise(n, noise, generator, dtype)


def sample_checkerboard(n: int, squares: int = 4, generator=None, dtype=torch.float32) -> torch.Tensor:
    """Uniform on the black squares of a ``squares`` x ``squares`` board over [-2, 2]^2; shape (n, 2)."""
    n = validate.count("n", n)
    squares = validate.count("squares", squares, minimum=2)
    size = 4.0 / squares
    # pick a black square uniformly, then a uniform point inside it
    cells = torch.cartesian_prod(torch.arange(squares), torch.arange(squares))
    black = cells[(cells.sum(1) % 2) == 0]
    idx = torch.randint(len(black), (n,), generator=generator)
    corner = black[idx].to(torch.float64) * size - 2.0
    pts = corner + size * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return pts.to(dtype)


#: Name -> sampler of the sample-only 2D datasets.
DATASETS = {
    "moons": sample_moons,
    "swiss roll": sample_swiss_roll,
    "checkerboard": sample_checkerboard,
}
