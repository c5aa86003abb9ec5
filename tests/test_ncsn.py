"""Part 3: schedules, the NCSN loss, annealed Langevin and the schedule widgets."""
import math

import pytest
import torch

import scoregen_lite as sg


# ------------------------------------------------------------------ schedules
def test_geometric_ladder():
    s = sg.schedules.geometric_sigmas(10.0, 0.1, 10)
    assert s.shape == (10,) and s[0].item() == pytest.approx(10.0) and s[-1].item() == pytest.approx(0.1)
    ratios = s[:-1] / s[1:]
    assert torch.allclose(ratios, torch.full((9,), 100 ** (1 / 9)), rtol=1e-5)
    assert (s[:-1] > s[1:]).all()


@pytest.mark.parametrize("args, err, match", [
    ((0.1, 10.0, 5), ValueError, r"sigma_max=0\.1 must be larger than sigma_min=10\.0"),
    ((1.0, 1.0, 5), ValueError, "must be larger than"),
    ((10.0, 0.0, 5), ValueError, r"sigma_min=0\.0 is invalid"),
    ((10.0, -1.0, 5), ValueError, r"sigma_min=-1\.0 is invalid"),
    ((10.0, 0.1, 1), ValueError, r"n_levels=1 is invalid: expected an int >= 2"),
    ((10.0, 0.1, 2.5), TypeError, r"n_levels=2\.5 must be an int"),
])
def test_ladder_validation(args, err, match):
    with pytest.raises(err, match=match):
        sg.schedules.geometric_sigmas(*args)


def test_sigma_max_rule_on_known_points():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert sg.schedules.sigma_max_from_data(x) == pytest.approx(5.0)


def test_ratio_rule_matches_published_values():
    """Song & Ermon (2020) use gamma ~ 1.04 on CIFAR-10 (D = 3072, 232 levels from 50 to 0.01)."""
    g = sg.schedules.ratio_for_dimension(3072)
    assert 1.03 < g < 1.05
    assert sg.schedules.ratio_for_dimension(784) > g  # lower dimension allows a larger ratio
    assert sg.schedules.ratio_for_dimension(2) == pytest.approx(10.0)  # capped: the rule allows anything in 2D
    assert sg.schedules.n_levels_for(50, 0.01, 1.0376) in (232, 233)


def test_step_size_rule_minimises_its_expression():
    T, s, gamma = 100, 0.1, 100 ** (1 / 9)
    eps = sg.schedules.step_size_for(T, s, gamma) / 2  # back to the NCSN convention

    def expr(e):
        a = (1 - e / s**2) ** 2
        b = 2 * e / (s**2 - s**2 * a)
        return abs(a**T * (gamma**2 - b) + b - 1)

    assert 0 < eps < s**2
    assert expr(eps) <= min(expr(eps * 0.8), expr(eps * 1.25))


def test_step_sizes_and_constant_snr():
    s = sg.schedules.geometric_sigmas(10.0, 0.1, 10)
    a = sg.schedules.step_sizes(s, 5e-3)
    assert a[-1].item() == pytest.approx(5e-3) and a[0].item() == pytest.approx(50.0, rel=1e-4)
    snr = sg.schedules.update_snr(s, 5e-3)
    assert torch.allclose(snr, torch.full_like(snr, math.sqrt(5e-3) / 0.2), rtol=1e-4)


# ------------------------------------------------------------------ NCSN loss
def test_ncsn_loss_is_lowest_at_exact_score():
    """With the exact perturbed scores the weighted per-level loss is minimal: any other scale is worse."""
    p = sg.densities.two_modes(torch.float64)
    x = p.sample(50_000, generator=torch.Generator().manual_seed(0))
    sig = sg.schedules.geometric_sigmas(10.0, 0.5, 4, dtype=torch.float64)
    fast = lambda v, s: p.perturbed_score(v, float(s[0]))  # noqa: E731  (per_level passes one sigma at a time)
    base = sg.losses.ncsn_loss(fast, x, sig, per_level=True, generator=torch.Generator().manual_seed(1))
    for scale in (0.8, 1.2):   # a target with the wrong sign would prefer the smaller scale
        worse = sg.losses.ncsn_loss(lambda v, s: scale * fast(v, s), x, sig, per_level=True,
                                    generator=torch.Generator().manual_seed(1))
        assert (worse > base).all(), scale
    # the weighted scalar loss, eq. (5), too (same noise for each network)
    def exact(v, s):   # a different sigma per row
        out = torch.empty_like(v)
        for level in sig:
            rows = s == level
            out[rows] = p.perturbed_score(v[rows], float(level))
        return out

    small = x[:3000]
    loss = {c: sg.losses.ncsn_loss(lambda v, s, c=c: c * exact(v, s), small, sig,
                                   generator=torch.Generator().manual_seed(2)).item() for c in (0.8, 1.0, 1.2)}
    assert loss[1.0] < loss[0.8] and loss[1.0] < loss[1.2], loss


def test_ncsn_loss_weighting_powers():
    x = torch.randn(256, 2)
    sig = torch.tensor([4.0, 1.0, 0.25])
    zero = lambda v, s: torch.zeros_like(v)  # noqa: E731
    # with s = 0 each level's loss is (1/2) E||z/sigma||^2 = D / (2 sigma^2) = 1/sigma^2
    per = sg.losses.ncsn_loss(zero, x, sig, per_level=True)
    assert torch.allclose(per, 1 / sig**2, rtol=0.25)
    g = torch.Generator().manual_seed(0)
    l2 = sg.losses.ncsn_loss(zero, x, sig, weighting=2.0, generator=g).item()
    assert l2 == pytest.approx(1.0, rel=0.2)  # sigma^2 * 1/sigma^2
    l0 = sg.losses.ncsn_loss(zero, x, sig, weighting=0.0, generator=torch.Generator().manual_seed(0)).item()
    assert l0 > 3 * l2
    lc = sg.losses.ncsn_loss(zero, x, sig, weighting=lambda s: s**2, generator=torch.Generator().manual_seed(0)).item()
    assert lc == pytest.approx(l2)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(sigmas=torch.tensor([1.0, -1.0])), ValueError, "sigmas=.* is invalid"),
    (dict(weighting="sigma"), TypeError, "weighting='sigma' must be a power"),
    (dict(x=torch.tensor([[float("inf"), 0.0]])), ValueError, "x contains 1 NaN/inf"),
])
def test_ncsn_loss_invalid(kwargs, err, match):
    args = dict(score_net=lambda v, s: -v, x=torch.randn(4, 2), sigmas=torch.tensor([1.0, 0.1]))
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sg.losses.ncsn_loss(**args)


def test_weighting_equalises_per_level_losses_of_trained_net():
    """The sigma^2-weighted per-level losses of a trained NCSN stay within a factor 30 of each other,
    while the unweighted ones span more than three orders of magnitude (notebook 04 measures x13 / x10^5)."""
    p = sg.densities.ring(std=0.05)
    data = p.sample(10_000, generator=torch.Generator().manual_seed(0))
    sig = sg.schedules.geometric_sigmas(8.0, 0.05, 10)
    net, _ = sg.train.train_ncsn(data, sig, n_steps=1500, progress=False, device="cpu")
    per = sg.losses.ncsn_loss(net, data[:4000], sig, per_level=True, generator=torch.Generator().manual_seed(1))
    w = per * sig**2
    assert (per.max() / per.min()).item() > 1000
    assert (w.max() / w.min()).item() < 30


# ------------------------------------------------------------------ annealed Langevin
def test_annealed_langevin_recovers_mixture_weights():
    """4000 chains: binomial noise on the small weight is sqrt(0.16/4000) = 0.0063; the sampler's own bias
    with this schedule is about +0.015 (measured on 30,000 chains), so 0.03 is ~2.4 sigma of margin."""
    p = sg.densities.two_modes()
    g = torch.Generator().manual_seed(0)
    x0 = sg.widgets.uniform_start(4000, p.bounds(), generator=g)
    sig = sg.schedules.geometric_sigmas(10.0, 0.1, 10)
    x = sg.samplers.annealed_langevin(p.perturbed_score, x0, sig, 5e-3, 100, generator=g)
    assert (p.mode_weights(x) - p.weights).abs().max().item() < 0.03
    plain = sg.samplers.langevin(p.score, x0, 0.1, 1000, generator=g)
    assert (p.mode_weights(plain) - p.weights).abs().max().item() > 0.15


def test_annealed_langevin_update_and_path():
    """One level, one step, constant score: x + (alpha/2) s + sqrt(alpha) z with alpha = eps."""
    x0 = torch.zeros(3, 2)
    out, path = sg.samplers.annealed_langevin(lambda x, s: torch.ones_like(x), x0, [0.5], 0.2, 1, return_path=True,
                                              generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, 0.1 + math.sqrt(0.2) * z)
    assert path.shape == (2, 3, 2)
    # final denoise adds sigma_L^2 * score
    out2 = sg.samplers.annealed_langevin(lambda x, s: torch.ones_like(x), x0, [0.5], 0.2, 1, final_denoise=True,
                                         generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out2, out + 0.25)
    # two levels: the first step is alpha_1 = eps sigma_1^2 / sigma_L^2 = 0.2 * 16 (sigma, not sigma^2, gives 0.8)
    g = torch.Generator().manual_seed(3)
    out3 = sg.samplers.annealed_langevin(lambda x, s: torch.ones_like(x), x0, [2.0, 0.5], 0.2, 1, generator=g)
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)
    a1, a2 = 0.2 * 16, 0.2
    assert torch.allclose(out3, a1 / 2 + math.sqrt(a1) * z1 + a2 / 2 + math.sqrt(a2) * z2)


def test_annealed_langevin_works_with_network_and_images():
    net = sg.nets.ConditionalMLPScore(2, hidden=8, n_layers=1, output_divisor=lambda s: s)
    with torch.no_grad():
        out = sg.samplers.annealed_langevin(net, torch.randn(5, 2), [1.0, 0.1], 1e-3, 3)
    assert out.shape == (5, 2)
    img = sg.samplers.annealed_langevin(lambda x, s: -x / (1 + s**2), torch.randn(2, 1, 28, 28), [1.0, 0.1], 1e-3, 2)
    assert img.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(sigmas=[0.1, 1.0]), ValueError, "must be strictly descending"),
    (dict(sigmas=[1.0, 0.0]), ValueError, "sigmas=.* is invalid"),
    (dict(step_size=0), ValueError, r"step_size=0\.0 is invalid"),
    (dict(n_steps_each=0), ValueError, "n_steps_each=0 is invalid"),
    (dict(score_fn=None), TypeError, "score_fn=None must be callable"),
])
def test_annealed_langevin_invalid(kwargs, err, match):
    args = dict(score_fn=lambda x, s: -x, x0=torch.zeros(2, 2), sigmas=[1.0, 0.1], step_size=1e-3, n_steps_each=2)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sg.samplers.annealed_langevin(**args)


def test_divergence_is_reported():
    p = sg.densities.two_modes()
    x0 = sg.widgets.uniform_start(500, p.bounds(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(sg.samplers.SamplerDiverged,
                       match=r"chains reached NaN/inf .* median \|x\| = .* step_size=0\.05 is too large"):
        sg.samplers.annealed_langevin(p.perturbed_score, x0, sg.schedules.geometric_sigmas(10, 0.1, 10), 0.05, 100)
    with pytest.raises(sg.samplers.SamplerDiverged, match="step_size=5 is too large"):
        sg.samplers.langevin(lambda x: -10 * x, torch.ones(4, 2), 5.0, 200)


# ------------------------------------------------------------------ widgets
def test_schedule_view_and_explorer():
    fig, info = sg.widgets.schedule_view(10.0, 0.1, 10)
    assert len(info["sigmas"]) == 10 and max(info["snr"]) == pytest.approx(min(info["snr"]))
    w = sg.widgets.schedule_explorer()
    c = {ch.description: ch for ch in w.children[:-1]}
    c["L"].value = 20
    assert len(w.result["sigmas"]) == 20
    c["spacing"].value = "linear"
    r = w.result["ratios"]
    assert max(r) / min(r) > 2  # a linear ladder has a growing ratio
    c["sigma_1"].value = 1.0
    assert w.result["sigmas"][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="spacing='log' is invalid"):
        sg.widgets.schedule_view(spacing="log")


def test_annealed_view_and_explorer():
    fig, info = sg.widgets.annealed_view(n_chains=1000, n_steps_each=50)
    assert info["max_weight_error"] < 0.06 and not info["diverged"]
    w = sg.widgets.annealed_explorer(n_chains=500)
    c = {ch.description: ch for ch in w.children[:-1]}
    first = w.result["sample_weights"]
    c["sigma_1"].value = 0.5
    assert w.result["max_weight_error"] > 0.2 and w.result["sample_weights"] != first
    c["sigma_1"].value = 10.0
    c["eps"].value = 0.1
    assert w.result["diverged"] is True
    with pytest.raises(ValueError, match="score='learned' needs net="):
        sg.widgets.annealed_view(score="learned", n_chains=10)
    net = sg.nets.ConditionalMLPScore(2, hidden=8, n_layers=1, output_divisor=lambda s: s).requires_grad_(False)
    wl = sg.widgets.annealed_explorer(net=net, n_chains=200)
    cl = {ch.description: ch for ch in wl.children[:-1]}
    cl["score"].value = "learned"
    assert wl.result["score"] == "learned"
