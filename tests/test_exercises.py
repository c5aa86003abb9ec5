"""Exercise checks pass on solutions, fail on wrong answers; the stripper writes student copies."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

import scoregen_lite as sg
from scoregen_lite.courseware.copies import strip_source
from scoregen_lite.exercises import ExerciseFailed


def good_gmm_score(x, weights, means, covs):
    return sg.densities.GaussianMixture(weights, means, covs).score(x)


def naive_gmm_score(x, weights, means, covs):
    """Computes densities directly: underflows far from the modes."""
    diff = x[:, None, :] - means[None]
    prec_diff = torch.linalg.solve(covs[None], diff[..., None])[..., 0]
    dens = weights * torch.exp(-0.5 * (diff * prec_diff).sum(-1)) / torch.sqrt(torch.det(covs))
    resp = dens / dens.sum(1, keepdim=True)
    return -(resp[..., None] * prec_diff).sum(1)


def test_checks_pass_on_solutions(capsys):
    sg.exercises.check_gmm_score(good_gmm_score)
    sg.exercises.check_gaussian_score(lambda x, m, c: sg.densities.Gaussian(m, c).score(x))
    sg.exercises.check_langevin_step(lambda x, s, eps, z: x + eps / 2 * s + math.sqrt(eps) * z)
    sg.exercises.check_karras_sigmas(lambda a, b, n, r: sg.schedules.karras_sigmas(a, b, n, r, torch.float64))
    sg.exercises.check_heun_step(lambda x, s, sn, D: _heun(x, s, sn, lambda v, a: (v - D(v, a)) / a))
    sg.exercises.check_guided_score(lambda c, u, g: u + g * (c - u))
    sg.exercises.check_replacement_step(lambda x, k, m, a, s, z: torch.where(m.bool(), a * k + s * z, x))
    sg.exercises.check_edm_coefficients(
        lambda s, sd: sg.recipes.coefficients("edm", s, torch.ones_like(s), torch.zeros_like(s), sd))
    sg.exercises.check_preconditioned_score(lambda F, y, s, sd: sg.recipes.Preconditioned(
        lambda xi, c: F, sg.sde.VESDE(1e-4, 100.0), "edm", sd).forward(y, sg.sde.VESDE(1e-4, 100.0).t_of_sigma(s)))
    sg.exercises.check_em_sampler(lambda *a: _em_loop(*a))
    sg.exercises.check_dsm_loss(lambda *a: _dsm(*a))
    sg.exercises.check_train_step(lambda *a: _train(*a))
    sg.exercises.check_label_dropout_loss(lambda *a: _dropout(*a))
    assert capsys.readouterr().out.count("passed") == 13


def _heun(x, s, sn, slope, weight=0.5):
    d = slope(x, s)
    x_e = x + (sn - s) * d
    return x + (sn - s) * weight * (d + slope(x_e, sn))


def _inv(c):
    return torch.linalg.inv(c)


def prior_weight_gmm_score(x, weights, means, covs):
    """The classic slip: prior weights where the responsibilities belong."""
    diff = x[:, None, :] - means[None]
    comp = -torch.linalg.solve(covs[None], diff[..., None])[..., 0]
    return (weights[None, :, None] * comp).sum(1)


def _em(x, t, dt, s, sde, z, *, noise="sqrt", half=False, sign=-1):
    tv = torch.full((x.shape[0],), t, dtype=x.dtype)
    g = sde.diffusion(tv)[:, None]
    drift = sde.drift(x, tv) + sign * (0.5 if half else 1.0) * g**2 * s
    scale = {"sqrt": math.sqrt(-dt), "none": 1.0, "dt": -dt, "drop": 0.0}[noise]
    return x + drift * dt + g * scale * z


def _em_loop(sde, score_fn, x, n_steps, t_min, zs, *, last_noise=False, points=None, at_next=False, half=False):
    """The reverse-SDE sampler as a student writes it (and the catalogued slips)."""
    ts = torch.linspace(1.0, t_min, points or n_steps + 1, dtype=torch.float64)
    for k in range(len(ts) - 1):
        t, dt = float(ts[k]), float(ts[k + 1] - ts[k])
        tv = torch.full((x.shape[0],), float(ts[k + 1]) if at_next else t, dtype=x.dtype)
        g = sde.diffusion(torch.full((x.shape[0],), t, dtype=x.dtype))[:, None]
        x = x + (sde.drift(x, tv * 0 + t) - (0.5 if half else 1.0) * g**2 * score_fn(x, tv)) * dt
        if k < len(ts) - 2 or last_noise:
            x = x + g * math.sqrt(-dt) * zs[k]
    return x


def _em_in_dtype(sde, score_fn, x, n_steps, t_min, zs, *, dtype=torch.float32):
    """The sampler with its grid and its t_vec in ``dtype``: torch.linspace(1, t_min, n_steps + 1) and
    torch.full((n,), t) exactly as written, in torch's default float32 (or coarser, to test the near-miss message)."""
    ts = torch.linspace(1, t_min, n_steps + 1, dtype=dtype)
    for k in range(n_steps):
        t, dt = ts[k].item(), (ts[k + 1] - ts[k]).item()
        t_vec = torch.full((x.shape[0],), t, dtype=dtype)
        g = sde.diffusion(t_vec)[:, None]
        x = x + (sde.drift(x, t_vec) - g**2 * score_fn(x, t_vec)) * dt
        if k < n_steps - 1:
            x = x + g * math.sqrt(-dt) * zs[k]
    return x


def test_em_sampler_accepts_float32_times(capsys):
    """The text's grid, torch.linspace(1, t_min, n_steps + 1), is float32: a correct loop built on it passes."""
    sg.exercises.check_em_sampler(_em_in_dtype)
    assert "passed" in capsys.readouterr().out


def test_em_sampler_near_miss_prints_digits_that_differ():
    """Times rounded to float16 (a precision slip, not a wrong formula): the message says so and prints the expected
    and received values with enough digits to differ (4 significant digits printed them equal)."""
    with pytest.raises(ExerciseFailed) as info:
        sg.exercises.check_em_sampler(lambda *a: _em_in_dtype(*a, dtype=torch.float16))
    msg = str(info.value)
    assert "almost right" in msg and "precision, not from the formula" in msg
    expected, got = msg.split("expected ")[1].split(", got ")
    assert expected.split(")")[0] != got.split(")")[0]


def _em_over_end_times(sde, score_fn, x, n_steps, t_min, zs):
    """A new user's loop over ts[1:]: every term of step k (drift, g, score) at its end time t_{k+1}."""
    ts = torch.linspace(1.0, t_min, n_steps + 1, dtype=torch.float64)
    for k, t in enumerate(ts[1:]):
        dt = float(t - ts[k])
        t_vec = torch.full((x.shape[0],), float(t), dtype=x.dtype)
        g = sde.diffusion(t_vec)[:, None]
        x = x + (sde.drift(x, t_vec) - g**2 * score_fn(x, t_vec)) * dt
        if k < n_steps - 1:
            x = x + g * math.sqrt(-dt) * zs[k]
    return x


def _em_slip(sde, score_fn, x, n_steps, t_min, zs, *, g_score_end=False, skip_first=False, next_z=False,
             forward=False, noise="sqrt"):
    """More slips in the loop, each written as a student would."""
    ts = torch.linspace(1.0, t_min, n_steps + 1, dtype=torch.float64).tolist()
    for k in range(n_steps):
        t, t_next = ts[k], ts[k + 1]
        dt = (t - t_next) if forward else (t_next - t)          # forward: a positive dt
        start = torch.full((x.shape[0],), t, dtype=x.dtype)
        end = torch.full((x.shape[0],), t_next, dtype=x.dtype)
        g = sde.diffusion(end if g_score_end else start)[:, None]
        x = x + (sde.drift(x, start) - g**2 * score_fn(x, end if g_score_end else start)) * dt
        if (k > 0) if skip_first else (k < n_steps - 1):
            if noise == "sqrt":
                x = x + g * math.sqrt(abs(dt)) * zs[k + 1 if next_z else k]
            elif noise == "dt":
                x = x + g * abs(dt) * zs[k]
    return x


def _dsm(net, x0, sde, t, z, *, weighted=True, sign=1, alpha=True, reduce="sum", half=False):
    a, std = (v[:, None] for v in sde.marginal_coeffs(t))
    xt = (a if alpha else 1.0) * x0 + std * z
    s = net(xt, t)
    r = (std * s + sign * z) if weighted else (s + z / std)
    loss = r.pow(2).sum(1).mean() if reduce == "sum" else r.pow(2).mean()
    return 0.5 * loss if half else loss


def _dropout(net, sde, x0, y, t, z, drop, *, null="null", invert=False, remove=False, weighted=True):
    """eq. (8) with label dropout as a student writes it (and the catalogued slips)."""
    a, std = (v[:, None] for v in sde.marginal_coeffs(t))
    xt = a * x0 + std * z
    mask = ~drop if invert else drop
    if null is not None:
        y = torch.where(mask, torch.full_like(y, net.null_label if null == "null" else null), y)
    if remove:
        keep = ~drop
        xt, t, y, z, std = xt[keep], t[keep], y[keep], z[keep], std[keep]
    s = net(xt, t, y)
    return ((std * s + z) if weighted else (s + z / std)).pow(2).sum(1).mean()


def _train(net, opt, loss_fn, max_norm, *, zero=True, clip="before", step=True, as_float=True):
    """One training step as a student writes it (and the catalogued slips)."""
    if zero:
        opt.zero_grad()
    loss = loss_fn(net)
    loss.backward()
    if clip == "before":
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    if step:
        opt.step()
    if clip == "after":
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    return loss.item() if as_float else loss


def _ve(t, smin, smax, kind):
    sig = smin * (smax / smin) ** t
    return {"var": sig**2 - smin**2, "sigma": sig, "diff": sig - smin}[kind]


def _edm(sigma, sd, skip=None, out=None, cin=None, noise=None):
    r2 = sigma**2 + sd**2
    return (skip(r2) if skip else sd**2 / r2, out(r2) if out else sigma * sd / r2.sqrt(),
            cin(r2) if cin else 1 / r2.sqrt(), noise if noise is not None else sigma.log() / 4)


def _pre_score(F, y, sigma, sd, kind="good"):
    s = sigma[:, None]
    r2 = s**2 + sd**2
    D = {"good": sd**2 / r2 * y + s * sd / r2.sqrt() * F, "noskip": s * sd / r2.sqrt() * F, "raw": F}
    d = D["noskip" if kind == "noskip" else "raw" if kind == "raw" else "good"]
    return {"sign": (y - d) / s**2, "sigma": (d - y) / s}.get(kind, (d - y) / s**2)


# (check, a wrong answer as a student would write it, the words only its hint contains)
CATALOGUE = [
    ("check_edm_coefficients", lambda s, sd: _edm(s, sd, skip=lambda r2: sd / r2), "data's variance"),
    ("check_edm_coefficients", lambda s, sd: _edm(s, sd, skip=lambda r2: s**2 / r2), "go to 1 as sigma -> 0"),
    ("check_edm_coefficients", lambda s, sd: _edm(s, sd, out=lambda r2: s * sd / r2), "a standard deviation"),
    ("check_edm_coefficients", lambda s, sd: _edm(s, sd, cin=lambda r2: 1 / r2), "not its variance"),
    ("check_edm_coefficients", lambda s, sd: _edm(s, sd, noise=s.log()), "ln(sigma) / 4"),
    ("check_preconditioned_score", lambda F, y, s, sd: _pre_score(F, y, s, sd, "sign"), "the sign"),
    ("check_preconditioned_score", lambda F, y, s, sd: _pre_score(F, y, s, sd, "sigma"), "not by sigma"),
    ("check_preconditioned_score", lambda F, y, s, sd: _pre_score(F, y, s, sd, "noskip"), "skip connection"),
    ("check_preconditioned_score", lambda F, y, s, sd: _pre_score(F, y, s, sd, "raw"), "raw network's output"),
    ("check_guided_score", lambda c, u, g: (1 + g) * c - g * u, "Ho & Salimans'"),
    ("check_guided_score", lambda c, u, g: g * (c - u), "only the guidance direction"),
    ("check_guided_score", lambda c, u, g: u + g * (u - c), "points the wrong way"),
    ("check_guided_score", lambda c, u, g: g * c, "unconditional score is missing"),
    ("check_replacement_step", lambda x, k, m, a, s, z: m * k + (1 - m) * x, "look like a sample at time t"),
    ("check_replacement_step", lambda x, k, m, a, s, z: m * (k + s * z) + (1 - m) * x, "not scaled by alpha_t"),
    ("check_replacement_step", lambda x, k, m, a, s, z: (1 - m) * (a * k + s * z) + m * x, "wrong way round"),
    ("check_replacement_step", lambda x, k, m, a, s, z: m * (a * k + s**2 * z) + (1 - m) * x, "variance"),
    ("check_karras_sigmas", lambda a, b, n, r: torch.tensor(
        [(a**r + i / (n - 1) * (b**r - a**r)) ** (1 / r) for i in range(n)], dtype=torch.float64), "powers are swapped"),
    ("check_karras_sigmas", lambda a, b, n, r: torch.tensor(
        [(a ** (1 / r) + i / n * (b ** (1 / r) - a ** (1 / r))) ** r for i in range(n)], dtype=torch.float64),
     "i/(N-1), not i/N"),
    ("check_karras_sigmas", lambda a, b, n, r: sg.schedules.karras_sigmas(a, b, n, r, torch.float64).flip(0),
     "runs from sigma_max down"),
    ("check_karras_sigmas", lambda a, b, n, r: torch.linspace(a, b, n, dtype=torch.float64), "uniform in sigma"),
    ("check_heun_step", lambda x, s, sn, D: x + (sn - s) * (x - D(x, s)) / s, "that is Euler's step"),
    ("check_heun_step", lambda x, s, sn, D: _heun(x, s, sn, lambda v, a: (D(v, a) - v) / a), "wrong sign"),
    ("check_heun_step", lambda x, s, sn, D: x + (sn - s) * ((x - D(x, s)) / s + (x - D(x, sn)) / sn) / 2,
     "second slope is taken at x"),
    ("check_heun_step", lambda x, s, sn, D: _heun(x, s, sn, lambda v, a: (v - D(v, a)) / a, weight=1.0),
     "slopes are added"),
    ("check_gaussian_score", lambda x, m, c: (x - m) @ _inv(c).T, "sign is flipped"),
    ("check_gaussian_score", lambda x, m, c: -(x - m) @ c.T, "Sigma appears where its inverse belongs"),
    ("check_gaussian_score", lambda x, m, c: -(x - m), "covariance is missing"),
    ("check_gmm_score", naive_gmm_score, "log-sum-exp"),
    ("check_gmm_score", prior_weight_gmm_score, "weights must depend on x"),
    ("check_gmm_score", lambda x, w, m, c: -good_gmm_score(x, w, m, c), "each component pulls x towards its mean"),
    ("check_langevin_step", lambda x, s, eps, z: x + eps * s + math.sqrt(eps) * z, "score term is eps * score"),
    ("check_langevin_step", lambda x, s, eps, z: x + eps / 2 * s + eps * z, "the noise is eps * z"),
    ("check_langevin_step", lambda x, s, eps, z: x + eps / 2 * s + math.sqrt(2 * eps) * z, "NCSN code's"),
    ("check_langevin_step", lambda x, s, eps, z: x + eps / 2 * s, "gradient ascent"),
    ("check_dsm_target", lambda xt, x, sigma: (xt - x) / sigma**2, "points from the noisy point back"),
    ("check_dsm_target", lambda xt, x, sigma: -(xt - x) / sigma, "divides by sigma^2"),
    ("check_dsm_target", lambda xt, x, sigma: (xt - x) / sigma, "that is the noise z"),
    ("check_sigma_max", lambda x: torch.pdist(x.double()).mean(), "mean pairwise distance"),
    ("check_sigma_max", lambda x: x.norm(dim=1).max(), "distance from the origin"),
    ("check_sigma_max", lambda x: (x.max(0).values - x.min(0).values).max(), "range of one coordinate"),
    ("check_step_sizes", lambda sig, eps: eps * sig / sig[-1], "is not squared"),
    ("check_step_sizes", lambda sig, eps: eps * sig[-1] ** 2 / sig**2, "upside down"),
    ("check_step_sizes", lambda sig, eps: eps * sig**2 / sig[0] ** 2, "reference level is sigma_1"),
    ("check_em_step", lambda *a: _em(*a, noise="none"), "the noise is g z"),
    ("check_em_step", lambda *a: _em(*a, noise="dt"), "scaled by |dt|"),
    ("check_em_step", lambda *a: _em(*a, half=True), "probability-flow ODE's"),
    ("check_em_step", lambda *a: _em(*a, sign=+1), "wrong sign"),
    ("check_em_step", lambda *a: _em(*a, noise="drop"), "noise term is missing"),
    ("check_em_sampler", lambda *a: _em_loop(*a, last_noise=True), "the last step adds noise"),
    ("check_em_sampler", lambda *a: _em_loop(*a, points=a[3]), "so n_steps - 1 steps"),
    ("check_em_sampler", lambda *a: _em_loop(*a, at_next=True), "step's end time"),
    ("check_em_sampler", lambda *a: _em_loop(*a, half=True), "probability-flow ODE's"),
    ("check_em_sampler", _em_over_end_times, "every term of the step is evaluated at its end time"),
    ("check_em_sampler", lambda *a: _em_slip(*a, g_score_end=True), "g and the score are taken at t_{k+1}"),
    ("check_em_sampler", lambda *a: _em_slip(*a, skip_first=True), "left out of the first step instead"),
    ("check_em_sampler", lambda *a: _em_slip(*a, next_z=True), "step k uses zs[k + 1]"),
    ("check_em_sampler", lambda *a: _em_slip(*a, forward=True), "forwards in time"),
    ("check_em_sampler", lambda *a: _em_slip(*a, noise="dt"), "the noise is scaled by |dt|"),
    ("check_em_sampler", lambda *a: _em_slip(*a, noise="none"), "no step adds noise"),
    ("check_train_step", lambda *a: _train(*a, zero=False), "never cleared"),
    ("check_train_step", lambda *a: _train(*a, clip=None), "unclipped gradients"),
    ("check_train_step", lambda *a: _train(*a, clip="after"), "unclipped gradients"),
    ("check_train_step", lambda *a: _train(*a, step=False), "never change"),
    ("check_label_dropout_loss", lambda *a: _dropout(*a, null=None), "no label was dropped"),
    ("check_label_dropout_loss", lambda *a: _dropout(*a, invert=True), "the wrong way round"),
    ("check_label_dropout_loss", lambda *a: _dropout(*a, null=0), "label 0 is a real class"),
    ("check_label_dropout_loss", lambda *a: _dropout(*a, null=None, remove=True), "were removed"),
    ("check_label_dropout_loss", lambda *a: _dropout(*a, weighted=False), "with lambda = 1"),
    ("check_dsm_loss", lambda *a: _dsm(*a, weighted=False), "that is lambda = 1"),
    ("check_dsm_loss", lambda *a: _dsm(*a, sign=-1), "the sign"),
    ("check_dsm_loss", lambda *a: _dsm(*a, alpha=False), "kernel's mean"),
    ("check_dsm_loss", lambda *a: _dsm(*a, reduce="mean"), "divides by the dimension"),
    ("check_dsm_loss", lambda *a: _dsm(*a, half=True), "no factor 1/2"),
    ("check_ve_std", lambda t, a, b: _ve(t, a, b, "var"), "that is the variance"),
    ("check_ve_std", lambda t, a, b: _ve(t, a, b, "sigma"), "that is sigma(t) itself"),
    ("check_ve_std", lambda t, a, b: _ve(t, a, b, "diff"), "variances add"),
]


@pytest.mark.parametrize("check, wrong, key", CATALOGUE, ids=[f"{c[0]}-{c[2][:24]}" for c in CATALOGUE])
def test_each_catalogued_mistake_gets_its_own_hint(check, wrong, key):
    """A catalogued mistake, written as a student would, triggers its own hint and no other of that check's."""
    with pytest.raises(ExerciseFailed) as info:
        getattr(sg.exercises, check)(wrong)
    msg = str(info.value)
    assert key in msg, msg
    others = [k for c, _, k in CATALOGUE if c == check and k != key]
    assert not any(k in msg for k in others), msg
    assert "expected" in msg or "NaN" in msg      # the message names the input and the values there


def test_every_check_recognises_at_least_two_mistakes():
    checks = {c for c, _, _ in CATALOGUE} | {"check_hutchinson_trace"}
    # the checks of the whole-method exercises have their own test files (test_exercise_builds, _ncsn, _fast, _recipes,
    # _flow)
    elsewhere = {"check_langevin", "check_sliced_score_matching", "check_denoising_score_matching", "check_dsm_step",
                 "check_ncsn_loss", "check_annealed_langevin", "check_edm_heun_churn", "check_edm_loss",
                 "check_memorised_fraction", "check_cfm_loss", "check_euler_flow", "check_velocity_from_score"}
    assert checks == {n for n in sg.exercises.__all__ if n.startswith("check_")} - elsewhere
    assert all(sum(c == name for c, _, _ in CATALOGUE) >= 2 for name in checks - {"check_hutchinson_trace"})


def test_underflow_hint_names_the_far_point():
    with pytest.raises(ExerciseFailed, match=r"NaN/inf at \d+ points, all far from every mode \(e.g. at x = \(") as info:
        sg.exercises.check_gmm_score(naive_gmm_score)
    assert "from the nearest mean" in str(info.value)


@pytest.mark.parametrize(
    "check, wrong, match",
    [
        ("check_gmm_score", lambda x, w, m, c: x, r"rows are wrong; largest error .* at x = \(.*\): expected \("),
        ("check_gmm_score", lambda x, w, m, c: x.numpy(), "expected a torch.Tensor"),
        ("check_gaussian_score", lambda x, m, c: 2 * x, r"50 of 50 rows are wrong; largest error"),
        ("check_langevin_step", lambda x, s, eps, z: x[:3], "shape"),
        ("check_step_sizes", lambda sig, eps: eps + 0 * sig, r"at level \d+, sigma = .*: expected"),
        ("check_ve_std", lambda t, a, b: t, r"at t = .*: expected"),
        ("check_sigma_max", lambda x: 1.0, r"the value is wrong; largest error .* expected"),
    ],
)
def test_generic_message_says_where(check, wrong, match):
    """An answer outside the catalogue gets the generic message, with the input, the expected and the
    received value at the worst point."""
    with pytest.raises(ExerciseFailed, match=match):
        getattr(sg.exercises, check)(wrong)


def test_strip_source_keeps_indent_and_code():
    src = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n\nprint(2)\n"
    out = strip_source(src)
    assert out == ("def f(x):\n    y = 1\n    raise NotImplementedError(\"Exercise: replace this line with your solution\")\n"
                   "\nprint(2)\n")
    ns = {}
    exec(out.replace("print(2)", ""), ns)
    with pytest.raises(NotImplementedError):
        ns["f"](1)


@pytest.mark.parametrize("src, match", [("# BEGIN SOLUTION\nx", "never closed"), ("x\n# END SOLUTION\n", "without a matching"),
                                        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another")])
def test_strip_source_rejects_broken_markers(src, match):
    with pytest.raises(ValueError, match=match):
        strip_source(src)


def test_strip_cli_on_course_notebooks(tmp_path):
    """Student copies of every notebook: no solution left, every exercise stubbed, outputs cleared,
    and each stubbed exercise function raises NotImplementedError while the check fails on it."""
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.copies", "strip",
                          os.path.join(REPO, "notebooks"), str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    originals = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb"))
    assert sorted(os.listdir(tmp_path)) == originals
    n_exercises = 0
    for name in originals:
        nb = json.load(open(tmp_path / name))
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            assert "BEGIN SOLUTION" not in src and "END SOLUTION" not in src
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None
            n_exercises += src.count("raise NotImplementedError(\"Exercise")
    assert n_exercises >= 3


def test_strip_refuses_same_folder_and_missing(tmp_path):
    nbdir = os.path.join(REPO, "notebooks")
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.copies", "strip", nbdir, nbdir],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "is the source folder" in res.stderr
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.copies", "strip",
                          str(tmp_path / "nope"), str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "neither a notebook nor a folder" in res.stderr


def _hutchinson(f, x, n_samples, divide=True, fresh=True):
    x = x.detach().requires_grad_(True)
    y = f(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    v = torch.randn_like(x)
    for _ in range(n_samples):
        if fresh:
            v = torch.randn_like(x)
        (vjp,) = torch.autograd.grad((y * v).sum(), x, retain_graph=True)
        total = total + (vjp * v).sum(1)
    return total / n_samples if divide else total


def test_hutchinson_check_with_several_probes(capsys):
    """n_samples > 1 is checked: the solution passes; a sum of the probes instead of their mean (off by
    a factor n_samples), and one probe reused n_samples times (no 1/sqrt(n) shrinkage), both fail.
    Before this test the check only ever called fn(f, x, 1), so both wrong versions passed."""
    sg.exercises.check_hutchinson_trace(_hutchinson)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="average the 8 projections"):
        sg.exercises.check_hutchinson_trace(lambda f, x, k: _hutchinson(f, x, k, divide=False))
    with pytest.raises(ExerciseFailed, match="fresh v"):
        sg.exercises.check_hutchinson_trace(lambda f, x, k: _hutchinson(f, x, k, fresh=False))

    def exact_trace(f, x, k):
        x = x.detach().requires_grad_(True)
        y = f(x)
        return sum(torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))

    with pytest.raises(ExerciseFailed, match="do not vary"):
        sg.exercises.check_hutchinson_trace(exact_trace)


def test_failure_points_at_the_wrong_sample_and_entry():
    """An unrecognised mistake in one pixel of one sample: the message names that sample and that entry, with
    the expected and received values there (not a sample index read as a flattened position)."""
    def wrong(x, k, m, a, s, z):
        out = torch.where(m.bool(), a * k + s * z, x).clone()
        out[5, 0, 2, 3] += 7.0
        return out

    with pytest.raises(sg.exercises.ExerciseFailed, match=r"at sample 5, entry \(0, 2, 3\): expected") as err:
        sg.exercises.check_replacement_step(wrong)
    assert "1 of 8 rows are wrong" in str(err.value)


def test_em_step_accepts_a_float32_time_and_mistakes_still_fail():
    """A correct step whose time vector is float32 (torch.full((n,), t) without a dtype) passes; the catalogued
    mistakes stay far outside the relative tolerance, and a value equal to 4 digits is printed with more."""
    import math

    def em_step(x, t, dt, s, sde, z, *, noise=True):
        tv = torch.full((x.shape[0],), t)                      # float32, as a student writes it
        g, f = sde.diffusion(tv)[:, None].double(), sde.drift(x, tv)
        return x + (f - g**2 * s) * dt + (g * math.sqrt(-dt) * z if noise else 0)

    sg.exercises.check_em_step(em_step)
    with pytest.raises(sg.exercises.ExerciseFailed, match="noise term is missing"):
        sg.exercises.check_em_step(lambda *a: em_step(*a, noise=False))
    with pytest.raises(sg.exercises.ExerciseFailed, match=r"got \(1\.0000001, 2\) \(equal to 4 digits"):
        sg.exercises.checking.compare("x", torch.tensor([[1.0000001, 2.0]], dtype=torch.float64),
                            torch.tensor([[1.0, 2.0]], dtype=torch.float64), 1e-9, "a test")


def test_points_declared_beside_each_check_merged_by_notebook(monkeypatch):
    """Issue 33: one module per notebook with exercises (nbNN_<stem> for notebooks/NN_<stem>.ipynb, named in its
    docstring), each check's nbgrader points declared beside it with @points, merged into sg.exercises.POINTS."""
    from scoregen_lite.exercises import checking

    for module in sg.exercises.NOTEBOOKS:
        stem = module.__name__.rsplit(".", 1)[1][2:]
        assert os.path.exists(os.path.join(REPO, "notebooks", f"{stem}.ipynb")), module.__name__
        assert f"notebooks/{stem}.ipynb" in module.__doc__, module.__name__
        checks = {n for n in module.__all__ if n.startswith("check_")}
        assert set(module.POINTS) == checks and all(getattr(module, n).points == module.POINTS[n] for n in checks)
    assert sg.exercises.POINTS == {k: v for m in sg.exercises.NOTEBOOKS for k, v in m.POINTS.items()}
    with pytest.raises(ValueError, match=r"points\(n=0\)"):
        checking.points(0)
    with pytest.raises(ValueError, match="check_<name>"):
        checking.points(1)(lambda x: x)
    with pytest.raises(KeyError, match="@points"):
        checking.points_of("scoregen_lite.exercises.no_such_notebook")
    monkeypatch.setattr(sg.exercises, "NOTEBOOKS", sg.exercises.NOTEBOOKS + sg.exercises.NOTEBOOKS[:1])
    with pytest.raises(RuntimeError, match="check_gaussian_score"):
        sg.exercises._merged_points()


def test_compare_loss_wants_a_0d_loss_with_its_gradient():
    """The validation the six loss checks share (checking.compare_loss): shape, value within 1e-9 of |want|, gradient."""
    from scoregen_lite.exercises.checking import compare_loss

    w = torch.tensor(-2.0, dtype=torch.float64)
    p = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    assert compare_loss("l", p * (1 + 5e-10), w, "a test") <= 2e-9          # relative to |want|, negative too
    with pytest.raises(ExerciseFailed, match=r"l: your loss has shape \(1,\); expected a 0-d tensor \(the batch mean"):
        compare_loss("l", p.reshape(1), w, "a test")
    with pytest.raises(ExerciseFailed, match="l: the value is wrong; largest error"):
        compare_loss("l", p * (1 + 2e-9), w, "a test")
    with pytest.raises(ExerciseFailed, match="l: your loss carries no gradient"):
        compare_loss("l", p.detach(), w, "a test")
    with pytest.raises(ExerciseFailed, match="label_dropout_loss: your loss carries no gradient"):
        sg.exercises.check_label_dropout_loss(lambda *a: _dropout(*a).detach())
    with pytest.raises(ExerciseFailed, match="dsm_loss: your loss has shape"):
        sg.exercises.check_dsm_loss(lambda *a: _dsm(*a).reshape(1))
