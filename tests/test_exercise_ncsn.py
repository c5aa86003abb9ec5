"""The exercise checks of notebooks 04-05 (sg.exercises.nb04_ncsn, nb05_annealed_langevin): the reference passes,
every catalogued mistake is recognised with its hint; the helper that trains notebook 04's network with the
student's loss; and the measured update SNR of notebook 05 (sg.schedules.measured_update_snr)."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.exercises import nb04_ncsn as exercise_ncsn
from scoregen_lite.exercises import nb05_annealed_langevin
from scoregen_lite.exercises.checking import ExerciseFailed

# --- notebook 04: the NCSN loss -------------------------------------------------------------------------------

def ncsn_loss(score_net, x, sigmas, idx, z, *, weight_power=2, target_power=2, half=0.5, sign=1.0, reduce="sum",
              extra=1.0, at_data=False, noise_power=1, detach=False, shape=None):
    sig = sigmas[idx][:, None]
    x_tilde = x + sig**noise_power * z
    s = score_net(x if at_data else x_tilde, sigmas[idx])
    err = (s + sign * (x_tilde - x) / sig**target_power).pow(2)
    per = err.sum(1) if reduce == "sum" else err.mean(1)
    out = (sig[:, 0] ** weight_power * half * per).mean() * extra
    if shape == "per_point":
        out = sig[:, 0] ** weight_power * half * per
    return out.detach() if detach else out


NCSN_MISTAKES = [
    (dict(weight_power=0), "lambda = 1"),
    (dict(weight_power=1), "the weight is sigma, not sigma^2"),
    (dict(target_power=1), "divides by sigma once only"),
    (dict(half=1.0), "factor 1/2"),
    (dict(sign=-1.0), "the sign of the target"),
    (dict(reduce="mean"), "sum the squared error over the coordinates"),
    (dict(extra=1 / 6), "an extra 1/L"),
    (dict(at_data=True), "evaluated at the clean x"),
    (dict(noise_power=2), "the noise was scaled by sigma^2"),
]


def test_ncsn_loss_reference_passes(capsys):
    sg.exercises.check_ncsn_loss(ncsn_loss)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("change,hint", NCSN_MISTAKES, ids=[h for _, h in NCSN_MISTAKES])
def test_ncsn_loss_mistakes_recognised(change, hint):
    with pytest.raises(ExerciseFailed, match="ncsn_loss: ") as err:
        sg.exercises.check_ncsn_loss(lambda *a: ncsn_loss(*a, **change))
    msg = str(err.value)
    assert hint in msg and "expected" in msg
    assert not any(other in msg for _, other in NCSN_MISTAKES if other != hint), msg   # its own hint, no other


def test_ncsn_loss_form_errors():
    with pytest.raises(ExerciseFailed, match="0-d tensor"):
        sg.exercises.check_ncsn_loss(lambda *a: ncsn_loss(*a, shape="per_point"))
    with pytest.raises(ExerciseFailed, match="no gradient"):
        sg.exercises.check_ncsn_loss(lambda *a: ncsn_loss(*a, detach=True))
    with pytest.raises(ExerciseFailed, match="not the indices"):     # the indices passed as the levels
        sg.exercises.check_ncsn_loss(lambda net, x, sigmas, idx, z: ncsn_loss(net, x, idx.double(), idx, z))


def test_ncsn_loss_check_matches_package_reference():
    """The check's expected value is sg.losses.ncsn_loss with the same draws: an independent formula agrees."""
    net = exercise_ncsn._TinyNCSN(3)
    x = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigmas = sg.schedules.geometric_sigmas(5.0, 0.05, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    idx = torch.randint(6, (40,), generator=gen)
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    want = sg.losses.ncsn_loss(net, x, sigmas, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(ncsn_loss(net, x, sigmas, idx, z), want, rtol=1e-12)


def test_train_with_reference_loss_is_train_ncsn():
    """A correct loss trains exactly train_ncsn's network (same draws, same weights), so notebook 04's figures
    are the package's when the student's loss is right, and differ when it is not."""
    data = sg.densities.ring(std=0.05).sample(2000, generator=torch.Generator().manual_seed(0))
    sigmas = sg.schedules.geometric_sigmas(8.0, 0.05, 10)
    net_ref, fit_ref = sg.train.train_ncsn(data, sigmas, n_steps=30, device="cpu", progress=False)
    net, fit = exercise_ncsn.train_ncsn_with_loss(ncsn_loss, data, sigmas, n_steps=30, device="cpu", progress=False)
    for a, b in zip(net_ref.parameters(), net.parameters()):
        assert torch.allclose(a, b, atol=1e-4)   # same draws; only float rounding differs (measured 2e-6)
    assert max(abs(a - b) for a, b in zip(fit_ref.losses, fit.losses)) < 1e-5
    wrong, fit_wrong = exercise_ncsn.train_ncsn_with_loss(lambda *a: ncsn_loss(*a, weight_power=0), data, sigmas,
                                                          n_steps=30, device="cpu", progress=False)
    assert max((a - b).abs().max().item() for a, b in zip(net_ref.parameters(), wrong.parameters())) > 1e-3
    with pytest.raises(TypeError, match="must be callable"):
        exercise_ncsn.train_ncsn_with_loss(None, data, sigmas, n_steps=1)


# --- notebook 05: annealed Langevin dynamics -------------------------------------------------------------------

def annealed_langevin(score_fn, x0, sigmas, step_size, zs, *, power=2, ref=-1, restart=False, noise=1.0, drift=0.5,
                      shift=0, fixed=None, noise_first=False, drop_start=False):
    x, path = x0.clone(), [x0.clone()]
    for i, sigma in enumerate(sigmas.tolist()):
        eps_i = step_size * (sigma / sigmas[ref].item()) ** power
        if restart:
            x = x0.clone()
        at = sigmas[fixed].item() if fixed is not None else sigmas[i - shift].item()
        for t in range(zs.shape[1]):
            if noise_first:
                x = x + math.sqrt(noise * eps_i) * zs[i, t]
                x = x + drift * eps_i * score_fn(x, at)
            else:
                x = x + drift * eps_i * score_fn(x, at) + math.sqrt(noise * eps_i) * zs[i, t]
        path.append(x)
    return torch.stack(path[1:] if drop_start else path)


ANNEALED_MISTAKES = [
    (dict(power=1), "is not squared"),
    (dict(power=0), "the same at every level"),
    (dict(ref=0), "normalised by sigma_1"),
    (dict(restart=True), "the chain restarts from x0"),
    (dict(noise=2.0), "the noise is sqrt(2 eps_i) z"),
    (dict(noise=2.0, drift=1.0), "the NCSN code's update x + a s + sqrt(2a) z with a = eps_i"),
    (dict(shift=1), "the wrong level (sigmas[i - 1])"),
    (dict(fixed=-1), "at sigma_L at every level"),
    (dict(noise_first=True), "after the noise was added"),
]


def test_annealed_langevin_reference_passes(capsys):
    sg.exercises.check_annealed_langevin(annealed_langevin)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("change,hint", ANNEALED_MISTAKES, ids=[h for _, h in ANNEALED_MISTAKES])
def test_annealed_langevin_mistakes_recognised(change, hint):
    with pytest.raises(ExerciseFailed, match="annealed_langevin: ") as err:
        sg.exercises.check_annealed_langevin(lambda *a: annealed_langevin(*a, **change))
    msg = str(err.value)
    assert hint in msg and "expected" in msg
    assert not any(other in msg for _, other in ANNEALED_MISTAKES if other != hint), msg   # its own hint, no other


def test_annealed_langevin_path_without_start():
    with pytest.raises(ExerciseFailed, match="x0 first"):
        sg.exercises.check_annealed_langevin(lambda *a: annealed_langevin(*a, drop_start=True))


def test_annealed_langevin_unknown_mistake_points_at_level():
    def off(*a):
        path = annealed_langevin(*a)
        path[3] += 0.1
        return path
    with pytest.raises(ExerciseFailed, match="the end of level 3"):
        sg.exercises.check_annealed_langevin(off)


def test_checks_listed_with_points():
    for name, module in (("check_ncsn_loss", exercise_ncsn), ("check_annealed_langevin", nb05_annealed_langevin)):
        assert name in sg.exercises.__all__ and name in module.__all__
        assert sg.exercises.POINTS[name] in (2, 3)
    assert sg.exercises.train_ncsn_with_loss is exercise_ncsn.train_ncsn_with_loss   # notebook 04 calls it there


# --- notebook 05: the update's SNR, measured with the exact score ------------------------------------------------

def test_measured_update_snr_gaussian_limits():
    """For a single Gaussian N(0, s0^2 I) the perturbed score is -x/(s0^2 + sigma^2), so the measured ratio is
    sqrt(eps_i) / (2 sqrt(s0^2 + sigma_i^2)) exactly (up to sampling): the formula's sqrt(eps_i)/(2 sigma_i) at
    sigma_i >> s0, and sigma_i / sqrt(s0^2 + sigma_i^2) times it below s0."""
    g = sg.densities.Gaussian(torch.zeros(3), torch.eye(3))
    sigmas = sg.schedules.geometric_sigmas(20.0, 0.05, 8)
    measured = sg.schedules.measured_update_snr(g, sigmas, 4e-3, n_samples=40_000,
                                                generator=torch.Generator().manual_seed(0))
    eps = sg.schedules.step_sizes(sigmas.double(), 4e-3)
    predicted = eps.sqrt() / (2 * (1 + sigmas.double() ** 2).sqrt())
    assert measured.shape == (8,) and measured.dtype == torch.float64
    assert torch.allclose(measured, predicted, rtol=0.01)           # a missing 1/2 or sigma for sigma^2 is off by 2x+
    formula = sg.schedules.update_snr(sigmas.double(), 4e-3)
    assert abs(measured[0] / formula[0] - 1) < 0.01 and measured[-1] / formula[-1] < 0.06


def test_measured_update_snr_rejects_bad_input():
    with pytest.raises(TypeError, match="GaussianMixture"):
        sg.schedules.measured_update_snr(lambda x: x, [1.0, 0.1], 1e-3)
    with pytest.raises(ValueError):
        sg.schedules.measured_update_snr(sg.densities.two_modes(), [1.0, -0.1], 1e-3)
    with pytest.raises(ValueError):
        sg.schedules.measured_update_snr(sg.densities.two_modes(), [1.0, 0.1], -1e-3)
