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
