"""sg.densities against analytic truths: autograd, finite differences, Monte-Carlo convolution."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.core.densities import Gaussian, GaussianMixture


def random_mixture(dim, k=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, dim, dim, generator=g, dtype=dtype)
    covs = a @ a.transpose(1, 2) / dim + 0.3 * torch.eye(dim, dtype=dtype)
    w = torch.rand(k, generator=g, dtype=dtype) + 0.2
    return GaussianMixture(w / w.sum(), 2 * torch.randn(k, dim, generator=g, dtype=dtype), covs)


ALL_TARGETS = [f(dtype=torch.float64) for f in sg.densities.TARGETS.values()]


@pytest.mark.parametrize("p", ALL_TARGETS + [random_mixture(1), random_mixture(5), random_mixture(16, k=4)],
                         ids=lambda p: repr(p))
def test_score_matches_autograd(p, gen):
    x = torch.cat([p.sample(200, generator=gen), 6 * torch.randn(50, p.dim, generator=gen, dtype=torch.float64)])
    xr = x.clone().requires_grad_(True)
    auto = torch.autograd.grad(p.log_prob(xr).sum(), xr)[0]
    assert torch.allclose(p.score(x), auto, atol=1e-9, rtol=1e-7)


def test_score_matches_finite_differences(gen):
    p = random_mixture(3, seed=4)
    x = p.sample(20, generator=gen)
    h = 1e-5
    fd = torch.stack([(p.log_prob(x + h * e) - p.log_prob(x - h * e)) / (2 * h) for e in torch.eye(3, dtype=x.dtype)], 1)
    assert torch.allclose(p.score(x), fd, atol=1e-6)


def test_log_prob_normalised_in_2d():
    p = sg.densities.smiley(dtype=torch.float64)
    _, _, pts = sg.plot.grid((-8, 8, -8, 8), 400, dtype=torch.float64)
    cell = (16 / 399) ** 2
    assert abs(p.log_prob(pts).exp().sum().item() * cell - 1) < 2e-3


def test_gaussian_matches_closed_form(gen):
    cov = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    p = Gaussian(mean, cov)
    x = torch.randn(10, 2, generator=gen, dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(mean, cov)
    assert torch.allclose(p.log_prob(x), ref.log_prob(x))
    assert torch.allclose(p.score(x), -torch.linalg.solve(cov, (x - mean).T).T)


def test_sample_moments(gen):
    p = sg.densities.two_modes(dtype=torch.float64)
    x = p.sample(200_000, generator=gen)
    mean = (p.weights[:, None] * p.means).sum(0)
    second = (p.weights[:, None, None] * (p.covs + p.means[:, :, None] * p.means[:, None, :])).sum(0)
    cov = second - torch.outer(mean, mean)
    assert torch.allclose(x.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(x.T), cov, rtol=0.02, atol=0.05)
    assert abs(p.mode_weights(x)[0].item() - 0.2) < 0.005
    # correlated covariances (a transposed Cholesky factor would give L^T L instead of L L^T)
    separated = sg.densities.GaussianMixture(torch.tensor([0.3, 0.7], dtype=torch.float64),
                                             torch.tensor([[-8.0, 0.0], [8.0, 1.0]], dtype=torch.float64),
                                             torch.tensor([[[2.0, 1.2], [1.2, 1.0]], [[1.0, -0.6], [-0.6, 0.8]]],
                                                          dtype=torch.float64))
    for q in (sg.densities.anisotropic_gaussian(dtype=torch.float64), separated):
        z = sg.metrics.moment_z(q.sample(50_000, generator=gen), q)
        assert z["max"] < 4, (q, z)


def test_perturb_matches_monte_carlo_convolution(gen):
    """q_sigma(y) = E_{x~p} N(y; x, sigma^2 I), estimated with 400k samples of p."""
    p = sg.densities.ring(dtype=torch.float64)
    sigma = 0.7
    q = p.perturb(sigma)
    xs = p.sample(400_000, generator=gen)
    ys = torch.tensor([[4.0, 0.0], [0.0, 0.0], [2.0, 2.0], [-3.0, 1.0]], dtype=torch.float64)
    d2 = ((ys[:, None, :] - xs[None]) ** 2).sum(-1)
    mc = torch.exp(-d2 / (2 * sigma**2)).mean(1) / (2 * math.pi * sigma**2)
    assert torch.allclose(q.log_prob(ys).exp(), mc, rtol=0.02, atol=1e-5)
    assert torch.allclose(q.covs, p.covs + sigma**2 * torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_follow_input(dtype, gen):
    p = sg.densities.ring(dtype=torch.float32)
    x = torch.randn(7, 2, generator=gen).to(dtype)
    assert p.log_prob(x).dtype == dtype and p.log_prob(x).shape == (7,)
    assert p.score(x).dtype == dtype and p.score(x).shape == (7, 2)
    assert sg.densities.ring(dtype=dtype).sample(5, generator=gen).dtype == dtype


def test_float32_score_finite_far_away():
    p = sg.densities.two_modes()
    x = torch.tensor([[1e3, -1e3], [0.0, 0.0]])
    assert torch.isfinite(p.score(x)).all() and torch.isfinite(p.log_prob(x)).all()


def test_datasets_shapes_and_ranges(gen):
    for name, f in sg.densities.DATASETS.items():
        x = f(1000, generator=gen)
        assert x.shape == (1000, 2) and torch.isfinite(x).all(), name
        assert x.abs().max() < 5, name


def test_sampling_is_seeded():
    p = sg.densities.smiley()
    a = p.sample(10, generator=torch.Generator().manual_seed(3))
    b = p.sample(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ----------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[0.3, 0.3], means=[[0.0, 0], [1, 1]], covs=[1.0, 1.0]), r"weights=.*sum to 0\.6"),
        (dict(weights=[1.2, -0.2], means=[[0.0, 0], [1, 1]], covs=[1.0, 1.0]), r"weights=.*non-negative"),
        (dict(weights=[1.0], means=[[0.0, 0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), r"covs\[0\]=.*not positive-definite"),
        (dict(weights=[1.0], means=[[0.0, 0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), r"covs must be symmetric"),
        (dict(weights=[0.5, 0.5], means=[[0.0, 0]], covs=[1.0]), r"weights has shape \(2,\); expected \(1,\)"),
        (dict(weights=[1.0], means=[0.0, 0], covs=[1.0]), r"means has shape \(2,\); expected \(K, D\)"),
        (dict(weights=[1.0], means=[[0.0, 0]], covs=[[1.0, 1.0, 1.0]]), r"covs has shape"),
        (dict(weights=[1.0], means=[[float("nan"), 0]], covs=[1.0]), r"means contains 1 NaN"),
    ],
)
def test_invalid_mixture_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_invalid_x_raises():
    p = sg.densities.two_modes()
    with pytest.raises(ValueError, match=r"x has shape \(3,\); expected \(n, 2\)"):
        p.score(torch.zeros(3))
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\); expected \(n, 2\)"):
        p.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"x contains 1 NaN/inf"):
        p.score(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor"):
        p.score([[0.0, 0.0]])


@pytest.mark.parametrize("sigma", [0, -1.0, float("inf"), float("nan")])
def test_invalid_sigma_raises(sigma):
    with pytest.raises(ValueError, match=r"sigma=.*expected a finite number > 0"):
        sg.densities.two_modes().perturb(sigma)


def test_invalid_target_name():
    with pytest.raises(ValueError, match=r"name='moon' is invalid: choose one of"):
        sg.densities.target("moon")
