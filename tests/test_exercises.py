"""Exercise checks pass on solutions, fail on wrong answers; the stripper writes student copies."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import scoregen_lite as sg
from conftest import REPO
from scoregen_lite.exercises import ExerciseFailed, strip_source


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
    assert capsys.readouterr().out.count("passed") == 3


@pytest.mark.parametrize(
    "check, wrong, match",
    [
        ("check_gmm_score", naive_gmm_score, "max abs error"),
        ("check_gmm_score", lambda x, w, m, c: x, "max abs error"),
        ("check_gmm_score", lambda x, w, m, c: x.numpy(), "expected a torch.Tensor"),
        ("check_gaussian_score", lambda x, m, c: -(x - m), "max abs error"),
        ("check_langevin_step", lambda x, s, eps, z: x + eps * s + math.sqrt(eps) * z, "eq. \\(1\\)"),
        ("check_langevin_step", lambda x, s, eps, z: x[:3], "shape"),
    ],
)
def test_checks_fail_on_wrong_answers(check, wrong, match):
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
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.exercises", "strip", os.path.join(REPO, "notebooks"), str(tmp_path)],
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
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.exercises", "strip", nbdir, nbdir], capture_output=True, text=True)
    assert res.returncode == 2 and "is the source folder" in res.stderr
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.exercises", "strip", str(tmp_path / "nope"), str(tmp_path / "o")],
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
