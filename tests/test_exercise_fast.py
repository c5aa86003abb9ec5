"""Notebook 08's whole-method exercise, ``sg.exercises.check_edm_heun_churn`` (EDM's Algorithm 2 with its noise
given): the reference solution passes, and every catalogued mistake is recognised with its hint."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.exercises.checking import ExerciseFailed
from scoregen_lite.exercises.nb08_fast_sampling import edm_heun_churn_reference as ref


def solution(denoise, sigmas, noise, churn_noise, churn, s_tmin, s_tmax, s_noise):
    """The notebook's solution, written out as a student would."""
    n = len(sigmas) - 1
    x = float(sigmas[0]) * noise
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(churn / n, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
        t_hat = min(s * (1 + gamma), float(sigmas[0]))              # never above the top level
        x_hat = x + math.sqrt(t_hat**2 - s**2) * s_noise * churn_noise[i]
        d = (x_hat - denoise(x_hat, t_hat)) / t_hat
        x = x_hat + (s_next - t_hat) * d
        if s_next > 0:
            d2 = (x - denoise(x, s_next)) / s_next
            x = x_hat + (s_next - t_hat) * (d + d2) / 2
    return x


def test_solution_and_reference_pass(capsys):
    sg.exercises.check_edm_heun_churn(solution)
    sg.exercises.check_edm_heun_churn(lambda *a: ref(*a))
    assert capsys.readouterr().out.count("passed") == 2
    assert sg.exercises.POINTS["check_edm_heun_churn"] == 3 and "check_edm_heun_churn" in sg.exercises.__all__


@pytest.mark.parametrize("flag, hint", [
    ("no_noise", "no churn noise"),
    ("std_t_hat", "the churn noise has std t^ * S_noise"),
    ("slope_at_start", "the correction averages the wrong slopes"),
    ("from_sigma", "the step is measured from sigma_i"),
    ("no_cap", "eta \\(EDM's gamma_i\\) is not capped"),
    ("no_window", "the churn window is ignored"),
    ("no_top", "t^ rises above sigma_0"),
    ("euler_only", "Euler without Heun's correction"),
])
def test_catalogued_mistakes_are_recognised(flag, hint):
    with pytest.raises(ExerciseFailed, match="edm_heun_churn: " + hint.replace("^", r"\^").replace("*", r"\*")):
        sg.exercises.check_edm_heun_churn(lambda *a: ref(*a, **{flag: True}))


def test_correction_on_the_last_step_is_recognised():
    """A Heun correction on the last step calls the denoiser at sigma = 0: the check says so."""
    def last_corrected(denoise, sigmas, noise, churn_noise, churn, s_tmin, s_tmax, s_noise):
        n = len(sigmas) - 1
        x = float(sigmas[0]) * noise
        for i in range(n):
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            gamma = min(churn / n, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
            t_hat = min(s * (1 + gamma), float(sigmas[0]))
            x_hat = x + math.sqrt(t_hat**2 - s**2) * s_noise * churn_noise[i]
            d = (x_hat - denoise(x_hat, t_hat)) / t_hat
            x = x_hat + (s_next - t_hat) * d
            d2 = (x - denoise(x, s_next)) / max(s_next, 1e-12)      # also on the last step
            x = x_hat + (s_next - t_hat) * (d + d2) / 2
        return x

    with pytest.raises(ExerciseFailed, match="called the denoiser at sigma = 0"):
        sg.exercises.check_edm_heun_churn(last_corrected)


def test_the_cap_at_sigma_0_binds_in_the_check():
    """The check's first setting churns a window that holds sigma_0, so a sampler without the cap at sigma_0 (the
    step-0 churn that sg.samplers.edm_sampler never makes) is caught; sg.samplers.churn_etas says which steps the
    reference churns there: not step 0, the three next at the cap, not the last two (below S_tmin = 0.05)."""
    ve = sg.sde.SDES["VE"]()
    sigmas = sg.samplers.sigma_schedule(ve, 6)
    etas = sg.samplers.churn_etas(sigmas, 10.0, 0.05, 50.0, top=ve.max_noise_level())
    assert etas[0] == 0 and etas[4:].eq(0).all() and float(sigmas[3]) > 0.05 > float(sigmas[4])
    torch.testing.assert_close(etas[1:4], torch.full((3,), math.sqrt(2) - 1, dtype=torch.float64))


def test_wrong_return_types():
    with pytest.raises(ExerciseFailed, match="returned a tuple"):
        sg.exercises.check_edm_heun_churn(lambda *a: (solution(*a), 11))
    with pytest.raises(ExerciseFailed, match="wrong"):
        sg.exercises.check_edm_heun_churn(lambda *a: 1.01 * solution(*a))
