"""Score-matching losses against closed forms, and their input checks."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.core.nets import LinearScore

torch.set_default_dtype(torch.float32)


def fisher_linear(A, b, mean, cov):
    """(1/2) E_{N(mean, cov)} || -A(x - b) + P(x - mean) ||^2 in closed form, P = cov^{-1}.
    Write s - s* = -(A - P) x + (A b - P mean) = M x + c with M = P - A, c = A b - P mean."""
    P = torch.linalg.inv(cov)
    M = P - A
    c = A @ b - P @ mean
    m = M @ mean + c
    return 0.5 * (torch.trace(M @ cov @ M.T) + m @ m)


@pytest.fixture(scope="module")
def gaussian_data():
    p = sg.densities.Gaussian(torch.tensor([1.0, -1.0], dtype=torch.float64),
                              torch.tensor([[1.5, 0.4], [0.4, 0.8]], dtype=torch.float64))
    return p, p.sample(400_000, generator=torch.Generator().manual_seed(0))


PARAMS = [
    (torch.eye(2), torch.zeros(2)),
    (torch.tensor([[2.0, 0.3], [0.3, 0.5]]), torch.tensor([0.5, 0.5])),
    (torch.tensor([[0.9, -0.2], [-0.2, 1.6]]), torch.tensor([1.0, -1.0])),
]


@pytest.mark.parametrize("loss_name", ["explicit", "sliced-vr", "sliced"])
def test_losses_equal_fisher_up_to_data_constant(gaussian_data, loss_name):
    """loss(theta) - F(theta) = -(1/2) E||grad log p||^2 = -(1/2) tr(P) for every theta (eq. (2))."""
    p, x = gaussian_data
    const = -0.5 * torch.trace(torch.linalg.inv(p.cov)).item()
    gen = torch.Generator().manual_seed(1)
    for A, b in PARAMS:
        net = LinearScore(2, A, b).double()
        if loss_name == "explicit":
            loss = sg.losses.explicit_score_matching(net, x)
            tol = 0.02
        else:
            loss = sg.losses.sliced_score_matching(net, x, n_projections=2, variance_reduction=loss_name == "sliced-vr",
                                                   generator=gen)
            tol = 0.03
        fisher = fisher_linear(A.double(), b.double(), p.mean, p.cov).item()
        assert loss.item() - fisher == pytest.approx(const, abs=tol), (A, b)


def test_explicit_trace_is_exact_for_mlp():
    torch.manual_seed(0)
    net = sg.nets.MLPScore(3, hidden=16, n_layers=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: net(v[None])[0], xi) for xi in x])
    expected = (torch.diagonal(jac, dim1=1, dim2=2).sum(1) + 0.5 * net(x).pow(2).sum(1)).mean()
    assert torch.allclose(sg.losses.explicit_score_matching(net, x), expected)


def test_losses_are_differentiable():
    torch.manual_seed(0)
    net = sg.nets.MLPScore(2, hidden=16, n_layers=2)
    x = torch.randn(64, 2)
    for loss in (sg.losses.explicit_score_matching(net, x), sg.losses.sliced_score_matching(net, x),
                 sg.losses.denoising_score_matching(net, x, 0.3)):
        grads = torch.autograd.grad(loss, list(net.parameters()))
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_dsm_optimum_is_perturbed_score():
    """Among candidate score functions, the DSM loss is lowest at grad log q_sigma (eq. (3))."""
    p = sg.densities.two_modes(torch.float64)
    x = p.sample(200_000, generator=torch.Generator().manual_seed(2))
    sigma = 2.0
    q = p.perturb(sigma)
    losses = {}
    for name, fn in {"perturbed": q.score, "data": p.score, "too wide": p.perturb(3.0).score}.items():
        losses[name] = sg.losses.denoising_score_matching(fn, x, sigma, generator=torch.Generator().manual_seed(3)).item()
    assert losses["perturbed"] < losses["data"] - 0.05 and losses["perturbed"] < losses["too wide"] - 0.05


def test_dsm_target_formula():
    x, xt = torch.zeros(3, 2), torch.ones(3, 2)
    assert torch.allclose(sg.losses.dsm_target(xt, x, 0.5), -4 * torch.ones(3, 2))


def test_dsm_any_shape():
    x = torch.randn(4, 1, 28, 28)
    assert sg.losses.denoising_score_matching(lambda v: -v, x, 0.5).dim() == 0


@pytest.mark.parametrize("fn, kwargs, err, match", [
    ("denoising_score_matching", dict(sigma=0.0), ValueError, r"sigma=0\.0 is invalid"),
    ("denoising_score_matching", dict(sigma=-1), ValueError, r"sigma=-1\.0 is invalid"),
    ("denoising_score_matching", dict(x=torch.tensor([[float("nan"), 0.0]])), ValueError, r"x contains 1 NaN"),
    ("explicit_score_matching", dict(x=torch.zeros(3)), ValueError, r"x has shape \(3,\); expected \(n, D\)"),
    ("sliced_score_matching", dict(n_projections=0), ValueError, r"n_projections=0 is invalid"),
    ("sliced_score_matching", dict(score_net="net"), TypeError, r"score_net='net' must be callable"),
    ("explicit_score_matching", dict(score_net=lambda v: v[:, :1]), ValueError, r"score_net returned \(4, 1\)"),
])
def test_invalid_input(fn, kwargs, err, match):
    args = dict(score_net=lambda v: -v, x=torch.randn(4, 2))
    if fn == "denoising_score_matching":
        args["sigma"] = 0.5
    args.update(kwargs)
    with pytest.raises(err, match=match):
        getattr(sg.losses, fn)(**args)


def test_trained_dsm_net_approaches_perturbed_score():
    """2000 steps of DSM at sigma = 0.5 on the ring: relative RMS error to grad log q_sigma below 0.15
    on the grid points where q_sigma is at least 1% of its maximum."""
    p = sg.densities.ring()
    sigma = 0.5
    q = p.perturb(sigma)
    data = p.sample(20_000, generator=torch.Generator().manual_seed(0))
    net = sg.nets.MLPScore(2, hidden=128, n_layers=3)
    res = sg.train.fit(net, lambda n, x: sg.losses.denoising_score_matching(n, x, sigma), data,
                       n_steps=2000, batch_size=256, lr=2e-3, progress=False, device="cpu")
    _, _, pts = sg.plot.grid(p.bounds(), 60)
    logq = q.log_prob(pts)
    keep = logq > logq.max() - math.log(100)
    with res.ema.average_parameters(net), torch.no_grad():
        err = (net(pts[keep]) - q.score(pts[keep])).pow(2).sum(1).mean().sqrt()
    ref = q.score(pts[keep]).pow(2).sum(1).mean().sqrt()
    assert (err / ref).item() < 0.15
