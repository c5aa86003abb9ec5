"""Every Gaussian path is the same family (notebook 11): a score model of the VE or VP SDE, mapped through
u = sigma / (1 + sigma) and x = y / (1 + sigma), is a velocity on the straight path. With the exact score of
the SDE's marginal (sg.densities.SDEMarginal) it must equal sg.flow's exact marginal velocity."""
import pytest
import torch

import scoregen_lite as sg

F64 = torch.float64


def mixture3d():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(2, 3, 3, generator=g, dtype=F64)
    covs = a @ a.transpose(-1, -2) / 3 + 0.1 * torch.eye(3, dtype=F64)
    return sg.densities.GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), 2 * torch.randn(2, 3, generator=g, dtype=F64),
                                        covs)


@pytest.mark.parametrize("sde", [sg.sde.VESDE(0.01, 50.0), sg.sde.VPSDE()], ids=["VE", "VP"])
def test_sde_score_mapped_to_the_straight_path_is_the_marginal_velocity(sde):
    target = mixture3d()
    exact = sg.densities.SDEMarginal(target, sde)
    velocity = sg.flow.velocity_of_sde_model(exact.score, sde)
    g = torch.Generator().manual_seed(0)
    top = float(sg.flow.flow_time(torch.tensor(sde.max_noise_level(), dtype=F64)))
    u = 0.05 + (min(top, 0.95) - 0.05) * torch.rand(64, generator=g, dtype=F64)
    x = sg.flow.straight_path(target.sample(64, generator=g), torch.randn(64, 3, generator=g, dtype=F64), u)
    got = velocity(x, u)
    want = sg.flow.marginal_velocity(target, x, u)
    assert torch.allclose(got, want, rtol=1e-7, atol=1e-7), (got - want).abs().max()


def test_flow_time_and_bad_times():
    assert torch.allclose(sg.flow.flow_time(torch.tensor([0.0, 1.0, 3.0], dtype=F64)),
                          torch.tensor([0.0, 0.5, 0.75], dtype=F64))
    with pytest.raises(ValueError, match="sigma"):
        sg.flow.flow_time(torch.tensor([-1.0]))
    sde = sg.sde.VESDE(0.01, 50.0)
    velocity = sg.flow.velocity_of_sde_model(sg.densities.SDEMarginal(mixture3d(), sde).score, sde)
    with pytest.raises(ValueError, match="strictly inside"):
        velocity(torch.zeros(2, 3, dtype=F64), 0.0)


@pytest.mark.parametrize("sampler,n_steps,nfe", [("flow-heun", 40, 79), ("flow-euler", 100, 100)])
def test_registry_flow_samplers_draw_the_target_from_an_sde_score(sampler, n_steps, nfe):
    """sample_batched's flow samplers on the exact VE score of a 2D mixture: the samples' mean and covariance
    match the target's within a few standard errors and the energy distance is at the noise floor."""
    target = sg.densities.two_modes(F64)
    # sigma_max far above the modes (+-5): the start u_max z leaves out (1 - u_max) x(0), as the reverse SDE's
    # N(0, sigma_max^2) start leaves out x(0); at sigma_max = 20 that skews the mode weights measurably
    sde = sg.sde.VESDE(0.01, 300.0)
    exact = sg.densities.SDEMarginal(target, sde)
    n = 4000
    x, got_nfe, _ = sg.samplers.sample_batched(lambda x, t: exact.score(x.double(), t.double()).float(), sde, n,
                                               shape=(2,), sampler=sampler, n_steps=n_steps, amp=False,
                                               generator=torch.Generator().manual_seed(0), device="cpu")
    assert got_nfe == nfe == sg.samplers.SAMPLERS[sampler].evaluations(n_steps)
    x = x.double()
    ref = target.sample(n, generator=torch.Generator().manual_seed(1))
    se = ref.std(0) / n**0.5
    assert ((x.mean(0) - ref.mean(0)).abs() < 4 * 2**0.5 * se).all(), (x.mean(0), ref.mean(0))
    cov_x, cov_r = torch.cov(x.T), torch.cov(ref.T)
    assert torch.allclose(cov_x, cov_r, atol=0.08 * float(cov_r.diagonal().max())), (cov_x, cov_r)
    floor = sg.metrics.energy_noise_floor(target, n, repeats=4, generator=torch.Generator().manual_seed(2))
    dist = sg.metrics.energy_distance(x, ref)
    assert dist < floor["mean"] + 4 * floor["std"], (dist, floor)



@pytest.mark.parametrize("sampler", ["flow-euler", "flow-heun"])
def test_registry_flow_samplers_end_denoised(sampler):
    """The flow samplers end at u = 0 with a last Euler step (the denoised estimate, as EDM's sampler ends at
    sigma = 0), not at u_end = flow_time(sigma(eps)) with that level's noise left in. Known answer: two near point
    masses (std 0.001), whose flow is straight, so the samples sit on the modes within their std; a leftover noise
    sigma(1e-3) ~ 0.007 would spread them seven times wider."""
    target = sg.densities.GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64),
                                          torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=F64),
                                          torch.tensor([1e-6, 1e-6], dtype=F64))       # variances: std 0.001
    sde = sg.sde.VESDE(0.05, 300.0)
    assert float(sde.sigma_of_t(torch.tensor(1e-3, dtype=F64))) > 0.006
    exact = sg.densities.SDEMarginal(target, sde)
    x, _, _ = sg.samplers.sample_batched(lambda x, t: exact.score(x.double(), t.double()).float(), sde, 2000,
                                         shape=(2,), sampler=sampler, n_steps=20, amp=False,
                                         generator=torch.Generator().manual_seed(0), device="cpu")
    x = x.double()
    assert (x[:, 0].abs() - 1).abs().max() < 0.01 and abs((x[:, 0] > 0).double().mean() - 0.5) < 0.05
    spread = x[:, 1].std().item()               # across the modes' axis: at most a mode's std, 0.001
    assert spread < 0.0015, spread
