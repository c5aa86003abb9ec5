"""Robustness sweep with hypothesis: valid input of any shape, dtype and extreme-but-valid value gives
finite output of the right shape; invalid input gives a ValueError/TypeError that names the argument."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scoregen_lite as sg

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
dtypes = st.sampled_from([torch.float32, torch.float64])
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@st.composite
def mixtures(draw):
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 5))
    dtype = draw(dtypes)
    seed = draw(st.integers(0, 10_000))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    covs = (a @ a.transpose(1, 2) / d + 0.1 * torch.eye(d, dtype=torch.float64)) * scale**2
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.05
    means = scale * 3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return sg.densities.GaussianMixture((w / w.sum()).to(dtype), means.to(dtype), covs.to(dtype))


@SETTINGS
@given(p=mixtures(), n=st.integers(1, 50), far=st.sampled_from([1.0, 1e3]), sigma=st.floats(1e-3, 1e3))
def test_mixture_outputs_finite(p, n, far, sigma):
    x = p.sample(n) * far
    assert p.log_prob(x).shape == (n,) and torch.isfinite(p.log_prob(x)).all()
    assert p.score(x).shape == (n, p.dim) and torch.isfinite(p.score(x)).all()
    q = p.perturb(sigma)
    assert torch.isfinite(q.score(x)).all() and torch.isfinite(q.log_prob(x)).all()


@SETTINGS
@given(p=mixtures(), bad=st.sampled_from(["nan", "shape", "type"]))
def test_mixture_rejects_bad_x(p, bad):
    x = torch.zeros(3, p.dim, dtype=p.means.dtype)
    if bad == "nan":
        x[0, 0] = float("nan")
        err, match = ValueError, "x contains"
    elif bad == "shape":
        x = torch.zeros(3, p.dim + 1)
        err, match = ValueError, "x has shape"
    else:
        x = x.tolist()
        err, match = TypeError, "x must be a torch.Tensor"
    with pytest.raises(err, match=match):
        p.score(x)


@SETTINGS
@given(weights=st.lists(st.one_of(st.floats(-1, 2), st.just(float("nan"))), min_size=2, max_size=4))
def test_mixture_rejects_bad_weights(weights):
    w = torch.tensor(weights)
    valid = torch.isfinite(w).all() and (w >= 0).all() and abs(float(w.sum()) - 1) <= 1e-4
    make = lambda: sg.densities.GaussianMixture(w, torch.zeros(len(weights), 2), torch.ones(len(weights)))  # noqa: E731
    if valid:
        make()
    else:
        with pytest.raises(ValueError, match="weights="):
            make()


@SETTINGS
@given(name=st.sampled_from(list(sg.sde.SDES)), shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       t=st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)), dtype=dtypes, device=st.sampled_from(DEVICES))
def test_sde_methods_finite_any_shape(name, shape, t, dtype, device):
    sde = sg.sde.SDES[name]()
    x = torch.randn(shape, dtype=dtype, device=device)
    tv = torch.full((shape[0],), t, dtype=dtype, device=device)
    mean, std = sde.marginal_prob(x, tv)
    assert mean.shape == x.shape and std.shape == (shape[0],)
    for out in (mean, std, sde.drift(x, tv), sde.diffusion(tv), sde.prior_log_prob(x)):
        assert torch.isfinite(out).all()
    assert (std >= 0).all()
    assert sde.prior_sample(tuple(shape), device=device).shape == tuple(shape)


@SETTINGS
@given(t=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 <= v <= 1), st.text(max_size=3)))
def test_sde_rejects_bad_time(t):
    with pytest.raises((ValueError, TypeError), match="t="):
        sg.sde.VPSDE().marginal_std(t)


@SETTINGS
@given(smax=st.one_of(st.floats(-10, 1e4), st.just(float("nan"))), smin=st.one_of(st.floats(-10, 1e4), st.just(float("nan"))),
       n=st.integers(-2, 50))
def test_geometric_sigmas_valid_or_named_error(smax, smin, n):
    valid = math.isfinite(smax) and math.isfinite(smin) and smin > 0 and smax > smin and n >= 2
    valid = valid and smin >= torch.finfo(torch.float32).tiny  # else it would round to 0 in float32
    if valid:
        s = sg.schedules.geometric_sigmas(smax, smin, n)
        assert s.shape == (n,) and torch.isfinite(s).all() and (s > 0).all()
        assert (s[:-1] >= s[1:]).all()
    else:
        with pytest.raises(ValueError, match="sigma_max=|sigma_min=|n_levels="):
            sg.schedules.geometric_sigmas(smax, smin, n)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), eps=st.sampled_from([1e-4, 1e-2, 0.5]),
       n_steps=st.integers(0, 5), dtype=dtypes)
def test_langevin_any_shape(shape, eps, n_steps, dtype):
    x0 = torch.randn(shape, dtype=dtype)
    out = sg.samplers.langevin(lambda x: -x, x0, eps, n_steps)
    assert out.shape == x0.shape and out.dtype == dtype and torch.isfinite(out).all()


@SETTINGS
@given(step=st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not (v > 0 and math.isfinite(v))))
def test_samplers_reject_bad_step(step):
    for call in (lambda: sg.samplers.langevin(lambda x: -x, torch.zeros(2, 2), step, 3),
                 lambda: sg.samplers.annealed_langevin(lambda x, s: -x, torch.zeros(2, 2), [1.0, 0.1], step, 3)):
        with pytest.raises(ValueError, match="step_size="):
            call()


@SETTINGS
@given(name=st.sampled_from(list(sg.sde.SDES)), shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       n_steps=st.integers(1, 5))
def test_reverse_samplers_any_shape(name, shape, n_steps):
    sde = sg.sde.SDES[name]()
    score = lambda x, t: -x / (sde.marginal_std(t).reshape((-1,) + (1,) * (x.dim() - 1)) ** 2 + 1)  # noqa: E731
    shape = tuple(shape)
    assert sg.samplers.euler_maruyama(sde, score, shape, n_steps).shape == shape
    assert sg.samplers.predictor_corrector(sde, score, shape, n_steps).shape == shape


@SETTINGS
@given(sigma=st.floats(1e-3, 1e3), shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), dtype=dtypes)
def test_losses_finite(sigma, shape, dtype):
    x = torch.randn(shape, dtype=dtype)
    loss = sg.losses.denoising_score_matching(lambda v: -v / (1 + sigma**2), x, sigma)
    assert loss.dim() == 0 and torch.isfinite(loss)
    sde = sg.sde.VPSDE()
    assert torch.isfinite(sg.losses.sde_dsm(lambda v, t: -v, x, sde))
    sig = torch.tensor([sigma * 10, sigma], dtype=dtype)
    assert torch.isfinite(sg.losses.ncsn_loss(lambda v, s: -v, x, sig))


@SETTINGS
@given(sigma=st.one_of(st.floats(max_value=0), st.just(float("nan")), st.just(float("inf"))))
def test_losses_reject_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma="):
        sg.losses.denoising_score_matching(lambda v: -v, torch.zeros(2, 2), sigma)
