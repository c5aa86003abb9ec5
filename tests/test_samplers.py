"""Langevin (eq. (1)) and MALA against the analytic stationary laws of a Gaussian."""
import pytest
import torch

import scoregen_lite as sg


def ula_stationary_cov(cov, eps):
    """Unadjusted Langevin on N(0, Sigma): C = (P - eps/4 P^2)^{-1}, P = Sigma^{-1}."""
    P = torch.linalg.inv(cov.double())
    return torch.linalg.inv(P - eps / 4 * P @ P)


@pytest.fixture(scope="module")
def gauss():
    return sg.densities.anisotropic_gaussian(dtype=torch.float64)


def test_langevin_update_is_eq1():
    """One step with a constant score and a seeded generator reproduces eq. (1) exactly."""
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    score = lambda x: torch.ones_like(x)  # noqa: E731
    out = sg.samplers.langevin(score, x0, 0.3, 1, generator=torch.Generator().manual_seed(5))
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(out, x0 + 0.15 * 1.0 + 0.3**0.5 * z)


def test_langevin_moments_and_shrinking_bias(gauss, gen):
    """20k independent chains: mean and covariance within 4 standard errors of the ULA stationary law
    N(mu, (P - eps/4 P^2)^{-1}); at eps = 0.5 that law is told apart from exact sampling (its variance
    along the second axis is 1.38, not 1.2: 14 standard errors), so a sampler that is too exact (e.g.
    with a Metropolis step) or biased the other way (eps for eps/2 on the score) fails; the bias to
    the true covariance shrinks as eps shrinks."""
    x0 = gauss.sample(20_000, generator=gen)
    errors = {}
    for eps in (0.5, 0.05):
        x = sg.samplers.langevin(gauss.score, x0, eps, 600, generator=gen)
        predicted = sg.densities.Gaussian(gauss.mean, ula_stationary_cov(gauss.cov, eps))
        assert sg.metrics.moment_z(x, predicted)["max"] < 4
        errors[eps] = torch.linalg.matrix_norm(torch.cov(x.T) - gauss.cov).item()
    assert sg.metrics.moment_z(sg.samplers.langevin(gauss.score, x0, 0.5, 600, generator=gen), gauss)["max"] > 8
    assert errors[0.05] < 0.5 * errors[0.5]


def test_langevin_path_shape_and_seed(gauss):
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    a, path = sg.samplers.langevin(gauss.score, x0, 0.1, 7, return_path=True, generator=torch.Generator().manual_seed(0))
    b = sg.samplers.langevin(gauss.score, x0, 0.1, 7, generator=torch.Generator().manual_seed(0))
    assert path.shape == (8, 10, 2) and torch.equal(path[0], x0) and torch.equal(path[-1], a)
    assert torch.equal(a, b)


def test_langevin_any_shape():
    """Images (n, 1, 28, 28) pass through unchanged in shape."""
    x0 = torch.randn(3, 1, 28, 28)
    out = sg.samplers.langevin(lambda x: -x, x0, 0.01, 3)
    assert out.shape == x0.shape


def test_mala_unbiased_at_large_step(gauss, gen):
    """MALA at eps = 0.5, where plain Langevin is 14 standard errors off: exact moments within 4."""
    x0 = gauss.sample(20_000, generator=gen)
    x, rate = sg.samplers.mala(gauss.log_prob, gauss.score, x0, 0.5, 400, generator=gen)
    assert 0.3 < rate < 1
    assert sg.metrics.moment_z(x, gauss)["max"] < 4


def test_mala_rate_falls_with_step(gauss, gen):
    x0 = gauss.sample(2000, generator=gen)
    rates = [sg.samplers.mala(gauss.log_prob, gauss.score, x0, eps, 50, generator=gen)[1] for eps in (0.01, 0.5, 3.0)]
    assert 1 >= rates[0] > rates[1] > rates[2] > 0


def test_mala_path(gauss):
    x, rate, path = sg.samplers.mala(gauss.log_prob, gauss.score, torch.zeros(5, 2, dtype=torch.float64), 0.1, 4,
                                     return_path=True)
    assert path.shape == (5, 5, 2) and 0 <= rate <= 1


def test_langevin_misses_mixture_weights(gen):
    """The failure notebook 01 shows: exact score, separated modes, weights not recovered."""
    p = sg.densities.two_modes()
    x0 = sg.widgets.uniform_start(4000, p.bounds(), generator=gen)
    x = sg.samplers.langevin(p.score, x0, 0.1, 1000, generator=gen)
    assert abs(p.mode_weights(x)[0].item() - 0.2) > 0.15


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(step_size=0.0), ValueError, r"step_size=0\.0 is invalid: expected a finite number > 0"),
        (dict(step_size=-0.1), ValueError, r"step_size=-0\.1 is invalid"),
        (dict(n_steps=-1), ValueError, r"n_steps=-1 is invalid: expected an int >= 0"),
        (dict(n_steps=2.5), TypeError, r"n_steps=2\.5 must be an int"),
        (dict(x0=torch.tensor([[0.0, float("nan")]])), ValueError, r"x0 contains 1 NaN/inf"),
        (dict(score_fn=3), TypeError, r"score_fn=3 must be callable"),
        (dict(score_fn=lambda x: x[:, :1]), ValueError, r"score_fn returned \(1, 1\); expected a tensor of x's shape \(1, 2\)"),
    ],
)
def test_langevin_invalid_input(kwargs, err, match):
    args = dict(score_fn=lambda x: -x, x0=torch.zeros(1, 2), step_size=0.1, n_steps=3)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sg.samplers.langevin(**args)


def test_mala_invalid_input():
    with pytest.raises(ValueError, match=r"step_size=-1\.0 is invalid"):
        sg.samplers.mala(lambda x: -x.pow(2).sum(1), lambda x: -2 * x, torch.zeros(2, 2), -1.0, 3)
    with pytest.raises(TypeError, match=r"log_prob_fn=None must be callable"):
        sg.samplers.mala(None, lambda x: -x, torch.zeros(2, 2), 0.1, 3)
