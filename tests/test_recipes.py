"""Training recipes (sg.recipes, notebook 10): preconditioning, noise levels, weighting, bits/dim floor,
memorisation statistic. Each check is planted-bug tested in tests/test_mutants.py."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite import recipes

SDES = [sg.sde.VESDE.tutorial(25.0), sg.sde.VPSDE(), sg.sde.SubVPSDE()]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
@pytest.mark.parametrize("kind", ["none", "edm"])
def test_preconditioned_is_exact_for_a_gaussian(sde, kind):
    """With the optimal raw output for N(mean, var I), the wrapper's score is the exact marginal score."""
    torch.manual_seed(0)
    mean, var = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64), 0.4
    net = recipes.Preconditioned(recipes.optimal_gaussian_output(kind, sde, mean, var, 0.5), sde, kind, 0.5)
    for tv in (0.003, 0.05, 0.3, 0.9):
        t = torch.full((64,), tv, dtype=torch.float64)
        alpha, std = sde.marginal_coeffs(t)
        x = alpha[:, None] * mean + torch.randn(64, 3, dtype=torch.float64) * torch.sqrt(alpha**2 * var + std**2)[:, None]
        exact = -(x - alpha[:, None] * mean) / (alpha**2 * var + std**2)[:, None]
        torch.testing.assert_close(net(x, t), exact, rtol=1e-7, atol=1e-8)


def test_identity_preconditioning_is_todays_score():
    """'none' gives s = F(x(t), t) / std_t: the ScoreUNet's output of the course so far."""
    sde = sg.sde.VPSDE()
    raw = lambda x, c: torch.sin(3 * x) + c[:, None]  # noqa: E731 - any F(x_in, c_noise)
    x, t = torch.randn(32, 4, dtype=torch.float64), torch.rand(32, dtype=torch.float64) * 0.99 + 0.01
    std = sde.marginal_std(t)
    torch.testing.assert_close(recipes.Preconditioned(raw, sde, "none")(x, t), raw(x, t) / std[:, None])


def test_scoreunet_edm_matches_generic_wrapper():
    torch.manual_seed(0)
    sde = sg.sde.VESDE.tutorial(25.0)
    net = sg.unet.ScoreUNet(sde, channels=(8, 16, 32, 64), embed_dim=32, precond="edm", sigma_data=0.5).eval()
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0.01, 0.4, 0.95])
    wrapped = recipes.Preconditioned(lambda xi, c: net._body(xi, c, None), sde, "edm", 0.5)
    torch.testing.assert_close(net(x, t), wrapped(x, t))
    c = recipes.coefficients("edm", torch.tensor(2.0), torch.tensor(1.0), torch.tensor(0.5), 0.5)
    # EDM table 1 at sigma = 2, sigma_data = 0.5: c_skip = 0.25 / 4.25, c_out = 1 / sqrt(4.25), c_in = 1 / sqrt(4.25)
    torch.testing.assert_close(torch.stack(c), torch.tensor([0.25 / 4.25, 1 / math.sqrt(4.25), 1 / math.sqrt(4.25),
                                                             math.log(2.0) / 4]))


def test_edm_target_has_unit_std_and_none_input_does_not():
    torch.manual_seed(0)
    sde = sg.sde.VESDE.tutorial(25.0)
    x0 = 0.5 * torch.randn(4000, 8)  # sigma_data = 0.5, zero mean: EDM's assumption
    sigmas = [0.01, 0.1, 1.0, 5.0]
    edm = recipes.target_std("edm", x0, sde, sigmas, 0.5, torch.Generator().manual_seed(1))
    none = recipes.target_std("none", x0, sde, sigmas, 0.5, torch.Generator().manual_seed(1))
    for key in ("input", "target"):
        assert all(abs(v - 1) < 0.03 for v in edm[key]), edm
    assert none["input"][-1] / none["input"][0] > 9  # 0.5 -> 5.0
    assert all(abs(v - 1) < 0.03 for v in none["target"])  # today's F regresses -z
    torch.testing.assert_close(torch.tensor(none["score"]) * torch.tensor(sigmas), torch.ones(4), rtol=0.05, atol=0)


def test_recipe_loss_uniform_sigma2_is_sde_dsm():
    sde = sg.sde.VPSDE()
    net = sg.nets.TimeMLPScore(sde, dim=2)
    x = torch.randn(128, 2)
    a = recipes.recipe_loss(net, x, sde, generator=torch.Generator().manual_seed(3))
    b = sg.losses.sde_dsm(net, x, sde, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_importance_sampler_normaliser_and_unbiased(sde):
    eps = 1e-4
    imp = recipes.ImportanceSampler(sde, eps)
    # known value: for VE, g^2 / std^2 = d ln(std^2) / dt, so Z = ln(std_1^2 / std_eps^2)
    if sde.name == "VE":
        s1, se = sde.marginal_std(1.0), sde.marginal_std(eps)
        assert imp.normaliser == pytest.approx(float(torch.log(s1**2 / se**2)), rel=1e-5)
    # unbiased: E_q[iw f(t)] = uniform average of f, for f = sqrt(t) (exact mean 2/3 (1 - eps^1.5) / (1 - eps))
    t, iw = recipes.sample_times("importance", sde, 400_000, eps=eps, generator=torch.Generator().manual_seed(0),
                                 dtype=torch.float64, importance=imp)
    assert t.min() >= eps and t.max() <= 1
    est = iw * t.sqrt()
    exact = 2 / 3 * (1 - eps**1.5) / (1 - eps)
    assert abs(float(est.mean()) - exact) < 4 * float(est.std()) / math.sqrt(len(est))
    # likelihood weighting x importance weight is the constant Z / (1 - eps)
    w = recipes.loss_weight("likelihood", sde, t) * iw
    torch.testing.assert_close(w, torch.full_like(w, imp.normaliser / (1 - eps)), rtol=1e-3, atol=0)


def test_importance_sampler_follows_its_density():
    """The drawn times' histogram matches q(t) = g^2 / (Z std^2) (VP: not log-uniform)."""
    sde, eps = sg.sde.VPSDE(), 1e-3
    imp = recipes.ImportanceSampler(sde, eps)
    t, q = imp.sample(200_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    edges = torch.tensor([eps, 0.01, 0.05, 0.2, 0.5, 1.0], dtype=torch.float64)
    counts = torch.histc(t, bins=1, min=0, max=1)  # noqa: F841 - sanity
    for lo, hi in zip(edges[:-1], edges[1:]):
        grid = torch.linspace(float(lo), float(hi), 2001, dtype=torch.float64)
        expected = float(torch.trapezoid(imp.density(grid), grid)) / imp.normaliser
        got = float(((t >= lo) & (t < hi)).double().mean())
        assert abs(got - expected) < 4 * math.sqrt(expected * (1 - expected) / len(t)) + 1e-4, (lo, hi, got, expected)


def test_lognormal_times_have_lognormal_sigma():
    sde = sg.sde.VESDE.tutorial(25.0)
    t, iw = recipes.sample_times("lognormal", sde, 100_000, generator=torch.Generator().manual_seed(0),
                                 p_mean=-1.2, p_std=1.2)
    assert torch.all(iw == 1)
    log_sigma = torch.log(sde.sigma_of_t(t.double()))
    inside = (log_sigma > math.log(0.01)) & (log_sigma < math.log(9.0))  # away from the clamps
    assert float(log_sigma[inside].median()) == pytest.approx(-1.2, abs=0.03)
    q = torch.quantile(log_sigma[inside], torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert float(q[1] - q[0]) == pytest.approx(2 * 0.6745 * 1.2, rel=0.05)


def test_edm_weighting_is_unit_weight_on_the_raw_output():
    """EDM's lambda c_out^2 = 1: the weighted normalised error equals ||F - F*||^2 for the edm wrapper."""
    torch.manual_seed(0)
    sde, sd = sg.sde.VPSDE(), 0.5
    raw = lambda xi, c: 0.3 * xi + c[:, None]  # noqa: E731
    net = recipes.Preconditioned(raw, sde, "edm", sd)
    x0, z, t = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64), \
        torch.rand(16, dtype=torch.float64) * 0.9 + 0.05
    alpha, std = sde.marginal_coeffs(t)
    xt = alpha[:, None] * x0 + std[:, None] * z
    weighted = recipes.loss_weight("edm", sde, t, sd) * (std[:, None] * net(xt, t) + z).pow(2).sum(1)
    sigma = std / alpha
    c_skip, c_out, c_in, c_noise = recipes.coefficients("edm", sigma, alpha, t, sd)
    y = xt / alpha[:, None]
    target = (x0 - c_skip[:, None] * y) / c_out[:, None]
    torch.testing.assert_close(weighted, (raw(c_in[:, None] * y, c_noise) - target).pow(2).sum(1))


def test_bits_floor_known_values():
    h = 1 / 256
    # sigma << h: only the bin's edges cost, floor = 2 (sigma / h) int_0^inf -log2 Phi(v) dv
    v = torch.linspace(0, 12, 200_001, dtype=torch.float64)
    edge = float(torch.trapezoid(-torch.log2(torch.distributions.Normal(0.0, 1.0).cdf(v).double()), v))
    assert recipes.bits_floor(1e-3 * h) == pytest.approx(2e-3 * edge, rel=0.01)
    big = 40 * h
    assert recipes.bits_floor(big) == pytest.approx(math.log2(math.sqrt(2 * math.pi) * big / h), abs=2e-3)
    # sigma = h / 2: by hand, E_u[-log2(Phi(2 (1 - u)) - Phi(-2 u))] (midpoint rule, 20,000 points)
    u = (torch.arange(20000, dtype=torch.float64) + 0.5) / 20000
    n = torch.distributions.Normal(0.0, 1.0)
    ref = float(-torch.log2(n.cdf(2 * (1 - u)) - n.cdf(-2 * u)).mean())
    assert recipes.bits_floor(h / 2) == pytest.approx(ref, abs=1e-4)
    assert 0.1 < ref < 1.0


def test_memorisation_known_values():
    train = torch.tensor([[0.0], [1.0], [10.0]])
    samples = torch.tensor([[0.2], [0.5], [10.0], [6.0]])
    d = sg.evaluation.nearest_neighbours(samples, train, k=2)
    torch.testing.assert_close(d, torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.0, 9.0], [4.0, 5.0]]))
    ratio = sg.evaluation.memorisation_ratio(samples, train)
    torch.testing.assert_close(ratio, torch.tensor([0.25, 1.0, 0.0, 0.8]))
    assert sg.evaluation.memorised_fraction(samples, train) == pytest.approx(0.5)   # ratios 0.25 and 0 are < 1/3


def test_recipe_choices_are_checked():
    with pytest.raises(ValueError, match="noise='loguniform'"):
        recipes.check_recipe("none", "loguniform", "sigma2")
    with pytest.raises(ValueError, match="precond='karras'"):
        sg.unet.ScoreUNet(sg.sde.VESDE(), precond="karras")
    with pytest.raises(ValueError, match="recipe='fast'"):
        sg.image_training.CPU.with_recipe("fast")


@pytest.mark.parametrize("recipe", sorted(recipes.RECIPES))
def test_every_recipe_trains_a_unet(recipe):
    """Each recipe trains a few steps of the tiny U-Net, and its checkpoint reloads to the same score."""
    x = torch.rand(64, 1, 28, 28)
    config = sg.image_training.QUICK_CPU.with_recipe(recipe)
    from dataclasses import replace
    config = replace(config, n_steps=3, warmup_steps=1)
    net, ema, info = sg.image_training.train_images(x, config, device="cpu", progress=False, log=lambda *_: None)
    assert len(info["losses"]) == 3 and all(math.isfinite(v) for v in info["losses"])
    assert net.precond == recipes.RECIPES[recipe][0]


def test_empirical_score_is_the_mixture_score_and_memorises():
    """The exact score of a finite training set equals the score of the equal-weight mixture of N(alpha x_i,
    std^2 I) (autograd of its log-density), and sampling it returns training points (memorised fraction 1)."""
    torch.manual_seed(0)
    sde = sg.sde.VESDE(0.01, 10.0)
    train = torch.randn(7, 2, dtype=torch.float64) * 3
    score = recipes.empirical_score(train, sde)
    x, t = torch.randn(20, 2, dtype=torch.float64) * 3, torch.full((20,), 0.4, dtype=torch.float64)
    alpha, std = sde.marginal_coeffs(t)
    mix = sg.densities.GaussianMixture(torch.full((7,), 1 / 7, dtype=torch.float64), train,
                                       (std[0] ** 2 * torch.eye(2, dtype=torch.float64)).repeat(7, 1, 1))
    torch.testing.assert_close(score(x, t), mix.score(x), rtol=1e-8, atol=1e-10)
    samples, _ = sg.samplers.edm_sampler(sde, score, (200, 2), 40, generator=torch.Generator().manual_seed(0),
                                         dtype=torch.float64)
    assert sg.evaluation.memorised_fraction(samples, train) > 0.95
    assert sg.evaluation.memorised_fraction(torch.randn(200, 2, dtype=torch.float64) * 3, train) < 0.5


def test_denoiser_error_noise_prediction_grows_with_sigma_edm_is_bounded():
    """EDM section 5: a fixed error delta in F costs the denoiser c_out delta: sigma delta for noise prediction
    ("none"), at most sigma_data delta for EDM's preconditioning (measured through Preconditioned + Tweedie)."""
    sde = sg.sde.VESDE.tutorial(25.0)
    sigmas = torch.tensor([0.003, 0.05, 0.5, 3.0, 9.0], dtype=torch.float64)
    none = recipes.denoiser_error("none", sde, sigmas, 0.1, var=0.1, dim=4, n=64, generator=torch.Generator().manual_seed(0))
    edm = recipes.denoiser_error("edm", sde, sigmas, 0.1, sigma_data=0.3, var=0.1, dim=4, n=64,
                                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(none, 0.1 * sigmas, rtol=1e-6, atol=0)
    torch.testing.assert_close(edm, 0.1 * sigmas * 0.3 / torch.sqrt(sigmas**2 + 0.09), rtol=1e-6, atol=0)
    assert float(edm.max()) <= 0.1 * 0.3


def test_bits_point_mass_closed_form_and_the_reviewers_numbers():
    h = 1 / 256
    s = 0.81 * h
    u = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    numeric = float(-torch.distributions.Normal(0.0, s).log_prob((u - 0.5) * h).mean() / math.log(2)) + 8
    assert recipes.bits_point_mass(s) == pytest.approx(numeric, abs=1e-6)
    sigma_eps = float(sg.sde.VESDE.tutorial(25.0).sigma_of_t(torch.tensor(1e-5, dtype=torch.float64)))
    # the MNIST SDE's sigma_min: point masses 1.11 against the blurred bin's 1.19 (the reviewer)
    assert recipes.bits_point_mass(sigma_eps) == pytest.approx(1.11, abs=0.01)
    assert recipes.bits_floor(sigma_eps) == pytest.approx(1.19, abs=0.01)


@pytest.mark.parametrize("ratio", [0.03, 0.2, 0.5, 0.81, 3.0, 30.0])
def test_bits_bound_is_below_both_references_and_tight(ratio):
    h = 1 / 256
    b = recipes.bits_bound(ratio * h)
    # + 1e-4: the midpoint rule over u (500 points) against the closed form
    assert b["bound"] <= min(recipes.bits_floor(ratio * h), recipes.bits_point_mass(ratio * h)) + 1e-4
    assert 0 <= b["value"] - b["bound"] < 3e-3                # EM found a density within 0.003 of the bound
    if ratio >= 0.5:   # the point mass at the centre is optimal: the bound reaches it
        assert b["bound"] == pytest.approx(recipes.bits_point_mass(ratio * h), abs=1e-4)
    else:              # the best blurred density is spread over the bin and beats both references
        assert b["value"] < min(recipes.bits_floor(ratio * h), recipes.bits_point_mass(ratio * h)) - 0.01
