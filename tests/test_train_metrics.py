"""sg.train (EMA arithmetic, fit on sg.train.train_loop, NaN stop) and sg.metrics on known inputs."""
import math

import pytest
import torch
from torch import nn

import scoregen_lite as sg
from scoregen_lite.core.train import EMA, TrainingDiverged


def test_ema_arithmetic_without_warmup():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, decay=0.9, warmup=False)
    for value in (2.0, 4.0):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update(net)
    # 0.9 * (0.9 * 1 + 0.1 * 2) + 0.1 * 4 = 1.39
    assert ema.shadow["weight"].item() == pytest.approx(1.39)


def test_ema_warmup_decay_schedule():
    ema = EMA(nn.Linear(1, 1), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.num_updates = 90
    assert ema.current_decay() == pytest.approx(0.91)
    ema.num_updates = 10**6
    assert ema.current_decay() == pytest.approx(0.999)


def test_ema_copy_to_and_restore():
    torch.manual_seed(0)
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.5, warmup=False)
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for prm in net.parameters():
            prm.add_(1.0)
    ema.update(net)
    after = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.average_parameters(net):
        for k, v in net.state_dict().items():
            # float32 rounding of the average: an absolute tolerance (a weight near -0.5 averages to near 0)
            assert torch.allclose(v, trained[k] + 0.5, rtol=0, atol=1e-6)
    for k, v in net.state_dict().items():
        assert torch.equal(v, after[k])
    with pytest.raises(RuntimeError, match="without a previous copy_to"):
        ema.restore(net)


def test_ema_state_dict_round_trip():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    ema.update(net)
    other = EMA(net, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.num_updates == 1


def test_ema_rejects_bad_decay():
    with pytest.raises(ValueError, match=r"decay=1\.0 is invalid"):
        EMA(nn.Linear(1, 1), decay=1.0)


def test_fit_learns_and_is_seeded():
    data = sg.densities.anisotropic_gaussian().sample(2000, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = sg.nets.MLPScore(2, hidden=32, n_layers=2)
        res = sg.train.fit(net, lambda n, x: sg.losses.denoising_score_matching(n, x, 0.5), data,
                           n_steps=200, batch_size=128, lr=3e-3, progress=False, device="cpu", seed=3)
        runs.append(res.losses)
    assert runs[0] == runs[1]
    assert sum(runs[0][-20:]) / 20 < sum(runs[0][:20]) / 20
    assert res.ema is not None and len(res.smoothed(10)) == 200


def test_fit_from_sampler():
    p = sg.densities.ring()
    net = sg.nets.MLPScore(2, hidden=16, n_layers=1)
    res = sg.train.fit(net, lambda n, x: sg.losses.sliced_score_matching(n, x), p.sample,
                       n_steps=5, batch_size=32, progress=False, device="cpu", ema_decay=None)
    assert len(res.losses) == 5 and res.ema is None


def test_fit_stops_on_nan_naming_step():
    calls = {"n": 0}
    net = nn.Linear(2, 2)

    def loss_fn(n, x):
        calls["n"] += 1
        out = n(x).pow(2).mean()
        return out * float("nan") if calls["n"] == 4 else out

    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3 \(last finite loss .* at step 2\); try a smaller lr"):
        sg.train.fit(net, loss_fn, torch.randn(10, 2), n_steps=10, batch_size=4, progress=False, device="cpu")


def test_fit_is_the_plain_seeded_loop():
    """fit (now run by sg.train.train_loop) draws the same batches and takes the same steps as the plain loop it
    replaced: seed, batch indices from a generator seeded alike, Adam, clipping, EMA; losses and weights equal."""
    data = torch.randn(300, 2, generator=torch.Generator().manual_seed(1))
    loss_fn = lambda n, x: sg.losses.denoising_score_matching(n, x, 0.4)  # noqa: E731
    torch.manual_seed(0)
    net = sg.nets.MLPScore(2, hidden=16, n_layers=2)
    res = sg.train.fit(net, loss_fn, data, n_steps=30, batch_size=32, lr=5e-3, grad_clip=0.5, ema_decay=0.9,
                       seed=4, progress=False, device="cpu")
    torch.manual_seed(0)
    ref = sg.nets.MLPScore(2, hidden=16, n_layers=2)
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(4)
    opt = torch.optim.Adam(ref.parameters(), lr=5e-3)
    ema, losses = EMA(ref, 0.9), []
    for _ in range(30):
        loss = loss_fn(ref, data[torch.randint(300, (32,), generator=gen)])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
        ema.update(ref)
        losses.append(loss.item())
    assert res.losses == losses and res.steps == 30
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    assert all(torch.equal(res.ema.shadow[k], ema.shadow[k]) for k in ema.shadow)


def test_fit_divergence_names_the_optimizers_lr():
    """With an optimizer of its own, the NaN error names that optimizer's lr (not fit's unused lr argument)."""
    net = nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.25)
    with pytest.raises(TrainingDiverged, match=r"loss became inf at step 0 \(no finite loss before it\); try a smaller "
                                               r"lr \(now 0\.25\) or grad_clip\.$"):
        sg.train.fit(net, lambda n, x: n(x).pow(2).sum() * float("inf"), torch.randn(10, 2), n_steps=3, batch_size=4,
                     optimizer=opt, progress=False, device="cpu")


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_steps=0), ValueError, "n_steps=0 is invalid"),
    (dict(lr=-1.0), ValueError, r"lr=-1\.0 is invalid"),
    (dict(batch_size=2.0), TypeError, "batch_size=2.0 must be an int"),
    (dict(data=[1, 2]), TypeError, "data must be a tensor"),
    (dict(loss_fn=None), TypeError, "loss_fn=None must be callable"),
])
def test_fit_invalid_input(kwargs, err, match):
    args = dict(score_net=nn.Linear(2, 2), loss_fn=lambda n, x: n(x).sum(), data=torch.randn(8, 2), n_steps=2,
                progress=False, device="cpu")
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sg.train.fit(**args)


def test_score_mse_and_fisher_on_known_inputs():
    p = sg.densities.Gaussian(torch.zeros(2), torch.eye(2))
    x = torch.randn(100, 2)
    # a constant offset c gives exactly ||c||^2 = 0.25 + 4 = 4.25 (a missing sum over dimensions gives 2.125)
    shifted = lambda v: p.score(v) + torch.tensor([0.5, -2.0])  # noqa: E731
    assert sg.metrics.score_mse(shifted, p.score, x) == pytest.approx(4.25, rel=1e-6)
    # s(x) = 0 against s*(x) = -x: (1/2) E||x||^2 = 1 for a standard 2D Gaussian
    zero = lambda v: torch.zeros_like(v)  # noqa: E731
    fisher = sg.metrics.fisher_divergence(zero, p, n=200_000, generator=torch.Generator().manual_seed(0))
    assert fisher == pytest.approx(1.0, abs=0.02)
    err = sg.metrics.score_error_map(zero, p.score, (-1, 1, -1, 1), n=11)
    assert err.shape == (11, 11) and err[5, 5].item() == pytest.approx(0.0, abs=1e-6)


def _energy_distance_1d_gaussians(m1, s1, m2, s2):
    """Closed form: with D = X - Y ~ N(mu, s^2), E|D| = s sqrt(2/pi) exp(-mu^2 / 2s^2) + mu (1 - 2 Phi(-mu/s)),
    and E|X - X'| = 2 s1 / sqrt(pi)."""
    mu, s = m1 - m2, math.sqrt(s1**2 + s2**2)
    phi = 0.5 * (1 + math.erf(-mu / s / math.sqrt(2)))
    cross = s * math.sqrt(2 / math.pi) * math.exp(-mu**2 / (2 * s**2)) + mu * (1 - 2 * phi)
    return 2 * cross - 2 * s1 / math.sqrt(math.pi) - 2 * s2 / math.sqrt(math.pi)


def test_energy_distance_is_unbiased_against_closed_form():
    """Known value: two 1D Gaussians. The mean of 600 estimates on only 12 + 12 points matches the closed
    form within 4 standard errors. The biased V-statistic (diagonal zeros kept in the within-set means)
    overshoots by (E|X-X'| + E|Y-Y'|)/12 = 0.28 here, ~20 standard errors: it fails, as does a missing
    factor 2 on the cross term."""
    g = torch.Generator().manual_seed(0)
    want = _energy_distance_1d_gaussians(0.5, 1.0, 0.0, 1.5)
    est = torch.tensor([sg.metrics.energy_distance(0.5 + torch.randn(12, 1, generator=g),
                                                   1.5 * torch.randn(12, 1, generator=g)) for _ in range(600)])
    se = est.std().item() / math.sqrt(len(est))
    assert abs(est.mean().item() - want) < 4 * se, (est.mean().item(), want, se)
    assert (est < 0).any()  # unbiased: for a small difference single estimates can be negative


def test_energy_distance_subsampling_path():
    """Sets above max_points are subsampled with the given generator: reproducible for one seed, different
    for another, and unbiased: the mean over 40 subsampling seeds (20,000 points, 1,000 kept) matches the
    closed form within 4 standard errors (the subsample's and the 20,000-point sample's own)."""
    g = torch.Generator().manual_seed(1)
    x, y = 1.0 + torch.randn(20_000, 1, generator=g), torch.randn(20_000, 1, generator=g)
    want = _energy_distance_1d_gaussians(1.0, 1.0, 0.0, 1.0)
    runs = torch.tensor([sg.metrics.energy_distance(x, y, max_points=1000, generator=torch.Generator().manual_seed(s))
                         for s in range(40)], dtype=torch.float64)
    again = sg.metrics.energy_distance(x, y, max_points=1000, generator=torch.Generator().manual_seed(0))
    assert runs[0].item() == again and runs[0] != runs[1]
    sd = runs.std().item()                       # spread of one 1,000-point estimate (about 0.05)
    se = math.sqrt(sd**2 / len(runs) + sd**2 * 1000 / 20_000)
    assert abs(runs.mean().item() - want) < 4 * se, (runs.mean().item(), want, se)


def test_mean_distance_in_blocks_is_the_cdist_mean():
    """mean_distance sums the distances in blocks of rows (the cross term of energy_distance): the mean of the whole
    distance matrix up to rounding, for sizes that are and are not a multiple of the block."""
    g = torch.Generator().manual_seed(0)
    for n, m, rows in ((2000, 4000, 256), (513, 7, 256), (3, 5, 2), (1, 1, 256)):
        x, y = torch.randn(n, 2, generator=g, dtype=torch.float64), 3 + torch.randn(m, 2, generator=g, dtype=torch.float64)
        assert sg.metrics.mean_distance(x, y, rows=rows) == pytest.approx(torch.cdist(x, y).mean().item(), rel=1e-13)


def test_energy_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    assert abs(sg.metrics.energy_distance(a, b)) < 0.01
    assert sg.metrics.energy_distance(a, b + 1.0) > 0.3
    assert sg.metrics.energy_distance(a, b + 1.0) > sg.metrics.energy_distance(a, b + 0.5)
    with pytest.raises(ValueError, match="x has dimension 2 but y has 3"):
        sg.metrics.energy_distance(a, torch.randn(5, 3))


def test_nets_shapes_and_checks():
    net = sg.nets.MLPScore(3, hidden=8, n_layers=2)
    assert net(torch.randn(5, 3)).shape == (5, 3)
    with pytest.raises(ValueError, match=r"x has shape \(5, 2\); this network expects \(n, 3\)"):
        net(torch.randn(5, 2))
    with pytest.raises(ValueError, match="hidden=0 is invalid"):
        sg.nets.MLPScore(2, hidden=0)
    cond = sg.nets.ConditionalMLPScore(2, hidden=8, n_layers=2, output_divisor=lambda s: s)
    x = torch.randn(4, 2)
    assert cond(x, 0.5).shape == (4, 2)
    assert torch.allclose(cond(x, torch.full((4,), 0.5)), cond(x, 0.5))
    with pytest.raises(ValueError, match=r"c has shape \(3,\)"):
        cond(x, torch.ones(3))
    fourier = sg.nets.GaussianFourierProjection(8, scale=2.0)
    assert not any(True for _ in fourier.parameters())  # omega is fixed, not trained
    assert fourier(torch.rand(6)).shape == (6, 8)
    assert sg.nets.count_parameters(net) == sum(p.numel() for p in net.parameters())


def test_score_norm_law_known_value_for_a_point_mass():
    """Data at one point x0: the true score of the VE marginal is -z / std_t exactly, so ratio =
    E||z|| / sqrt(D) = sqrt(2) Gamma((D+1)/2) / Gamma(D/2) / sqrt(D) (about 1 - 1/(4D)) and cosine 1."""
    sde = sg.sde.VESDE.tutorial(25.0)
    dim = 64
    x0 = torch.full((4000, dim), 0.3)
    exact = lambda x, t: -(x - 0.3) / sde.marginal_std(t).view(-1, 1) ** 2  # noqa: E731
    times = [0.05, 0.3, 1.0]
    law = sg.metrics.score_norm_law(exact, sde, x0, times, generator=torch.Generator().manual_seed(0))
    expected = math.sqrt(2) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2)) / math.sqrt(dim)
    assert law["std"] == pytest.approx(sde.marginal_std(torch.tensor(times)).tolist(), rel=1e-6)
    # the ratio's standard error is std(||z||) / sqrt(D n) = 0.71 / sqrt(64 * 4000) = 1.4e-3: 3 of them;
    # measured at most 1.7e-3 off
    assert law["ratio"] == pytest.approx([expected] * 3, abs=4.2e-3)
    assert law["cosine"] == pytest.approx([1.0] * 3, abs=1e-5)
    assert law["norm"][0] > 10 * law["norm"][2]          # ~ 1 / std_t
    # a score too small by std_t (the network's output not divided by std_t): the ratio moves with t
    wrong = sg.metrics.score_norm_law(lambda x, t: exact(x, t) * sde.marginal_std(t).view(-1, 1), sde, x0, times,
                                      generator=torch.Generator().manual_seed(0))
    assert abs(wrong["ratio"][0] - expected) > 0.5
