"""EDM's windowed churn in ``sg.samplers.edm_sampler`` (Karras et al. 2022, Algorithm 2 with S_tmin, S_tmax and
S_noise; notebook 08): step by step against a hand loop fed the same noise, the defaults that keep the churn capped
at every level, and the samples' moments and energy distance with an exact 2D score. Also ``sample_batched``
passing the window on, and the exercise of notebook 08 (``check_edm_heun_churn``) whose reference must be the
package's sampler."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.core.densities import SDEMarginal
from scoregen_lite.exercises.nb08_fast_sampling import edm_heun_churn_reference

VE = sg.sde.VESDE(0.01, 10.0)


def _hand_loop(sde, D, z, n, churn, s_tmin, s_tmax, s_noise, seed):
    """Algorithm 2 written out, drawing the churn noise from its own generator seeded like edm_sampler's."""
    sigmas = [float(s) for s in sg.samplers.sigma_schedule(sde, n)]
    gen = torch.Generator().manual_seed(seed)
    gamma_max = min(churn / n, math.sqrt(2) - 1)
    x, churned = sigmas[0] * z, []
    for i in range(n):
        gamma = gamma_max if s_tmin <= sigmas[i] <= s_tmax else 0.0
        s_hat = min((1 + gamma) * sigmas[i], sde.max_noise_level())
        if s_hat > sigmas[i]:
            x = x + math.sqrt(s_hat**2 - sigmas[i] ** 2) * s_noise * torch.randn(x.shape, generator=gen, dtype=x.dtype)
            churned.append(i)
        d = (x - D(x, s_hat)) / s_hat
        x_next = x + (sigmas[i + 1] - s_hat) * d
        if sigmas[i + 1] > 0:
            d2 = (x_next - D(x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + (sigmas[i + 1] - s_hat) * (d + d2) / 2
        x = x_next
    return x, churned, sigmas


@pytest.mark.parametrize("churn, s_tmin, s_tmax, s_noise", [(40.0, 0.05, 1.0, 1.007), (40.0, 0.05, 50.0, 1.003),
                                                             (2.0, 0.2, 3.0, 1.2)])
def test_windowed_churn_by_hand(churn, s_tmin, s_tmax, s_noise):
    """Churn only on the levels in [S_tmin, S_tmax], its noise scaled by S_noise, step by step (exact ring score)."""
    ring = sg.densities.ring(dtype=torch.float64)
    score = SDEMarginal(ring, VE).score
    D = sg.sde.denoiser(VE, score)
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    n = 12
    got, nfe = sg.samplers.edm_sampler(VE, score, None, n, noise=z, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax,
                                       s_noise=s_noise, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    want, churned, sigmas = _hand_loop(VE, D, z, n, churn, s_tmin, s_tmax, s_noise, 12)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert nfe == 2 * n - 1
    top = VE.max_noise_level()
    inside = [i for i in range(n) if s_tmin <= sigmas[i] <= s_tmax and sigmas[i] < top]   # at sigma_max: capped
    assert churned == inside and 0 < len(inside) < n - 1      # the window picks some levels, not all
    # the same call without the window is a different sampler (the window does something)
    capped, _ = sg.samplers.edm_sampler(VE, score, None, n, noise=z, churn=churn, generator=torch.Generator().manual_seed(12),
                                        dtype=torch.float64)
    assert (capped - got).abs().max() > 1e-3


def test_defaults_are_churn_at_every_level():
    """s_tmin = 0, s_tmax = inf, s_noise = 1 (the defaults) churn at every level below the SDE's top: the capped
    churn of notebooks 08-09, unchanged by the window's addition."""
    ring = sg.densities.ring(dtype=torch.float64)
    score = SDEMarginal(ring, VE).score
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    got, _ = sg.samplers.edm_sampler(VE, score, None, 18, noise=z, churn=40.0, generator=torch.Generator().manual_seed(14),
                                     dtype=torch.float64)
    want, churned, _ = _hand_loop(VE, sg.sde.denoiser(VE, score), z, 18, 40.0, 0.0, float("inf"), 1.0, 14)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert churned == list(range(1, 18))     # every level but the first, where sigma^ is capped at sigma_max


@pytest.mark.parametrize("window", [(0.05, 1.0, 1.0), (0.05, 50.0, 1.0), (0.0, float("inf"), 1.0)])
def test_windowed_churn_samples_the_target(window):
    """With an exact score and enough levels (N = 40) every churn setting samples the target: a correlated 2D
    Gaussian's moments within 4 standard errors and the energy distance within the noise floor. Churn noise of std
    sigma^ instead of sqrt(sigma^2 - sigma_i^2) fails both. (The target is centred: the sampler starts from
    N(0, sigma_max^2 I), and a deterministic stretch of the solve carries a start that ignores the data's mean.)"""
    s_tmin, s_tmax, s_noise = window
    target = sg.densities.Gaussian(torch.tensor([0.0, 0.0]), torch.tensor([[1.0, 0.6], [0.6, 0.5]]))
    n = 4000
    x, _ = sg.samplers.edm_sampler(VE, SDEMarginal(target, VE).score, (n, 2), 40, churn=40.0, s_tmin=s_tmin,
                                   s_tmax=s_tmax, s_noise=s_noise, generator=torch.Generator().manual_seed(15))
    floor = sg.metrics.energy_noise_floor(target, n, repeats=6, generator=torch.Generator().manual_seed(16))
    ed = sg.metrics.energy_distance(x, target.sample(n, generator=torch.Generator().manual_seed(17)))
    mz = sg.metrics.moment_z(x, target)["max"]
    assert mz < 4 and ed < floor["mean"] + 4 * floor["std"], (mz, ed, floor)


def test_sample_batched_passes_the_window_on():
    """sample_batched(..., s_tmin, s_tmax, s_noise) is edm_sampler with them; other samplers refuse them."""
    ring = sg.densities.ring()
    score = SDEMarginal(ring, VE).score
    kw = dict(churn=40.0, s_tmin=0.05, s_tmax=1.0, s_noise=1.007)
    x, nfe, _ = sg.samplers.sample_batched(score, VE, 16, shape=(2,), sampler="edm", n_steps=8, amp=False,
                                           generator=torch.Generator().manual_seed(3), device="cpu", **kw)
    want, _ = sg.samplers.edm_sampler(VE, score, (16, 2), 8, generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(x, want)
    assert nfe == 15
    with pytest.raises(ValueError, match="sampler='edm' only"):
        sg.samplers.sample_batched(score, VE, 4, shape=(2,), sampler="em", n_steps=5, s_tmin=0.05, device="cpu")


@pytest.mark.parametrize("churn, s_tmin, s_tmax, s_noise", [(40.0, 0.05, 5.0, 1.003), (40.0, 0.05, 50.0, 1.003),
                                                             (40.0 * 10 / 256, 0.05, 50.0, 1.003)])
def test_exercise_reference_is_the_package_sampler(churn, s_tmin, s_tmax, s_noise):
    """The exercise's reference loop (t^ capped at sigma_0) equals edm_sampler (t^ capped at the SDE's largest level,
    where the schedule starts), also where that cap binds (a window holding sigma_0); the noise edm_sampler draws at
    the levels that sg.samplers.churn_etas calls churned, and at no others."""
    ring = sg.densities.ring(dtype=torch.float64)
    score = SDEMarginal(ring, VE).score
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(18), dtype=torch.float64)
    n = 10
    got, _ = sg.samplers.edm_sampler(VE, score, None, n, noise=z, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax,
                                     s_noise=s_noise, generator=torch.Generator().manual_seed(19), dtype=torch.float64)
    sigmas = sg.samplers.sigma_schedule(VE, n)
    etas = sg.samplers.churn_etas(sigmas, churn, s_tmin, s_tmax, top=VE.max_noise_level())
    gen = torch.Generator().manual_seed(19)
    zs = torch.stack([torch.randn(z.shape, generator=gen, dtype=torch.float64) if eta > 0 else 100 * torch.ones_like(z)
                      for eta in etas])   # 100: a level churned by mistake would show
    ref = edm_heun_churn_reference(sg.sde.denoiser(VE, score), sigmas, z, zs, churn, s_tmin, s_tmax, s_noise)
    torch.testing.assert_close(ref, got, rtol=1e-9, atol=1e-9)


def test_churn_etas_known_values_and_the_sampler():
    """sg.samplers.churn_etas on VE(0.01, 10) with 18 levels (sigma_0 = 9.999995, sigma_1 = 7.3696, levels below
    0.05 from sigma_13 = 0.0347 on): capped churn (S_churn = 40) churns no level at sigma_0, sigma_1 only up to
    sigma_0 (eta = sigma_0 / sigma_1 - 1 = 0.357), the 16 others at the cap sqrt(2) - 1; EDM's per-level amount
    (S_churn = 40 * 18/256 on [0.05, 50]) churns with eta = 0.15625 the levels sigma_1, ..., sigma_12; the levels
    it calls churned are the hand loop's (edm_sampler's rule)."""
    sigmas = sg.samplers.sigma_schedule(VE, 18)
    top = VE.max_noise_level()
    cap = sg.samplers.churn_etas(sigmas, 40.0, top=top)
    assert cap.shape == (18,) and cap[0] == 0
    assert cap[1].item() == pytest.approx(top / 7.369580829996657 - 1, rel=1e-9) and 0.35 < cap[1] < 0.36
    torch.testing.assert_close(cap[2:], torch.full((16,), math.sqrt(2) - 1, dtype=torch.float64))
    per = sg.samplers.churn_etas(sigmas, 40.0 * 18 / 256, 0.05, 50.0)
    assert per.nonzero().flatten().tolist() == list(range(1, 13))
    torch.testing.assert_close(per[1:13], torch.full((12,), 0.15625, dtype=torch.float64))
    assert sg.samplers.churn_etas(sigmas[:-1], 40.0).equal(cap)          # with or without the trailing 0
    for churn, lo, hi in ((40.0, 0.0, float("inf")), (2.8125, 0.05, 50.0), (2.0, 0.2, 3.0)):
        ring = sg.densities.ring(dtype=torch.float64)
        z = torch.zeros(2, 2, dtype=torch.float64)
        _, churned, _ = _hand_loop(VE, sg.sde.denoiser(VE, SDEMarginal(ring, VE).score), z, 18, churn, lo, hi, 1.0, 0)
        assert sg.samplers.churn_etas(sigmas, churn, lo, hi, top=top).nonzero().flatten().tolist() == churned
    with pytest.raises(ValueError, match="positive levels"):
        sg.samplers.churn_etas(torch.tensor([1.0, -1.0]), 1.0)


# --- the benchmark's reading (sg.results, notebook 08 section 5) ------------------------------------------------

def test_em_speedup_known_values_and_synthetic_runs():
    """Committed run 3: Heun-18 with capped churn 12.40, EM-100 13.45 (within 10 %), EM-500 16.51: the baseline is
    EM-100, 100 / 35 evaluations. Run 1: churn 27.03 beats every EM row (EM-100 37.56, EM-500 36.39): no EM reaches
    it, and the baseline is EM's plateau, the cheapest EM within 10 % of the best EM (EM-100). Synthetic rows check
    the ordering by cost and the tolerance."""
    from scoregen_lite import results

    runs = results.fast_runs()
    r3 = results.em_speedup(runs["fast_sampling_cpu_run3"])
    assert r3["reach"]["label"] == "Euler-Maruyama, 100 steps" and r3["nfe_ratio"] == pytest.approx(100 / 35)
    assert r3["seconds_ratio"] == pytest.approx(52.9 / 17.8, rel=0.01)
    r1 = results.em_speedup(runs["fast_sampling_cpu_run1"])
    assert r1["reach"] is None and r1["best_em"]["n_steps"] == 500 and r1["baseline"]["n_steps"] == 100
    em = lambda n, fd: {"label": f"EM {n}", "sampler": "em", "nfe": n, "seconds": n / 10, "frechet": fd}  # noqa: E731
    run = {"rows": [em(200, 10.0), em(50, 30.0), em(100, 11.5), em(500, 10.5),
                    {"label": "H", "sampler": "edm", "nfe": 35, "seconds": 3.5, "frechet": 10.6}]}
    got = results.em_speedup(run, label="H")
    assert got["reach"]["nfe"] == 100 and got["nfe_ratio"] == pytest.approx(100 / 35)     # 11.5 <= 1.1 * 10.6
    assert results.em_speedup(run, label="H", tol=0.05)["reach"]["nfe"] == 200           # 11.5 > 1.05 * 10.6
    run["rows"][-1]["frechet"] = 5.0
    low = results.em_speedup(run, label="H")
    assert low["reach"] is None and low["plateau"]["nfe"] == 200 and low["baseline"]["nfe"] == 200   # 11.5 > 1.1 * 10
