"""Part 6 (notebook 08): the Karras schedule, the noise-level view of the SDEs, the denoiser, and the
samplers in sigma (EDM's Heun/Euler, DPM-Solver++(2M)), checked against exact answers."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.core.densities import SDEMarginal

SDES = {"VE": sg.sde.VESDE(0.01, 10.0), "VP": sg.sde.VPSDE(), "sub-VP": sg.sde.SubVPSDE()}


# --- schedule -----------------------------------------------------------------------------------

def test_karras_sigmas_formula_and_limits():
    sig = sg.schedules.karras_sigmas(80.0, 0.002, 5, rho=7.0, dtype=torch.float64)
    # by hand: sigma_i = (80^(1/7) + (i/4) (0.002^(1/7) - 80^(1/7)))^7
    hand = [(80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(5)]
    assert torch.allclose(sig, torch.tensor(hand, dtype=torch.float64), rtol=1e-12)
    # the middle level: ((1.8704 + 0.4116) / 2)^7 = 1.1410^7 = 2.5152 (80^(1/7) = 1.8704, 0.002^(1/7) = 0.4116)
    assert sig[2].item() == pytest.approx(2.5152, rel=1e-3)
    assert sig.dtype == torch.float64 and len(sig) == 5 and (sig[:-1] > sig[1:]).all()
    # rho = 1 is uniform in sigma; large rho approaches the geometric ladder of NCSN
    assert torch.allclose(sg.schedules.karras_sigmas(10.0, 0.1, 7, rho=1.0, dtype=torch.float64),
                          sg.schedules.linear_sigmas(10.0, 0.1, 7, dtype=torch.float64), rtol=1e-12)
    geo = sg.schedules.geometric_sigmas(10.0, 0.1, 7, dtype=torch.float64)
    gaps = [(sg.schedules.karras_sigmas(10.0, 0.1, 7, rho=r, dtype=torch.float64) / geo - 1).abs().max().item()
            for r in (3.0, 30.0, 3000.0)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3 and gaps[0] > 0.1


@pytest.mark.parametrize("args, err, match", [
    ((10.0, 0.1, 1), ValueError, "n_steps=1"),
    ((10.0, 0.1, 2.5), TypeError, "n_steps"),
    ((0.1, 10.0, 5), ValueError, "sigma_max=0.1 must be larger"),
    ((10.0, 0.0, 5), ValueError, "sigma_min=0.0"),
    ((float("nan"), 0.1, 5), ValueError, "sigma_max=nan"),
])
def test_karras_sigmas_validation(args, err, match):
    with pytest.raises(err, match=match):
        sg.schedules.karras_sigmas(*args)
    with pytest.raises(ValueError, match="rho=0.0"):
        sg.schedules.karras_sigmas(10.0, 0.1, 5, rho=0.0)


# --- the noise-level view and the denoiser --------------------------------------------------------

@pytest.mark.parametrize("name", list(SDES))
def test_sigma_of_t_and_its_inverse(name):
    sde = SDES[name]
    t = torch.linspace(1e-4, 1.0, 50, dtype=torch.float64)
    alpha, std = sde.marginal_coeffs(t)
    sig = sde.sigma_of_t(t)
    assert torch.allclose(sig, std / alpha) and (sig[1:] > sig[:-1]).all()
    assert torch.allclose(sde.t_of_sigma(sig), t, rtol=1e-10, atol=1e-12)
    top = sde.sigma_of_t(1.0).item()
    with pytest.raises(ValueError, match=r"outside \[0, "):
        sde.t_of_sigma(top * 1.01)
    with pytest.raises(ValueError, match="outside"):
        sde.t_of_sigma(-0.1)


def test_sigma_of_t_known_values():
    ve, vp = SDES["VE"], SDES["VP"]
    # VE: alpha = 1, sigma(t) = std_t = sqrt(sigma_min^2 ((smax/smin)^(2t) - 1))
    assert ve.sigma_of_t(0.5).item() == pytest.approx(math.sqrt(0.01**2 * (1000.0 - 1)), rel=1e-5)
    # VP at t = 1: log alpha = -(beta_max - beta_min)/4 - beta_min/2 = -5.025, sigma = sqrt(exp(10.05) - 1)
    assert vp.sigma_of_t(1.0).item() == pytest.approx(math.sqrt(math.exp(10.05) - 1), rel=1e-5)


@pytest.mark.parametrize("name", list(SDES))
def test_denoiser_is_the_posterior_mean_for_a_gaussian(name):
    """Data N(m, s0^2 I): D(x; sigma) = (s0^2 x + sigma^2 m) / (s0^2 + sigma^2), exactly (Tweedie)."""
    sde, m, s0 = SDES[name], torch.tensor([1.0, -2.0], dtype=torch.float64), 0.7

    def score(x, t):   # the exact score of the SDE's marginal at t
        a, std = (v[:, None] for v in sde.marginal_coeffs(t))
        return -(x - a * m) / (a**2 * s0**2 + std**2)

    D = sg.sde.denoiser(sde, score)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    for sigma in (0.05, 0.7, 5.0):
        expected = (s0**2 * x + sigma**2 * m) / (s0**2 + sigma**2)
        assert torch.allclose(D(x, sigma), expected, rtol=1e-6, atol=1e-8)
    per_row = torch.linspace(0.1, 3.0, 64, dtype=torch.float64)          # one sigma per row
    expected = (s0**2 * x + per_row[:, None] ** 2 * m) / (s0**2 + per_row[:, None] ** 2)
    assert torch.allclose(D(x, per_row), expected, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="sigma > 0"):
        D(x, 0.0)


# --- convergence order with an exact score --------------------------------------------------------

def _gaussian_case(sde, s0=0.5):
    def score(x, t):
        a, std = (v[:, None] for v in sde.marginal_coeffs(t))
        return -x / (a**2 * s0**2 + std**2)

    def exact(z, sigmas):
        """The exact flow from sigma_max * z to sigma_min, then the sampler's own last step to 0 (x -> D)."""
        smax, smin = float(sigmas[0]), float(sigmas[-2])
        x_min = smax * z * math.sqrt(s0**2 + smin**2) / math.sqrt(s0**2 + smax**2)
        return x_min * s0**2 / (s0**2 + smin**2)
    return score, exact


def _errors(sde, method, ns, solver="heun"):
    score, exact = _gaussian_case(sde)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errs = []
    for n in ns:
        if method == "edm":
            x, _ = sg.samplers.edm_sampler(sde, score, None, n, noise=z, solver=solver, dtype=torch.float64)
        else:
            x, _ = sg.samplers.dpm_solver_2m(sde, score, None, n, noise=z, dtype=torch.float64)
        errs.append((x - exact(z, sg.samplers.sigma_schedule(sde, n))).abs().mean().item())
    return errs


@pytest.mark.parametrize("name", ["VE", "VP"])
def test_convergence_order_euler_heun_dpm(name):
    """Doubling N divides the error by about 2 (Euler, first order) or 4 (Heun, DPM-Solver++(2M)).
    Measured ratios at N = 32 -> 64: Euler 2.00 / 1.99, Heun 4.1-4.3, DPM 4.2-4.4 (VE / VP)."""
    sde = SDES[name]
    e = _errors(sde, "edm", [32, 64], solver="euler")
    h = _errors(sde, "edm", [32, 64])
    d = _errors(sde, "dpm", [32, 64])
    assert 1.8 < e[0] / e[1] < 2.2
    assert 3.6 < h[0] / h[1] < 4.8
    assert 3.6 < d[0] / d[1] < 4.8
    assert h[1] < e[1] / 10 and d[1] < e[1] / 10


# --- the target reached, with moments --------------------------------------------------------------

@pytest.mark.parametrize("name", ["VE", "VP"])
def test_edm_and_dpm_reach_the_ring_with_exact_scores(name):
    """Energy distance at the noise floor (mean 0.001, std 0.002 for 4000 vs 4000) and moments within 4
    standard errors. Measured max |z|: Heun-40 1.5-1.7, DPM-40 1.6-2.2, churn 2.1; Euler-40 4.3-5.3 fails."""
    sde, p = SDES[name], sg.densities.ring()
    score = SDEMarginal(p, sde).score
    g = torch.Generator().manual_seed(0)
    ref = p.sample(4000, generator=g)
    runs = {"heun": sg.samplers.edm_sampler(sde, score, (4000, 2), 40, generator=g),
            "dpm": sg.samplers.dpm_solver_2m(sde, score, (4000, 2), 40, generator=g)}
    if name == "VE":
        runs["churn"] = sg.samplers.edm_sampler(sde, score, (4000, 2), 40, churn=10.0, generator=g)
    for label, (x, nfe) in runs.items():
        assert sg.metrics.energy_distance(x, ref) < 0.008, label
        assert sg.metrics.moment_z(x, p)["max"] < 4, label
        assert (p.mode_weights(x) - p.weights).abs().max() < 0.03, label
    assert runs["heun"][1] == 2 * 40 - 1 and runs["dpm"][1] == 40


def test_nfe_determinism_and_churn():
    sde = SDES["VE"]
    score, _ = _gaussian_case(sde)
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    a, nfe_h = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, generator=torch.Generator().manual_seed(2))
    b, _ = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, generator=torch.Generator().manual_seed(3))
    assert nfe_h == 19 and torch.equal(a, b)                       # churn = 0: deterministic given the noise
    _, nfe_e = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, solver="euler")
    assert nfe_e == 10
    c, nfe_c = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, churn=5.0,
                                       generator=torch.Generator().manual_seed(2))
    d, _ = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, churn=5.0,
                                   generator=torch.Generator().manual_seed(3))
    assert nfe_c == 19 and not torch.allclose(c, d) and not torch.allclose(a, c)
    # s_tmin/s_tmax outside every level: no churn at all
    e, _ = sg.samplers.edm_sampler(sde, score, None, 10, noise=z, churn=5.0, s_tmin=100.0, s_tmax=200.0)
    assert torch.equal(e, a)


# --- one step by hand: the formulas, not only their order ---------------------------------------------

def _linear_denoiser(s0=0.5):
    """D(x; sigma) = s0^2 / (s0^2 + sigma^2) x: the exact denoiser of N(0, s0^2 I) data."""
    return lambda x, sigma: x * s0**2 / (s0**2 + sigma**2)


@pytest.mark.parametrize("name", ["VE", "VP"])
@pytest.mark.parametrize("churn", [1.0, 2.5])
def test_edm_churn_below_the_cap_by_hand(name, churn):
    """gamma = S_churn / N while it is below sqrt(2) - 1 (N = 10: churn 1 -> 0.1, 2.5 -> 0.25), here with
    S_noise = 0 so the step is deterministic: sigma^ = (1 + gamma) sigma_i, Heun from sigma^ to sigma_{i+1}
    (Karras et al. 2022, Algorithm 2), computed by hand with the closed-form denoiser."""
    sde, n = SDES[name], 10
    score, _ = _gaussian_case(sde)
    D = _linear_denoiser()
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got, _ = sg.samplers.edm_sampler(sde, score, None, n, noise=z, churn=churn, s_noise=0.0, dtype=torch.float64)
    sigmas = [float(s) for s in sg.samplers.sigma_schedule(sde, n)]
    gamma = churn / n
    assert gamma < math.sqrt(2) - 1
    x = sigmas[0] * z
    for i in range(n):
        s_hat = min((1 + gamma) * sigmas[i], sde.max_noise_level())
        d = (x - D(x, s_hat)) / s_hat
        x_next = x + (sigmas[i + 1] - s_hat) * d
        if sigmas[i + 1] > 0:
            d2 = (x_next - D(x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + (sigmas[i + 1] - s_hat) * (d + d2) / 2
        x = x_next
    torch.testing.assert_close(got, x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["VE", "VP"])
def test_dpm_solver_2m_by_hand(name):
    """DPM-Solver++(2M) step by step (Lu et al. 2022, Algorithm 2): r = h_{i-1} / h_i,
    D~ = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, x' = (sigma'/sigma) x - expm1(-h) D~; first step DDIM, last x' = D."""
    sde, n = SDES[name], 8
    score, _ = _gaussian_case(sde)
    D = _linear_denoiser()
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got, _ = sg.samplers.dpm_solver_2m(sde, score, None, n, noise=z, rho=3.0, dtype=torch.float64)
    sig = [float(s) for s in sg.samplers.sigma_schedule(sde, n, rho=3.0)]
    x, prev, h_prev = sig[0] * z, None, None
    for i in range(n):
        den = D(x, sig[i])
        if sig[i + 1] == 0:
            x = den
            break
        h = math.log(sig[i] / sig[i + 1])
        if prev is None:
            d_eff = den
        else:
            r = h_prev / h
            d_eff = (1 + 1 / (2 * r)) * den - 1 / (2 * r) * prev
        x = sig[i + 1] / sig[i] * x + (1 - sig[i + 1] / sig[i]) * d_eff
        prev, h_prev = den, h
    torch.testing.assert_close(got, x, rtol=1e-6, atol=1e-8)


def test_image_shape_with_a_dummy_score():
    sde = sg.sde.VESDE.tutorial()

    def score(x, t):
        assert x.shape == (3, 1, 28, 28) and t.shape == (3,)
        return -x / (1.0 + sde.marginal_coeffs(t, check=False)[1][:, None, None, None] ** 2)

    g = torch.Generator().manual_seed(0)
    for fn in (sg.samplers.edm_sampler, sg.samplers.dpm_solver_2m):
        x, nfe = fn(sde, score, (3, 1, 28, 28), 6, generator=g)
        assert x.shape == (3, 1, 28, 28) and torch.isfinite(x).all() and nfe in (6, 11)


def test_fast_sampler_validation():
    sde = SDES["VE"]
    score = SDEMarginal(sg.densities.ring(), sde).score
    with pytest.raises(ValueError, match="solver='rk4'"):
        sg.samplers.edm_sampler(sde, score, (4, 2), solver="rk4")
    with pytest.raises(ValueError, match="sigma_max=50.0 is above the largest noise level"):
        sg.samplers.edm_sampler(sde, score, (4, 2), sigma_max=50.0)
    with pytest.raises(ValueError, match="n_steps=1"):
        sg.samplers.dpm_solver_2m(sde, score, (4, 2), 1)
    with pytest.raises(ValueError, match="churn=-1"):
        sg.samplers.edm_sampler(sde, score, (4, 2), churn=-1.0)
    for sampler in ("dpm", "em"):   # churn would be ignored: said, not silently dropped
        with pytest.raises(ValueError, match="churn=5.0 is EDM's S_churn"):
            sg.samplers.sample_batched(score, sde, 4, (2,), sampler=sampler, n_steps=5, churn=5.0, device="cpu")
    with pytest.raises(ValueError, match="s_tmax=0.5 must be a number larger than s_tmin=1.0"):
        sg.samplers.edm_sampler(sde, score, (4, 2), s_tmin=1.0, s_tmax=0.5)
    with pytest.raises(ValueError, match=r"score_fn returned \(4,\)"):
        sg.samplers.edm_sampler(sde, lambda x, t: t, (4, 2))
    with pytest.raises(TypeError, match="must be callable"):
        sg.samplers.dpm_solver_2m(sde, None, (4, 2))
    with pytest.raises(ValueError, match="sampler='heun'"):
        sg.samplers.sample_batched(score, sde, 4, (2,), sampler="heun")


@pytest.mark.parametrize("sampler, nfe", [("edm", 2 * 8 - 1), ("dpm", 8)])
def test_sample_batched_fast_samplers(sampler, nfe):
    sde = SDES["VP"]
    p = sg.densities.ring()
    x, got, seconds = sg.samplers.sample_batched(SDEMarginal(p, sde).score, sde, 300, (2,), sampler=sampler,
                                                 n_steps=8, batch_size=128, device="cpu",
                                                 generator=torch.Generator().manual_seed(0))
    assert x.shape == (300, 2) and got == nfe and seconds > 0
    assert (p.mode_weights(x) - p.weights).abs().max() < 0.1


# --- the committed benchmark tables (sg.results, notebook 08 section 5) ---------------------------------------

def test_fast_row_label_names_the_churn_applied():
    """Rows of EDM's sampler with churn say what eta they apply: at the cap sqrt(2) - 1 (S_churn / N above it) with
    no window, at the cap in a window (run 4's S_churn = 40 on [0.05, 50]), or below it (run 5's 40 * 18 / 256 = 2.8125
    on 18 levels: eta = 0.15625); other rows keep their label."""
    from scoregen_lite.courseware.results import fast_row_label

    row = dict(label="EDM Heun, 18 levels, churn 40", sampler="edm", n_steps=18, churn=40.0)
    assert fast_row_label(row) == "EDM Heun, 18 levels, churn 40 (eta at its cap sqrt(2) - 1, no window)"
    assert fast_row_label({**row, "s_tmin": 0.05, "s_tmax": 50.0}).endswith("(eta at its cap sqrt(2) - 1, only in "
                                                                             "the window)")
    per = dict(label="x", sampler="edm", n_steps=18, churn=2.8125, s_tmin=0.05, s_tmax=50.0)
    assert fast_row_label(per) == "x (eta = 0.156, below the cap, only in the window)"
    assert fast_row_label({**row, "churn": 0.0}) == row["label"]
    assert fast_row_label(dict(label="EM", sampler="em", n_steps=100)) == "EM"


def test_fast_sampling_table_footer_uses_the_fair_baseline():
    """The classic runs' footers give the speed-up of Heun-18 with capped churn against sg.results.em_speedup's
    baseline, not EM-500's 14x: run 3 (churn 12.40, EM-100 13.45 reaches it): 100 / 35 = 2.9x fewer evaluations,
    52.9 / 17.8 = 3.0x less time, Frechet ratio to EM-500 12.40 / 16.51 = 0.75; run 1 (churn better than every EM):
    the baseline is EM's plateau, EM-100."""
    table = sg.results.fast_sampling_table()
    run3 = table[table.index("`fast_sampling_cpu_run3`"):]
    assert ("Frechet ratio to EM-500 0.75; reached by Euler-Maruyama, 100 steps, the cheapest EM within 10% of it: "
            "2.9x fewer evaluations, 3.0x less time") in run3
    run1 = table[:table.index("`fast_sampling_cpu_run2`")]
    assert "better than every EM row; baseline Euler-Maruyama, 100 steps" in run1
    assert "x faster" not in table and "(eta at its cap sqrt(2) - 1, no window)" in table


def test_guidance_table_names_capped_churn():
    """The guidance benchmark sampled with S_churn = 40 on 18 levels and no window: its heading says capped churn."""
    table = sg.results.guidance_table()
    assert "EDM Heun-18 with churn 40 capped at every level (eta = sqrt(2) - 1, no window)" in table


def test_guidance_table_names_churn_below_the_cap(tmp_path):
    """A guidance run with S_churn = 2 on 18 levels (eta = 0.111, below the cap) is not called capped."""
    import json

    run = json.loads((sg.artifacts.results_dir() / "guidance_cpu_run1.json").read_text())
    run["sampler"] = {"sampler": "edm", "n_steps": 18, "churn": 2.0}
    (tmp_path / "guidance_cpu_run1.json").write_text(json.dumps(run))
    table = sg.results.guidance_table(tmp_path)
    assert "EDM Heun-18 with churn 2 (eta = 0.111, no window)" in table and "capped" not in table


def test_run5_per_level_churn_known_values():
    """Committed run 5 (benchmarks/fast_sampling_cpu.py --plan window): EDM's per-level churn (S_churn = 40 * 18/256 on
    [0.05, 50], S_noise 1.003) beside capped churn, deterministic Heun-18 and EM-100, 1,000 digits each, on the
    shipped checkpoint; sg.results.load_fast_window finds it (and not run 4), nfe_table renders it."""
    run = sg.results.load_fast_window()
    assert run["path"].name == "fast_sampling_cpu_run5.json" and run["plan"] == "window" and run["complete"]
    rows = {r["label"]: r for r in run["rows"]}
    per = rows["EDM Heun, 18 levels, churn 2.8125 on sigma in [0.05, 50], S_noise 1.003"]
    assert per["churn"] == 40 * 18 / 256 and per["s_tmin"] == 0.05 and per["s_tmax"] == 50.0 and per["nfe"] == 35
    assert [r["nfe"] for r in run["rows"]] == [35, 35, 35, 100] and run["n_samples"] == 1000
    cap, det = rows["EDM Heun, 18 levels, churn 40"], rows["EDM Heun, 18 levels (deterministic)"]
    em100 = rows["Euler-Maruyama, 100 steps"]
    assert per["frechet"] == pytest.approx(15.03, abs=0.01) and cap["frechet"] == pytest.approx(12.97, abs=0.01)
    assert det["frechet"] == pytest.approx(29.67, abs=0.01) and em100["frechet"] == pytest.approx(16.50, abs=0.01)
    run4 = {r["label"]: r for r in sg.results.load_fast_nfe()["rows"]}
    assert cap["frechet"] == run4[cap["label"]]["frechet"] and det["frechet"] == run4[det["label"]]["frechet"]  # same seeds
    speed = sg.results.em_speedup(run, label=per["label"])
    assert speed["reach"]["label"] == "Euler-Maruyama, 100 steps" and speed["nfe_ratio"] == pytest.approx(100 / 35)
    table = sg.results.nfe_table(run)
    assert "(eta = 0.156, below the cap, only in the window)" in table and "fast_sampling_cpu_run5.json" in table
    assert sg.results.load_fast_nfe()["path"].name == "fast_sampling_cpu_run4.json"
