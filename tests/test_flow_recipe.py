"""The "flow" training recipe (sg.recipes, notebook 11): eq. (8) with the "straight" noise levels and the
"flow" weighting is, draw for draw, the conditional flow matching loss of the straight path
x_u = (1 - u) x(0) + u z, u = sigma / (1 + sigma), for the velocity v = (x_u - D) / u of the same model."""
import math

import torch

import scoregen_lite as sg


def test_straight_noise_levels_are_logit_normal_in_u_within_the_range():
    sde = sg.sde.VESDE(0.01, 25.0)
    t, iw = sg.recipes.sample_times("straight", sde, 200_000, eps=1e-5, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64)
    assert torch.all(iw == 1)
    sigma = sde.sigma_of_t(t)
    u = sigma / (1 + sigma)
    logit = torch.log(u / (1 - u))
    lo, hi = math.log(float(sde.sigma_of_t(torch.tensor(1e-5, dtype=torch.float64)))), math.log(25.0)
    assert logit.min() >= lo - 1e-9 and logit.max() <= hi + 1e-9
    # the truncated standard normal's quantiles (the range cuts almost nothing: ln 0.01 = -4.6, ln 25 = 3.2)
    normal = torch.distributions.Normal(0.0, 1.0)
    c_lo, c_hi = normal.cdf(torch.tensor(lo)), normal.cdf(torch.tensor(hi))
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        want = float(normal.icdf(c_lo + (c_hi - c_lo) * q))
        got = float(torch.quantile(logit.float(), q))
        assert abs(got - want) < 0.02, (q, got, want)       # the standard error of a quantile here is ~0.004


def test_flow_weighting_makes_eq8_the_flow_matching_loss():
    torch.manual_seed(0)
    sde = sg.sde.VESDE(0.01, 25.0)
    def net(x, t):                                          # any score model: the identity holds for every one
        return torch.sin(3 * x) * (1 + t[:, None]) - x
    x0 = torch.randn(512, 2, dtype=torch.float32) * 0.5 + 1.0
    gen = torch.Generator().manual_seed(3)
    loss = sg.recipes.recipe_loss(net, x0, sde, noise="straight", weighting="flow", generator=gen)
    # the same draws, by hand, on the straight path
    gen = torch.Generator().manual_seed(3)
    t, _ = sg.recipes.sample_times("straight", sde, len(x0), eps=1e-5, generator=gen)
    z = torch.randn(x0.shape, generator=gen)
    sigma = sde.sigma_of_t(t)[:, None]
    s = net(x0 + sigma * z, t)
    denoised = x0 + sigma * z + sigma**2 * s                # Tweedie: D = y + sigma^2 s
    u = sigma / (1 + sigma)
    x_u = (1 - u) * x0 + u * z                              # = y / (1 + sigma)
    v = (x_u - denoised) / u                                # x(0) = x_u - u v on the straight path
    cfm = (v - (z - x0)).pow(2).sum(1).mean()
    assert torch.allclose(loss, cfm, rtol=1e-4), (float(loss), float(cfm))


def test_flow_recipe_is_named_and_checked():
    assert sg.recipes.RECIPES["flow"] == ("edm", "straight", "flow")
    sg.recipes.check_recipe(*sg.recipes.RECIPES["flow"])
    assert sg.image_training.ImageConfig().with_recipe("flow").noise == "straight"
