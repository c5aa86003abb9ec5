"""Exercise checks, and the tool that writes student copies of the notebooks.

In a notebook an exercise is a function the student writes, with the
teacher's solution between two marker lines::

    def gmm_score(x, weights, means, covs):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

followed by a cell ``sg.exercises.check_gmm_score(gmm_score)``, which prints a
pass message or raises ``ExerciseFailed`` (an AssertionError) saying what is wrong.

``python -m scoregen_lite.exercises strip notebooks/ out/`` writes student
copies: each solution block becomes ``raise NotImplementedError(...)`` at the
same indentation and all outputs are cleared.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

__all__ = [
    "ExerciseFailed",
    "check_gaussian_score",
    "check_gmm_score",
    "check_langevin_step",
    "check_hutchinson_trace",
    "check_dsm_target",
    "check_sigma_max",
    "check_step_sizes",
    "check_em_step",
    "check_ve_std",
    "strip_source",
    "strip_notebook",
    "strip_folder",
    "BEGIN",
    "END",
]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'


class ExerciseFailed(AssertionError):
    """An exercise check failed; the message says what was expected."""


def _passed(name: str, detail: str) -> None:
    print(f"\u2705 {name}: passed ({detail}).")


def _compare(name: str, got, want, atol: float, what: str) -> float:
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(f"{name}: your function returned {type(got).__name__}; expected a torch.Tensor ({what}).")
    if got.shape != want.shape:
        raise ExerciseFailed(f"{name}: your result has shape {tuple(got.shape)}; expected {tuple(want.shape)} ({what}).")
    err = float((got.double() - want.double()).abs().max())
    if not math.isfinite(err) or err > atol:
        raise ExerciseFailed(f"{name}: max abs error {err:.3g} > {atol:g} against the reference ({what}).")
    return err


def _test_mixtures():
    from .densities import GaussianMixture, smiley, two_modes

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    covs3 = a @ a.transpose(1, 2) + 0.5 * torch.eye(3, dtype=torch.float64)
    mix3 = GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                           torch.randn(3, 3, generator=gen, dtype=torch.float64), covs3)
    return [smiley(torch.float64), two_modes(torch.float64), mix3], gen


def check_gaussian_score(fn) -> None:
    """Check ``fn(x, mean, cov) -> (n, D)`` against -Sigma^{-1}(x - mu) (notebook 01, exercise 1)."""
    from .densities import Gaussian

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    cov = a @ a.T + 0.3 * torch.eye(3, dtype=torch.float64)
    mean = torch.randn(3, generator=gen, dtype=torch.float64)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 2
    err = _compare("gaussian_score", fn(x, mean, cov), Gaussian(mean, cov).score(x), 1e-6,
                   "score of N(mean, cov) at 50 points in 3D")
    _passed("gaussian_score", f"max error {err:.1e} on a 3D Gaussian")


def check_gmm_score(fn) -> None:
    """Check ``fn(x, weights, means, covs) -> (n, D)`` against ``GaussianMixture.score``
    on three mixtures, including points far from every mode (notebook 01, exercise 2)."""
    mixtures, gen = _test_mixtures()
    worst = 0.0
    for p in mixtures:
        x = torch.cat([p.sample(100, generator=gen), 30 * torch.randn(20, p.dim, generator=gen, dtype=torch.float64)])
        worst = max(worst, _compare("gmm_score", fn(x, p.weights, p.means, p.covs), p.score(x), 1e-5,
                                    f"{p.n_components}-component mixture in {p.dim}D"))
    _passed("gmm_score", f"max error {worst:.1e} on 3 mixtures, far-away points included")


def check_langevin_step(fn) -> None:
    """Check ``fn(x, score, step_size, z)`` returns x + (eps/2) score + sqrt(eps) z, eq. (1)."""
    gen = torch.Generator().manual_seed(2)
    x, s, z = (torch.randn(64, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    for eps in (0.01, 0.5):
        want = x + 0.5 * eps * s + math.sqrt(eps) * z
        _compare("langevin_step", fn(x, s, eps, z), want, 1e-10, f"eq. (1) with eps={eps}")
    _passed("langevin_step", "matches eq. (1) for eps = 0.01 and 0.5")


def check_hutchinson_trace(fn) -> None:
    """Check ``fn(f, x, n_samples) -> (n,)``, a Hutchinson estimate of tr(d f / d x) per point
    (notebook 02): unbiased on a linear map, within 5 standard errors, and not the exact trace
    computed some other way (its spread must match the estimator's)."""
    gen = torch.Generator().manual_seed(3)
    D = 6
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    f = lambda x: x @ A.T  # noqa: E731  (Jacobian A, trace tr(A))
    x = torch.randn(400, D, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    est = fn(f, x, 1)
    if not isinstance(est, torch.Tensor) or est.shape != (400,):
        got = tuple(est.shape) if isinstance(est, torch.Tensor) else type(est).__name__
        raise ExerciseFailed(f"hutchinson_trace: returned {got}; expected one estimate per point, shape (400,).")
    sym = 0.5 * (A + A.T)
    sd = math.sqrt(2 * float((sym**2).sum()))  # std of v^T A v for v ~ N(0, I); Rademacher is smaller
    mean_err = abs(float(est.mean()) - float(torch.trace(A)))
    if mean_err > 5 * sd / math.sqrt(400):
        raise ExerciseFailed(f"hutchinson_trace: the mean estimate is off by {mean_err:.3g} (> 5 standard errors); "
                             "is it E[v^T J v] with E[v v^T] = I?")
    if float(est.std()) < 0.1 * sd:
        raise ExerciseFailed("hutchinson_trace: the estimates do not vary: with n_samples=1 each one should use a single "
                             "random projection, not the exact trace.")
    k = 8  # more probes: still unbiased, and the spread shrinks as 1 / sqrt(n_samples)
    est_k = fn(f, x, k)
    mean_err_k = abs(float(est_k.mean()) - float(torch.trace(A)))
    if mean_err_k > 5 * sd / math.sqrt(k * 400):
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the mean estimate is off by {mean_err_k:.3g} "
                             f"(> 5 standard errors); average the {k} projections v^T J v, do not sum them.")
    ratio = float(est_k.std()) / float(est.std())
    if not 0.2 < ratio < 0.6:
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the estimates spread {ratio:.2f} times as much as "
                             f"with 1; averaging {k} independent projections should give about 1/sqrt({k}) = "
                             f"{1 / math.sqrt(k):.2f}. Draw a fresh v for each of the n_samples projections.")
    _passed("hutchinson_trace", f"unbiased on a {D}x{D} linear map (mean error {mean_err:.2f}, {5 * sd / 20:.2f} "
                                f"allowed); {k} probes shrink the spread by {ratio:.2f}")


def check_dsm_target(fn) -> None:
    """Check ``fn(x_tilde, x, sigma)`` equals grad_{x~} log N(x~; x, sigma^2 I) = -(x~ - x)/sigma^2 (notebook 03)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    for sigma in (0.1, 2.0):
        xt = x + sigma * torch.randn(32, 2, generator=gen, dtype=torch.float64)
        _compare("dsm_target", fn(xt, x, sigma), -(xt - x) / sigma**2, 1e-9, f"sigma={sigma}")
    _passed("dsm_target", "matches -(x~ - x) / sigma^2 for sigma = 0.1 and 2")


def check_sigma_max(fn) -> None:
    """Check ``fn(x) -> float``: technique 1 of Song & Ermon (2020), the largest pairwise distance
    between training points (notebook 04)."""
    gen = torch.Generator().manual_seed(5)
    for x in (torch.randn(300, 2, generator=gen) * torch.tensor([5.0, 0.5]), torch.rand(200, 7, generator=gen)):
        want = torch.cdist(x.double(), x.double()).max().item()
        got = fn(x)
        got = float(got.item() if isinstance(got, torch.Tensor) else got)
        if abs(got - want) > 1e-4 * want:
            raise ExerciseFailed(f"sigma_max: got {got:.4g} on {tuple(x.shape)} data; expected the largest distance "
                                 f"between two points, {want:.4g}.")
    _passed("sigma_max", "largest pairwise distance on 2D and 7D data")


def check_step_sizes(fn) -> None:
    """Check ``fn(sigmas, step_size) -> (L,)``: alpha_i = step_size * sigma_i^2 / sigma_L^2 (notebook 05)."""
    from .schedules import geometric_sigmas

    for sig, eps in ((geometric_sigmas(10.0, 0.1, 10, dtype=torch.float64), 5e-3),
                     (torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64), 0.1)):
        _compare("step_sizes", fn(sig, eps), eps * sig**2 / sig[-1] ** 2, 1e-9 * float(eps * (sig[0] / sig[-1]) ** 2),
                 f"alpha_i for {len(sig)} levels, eps={eps}")
    _passed("step_sizes", "alpha_i = eps sigma_i^2 / sigma_L^2 on two ladders")


def check_em_step(fn) -> None:
    """Check ``fn(x, t, dt, score, sde, z)``: one Euler-Maruyama step of the reverse SDE, eq. (7),
    x + [f(x, t) - g(t)^2 score] dt + g(t) sqrt(|dt|) z with dt < 0 (notebook 06)."""
    from .sde import VESDE, VPSDE

    gen = torch.Generator().manual_seed(6)
    x, s, z = (torch.randn(16, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    for sde in (VPSDE(), VESDE(0.01, 10.0)):
        t, dt = 0.7, -0.01
        tv = torch.full((16,), t, dtype=torch.float64)
        g = sde.diffusion(tv)[:, None]
        want = x + (sde.drift(x, tv) - g**2 * s) * dt + g * math.sqrt(-dt) * z
        _compare("em_step", fn(x, t, dt, s, sde, z), want, 1e-9, f"eq. (7) for the {sde.name} SDE, t={t}, dt={dt}")
    _passed("em_step", "one reverse Euler-Maruyama step of eq. (7) for the VP and VE SDEs")


def check_ve_std(fn) -> None:
    """Check ``fn(t, sigma_min, sigma_max)``: the VE kernel's std, sqrt(sigma(t)^2 - sigma_min^2)
    with sigma(t) = sigma_min (sigma_max/sigma_min)^t (notebook 06)."""
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
    for smin, smax in ((0.01, 10.0), (0.1, 50.0)):
        want = torch.sqrt((smin * (smax / smin) ** t) ** 2 - smin**2)
        _compare("ve_std", fn(t, smin, smax), want, 1e-6 * smax, f"sigma_min={smin}, sigma_max={smax}")
    _passed("ve_std", "the VE marginal std at four times for two ladders")


# ---------------------------------------------------------------------------
# Student copies
# ---------------------------------------------------------------------------

_MARK = re.compile(r"^(?P<indent>[ \t]*)(?P<mark># (BEGIN|END) SOLUTION)\s*$")


def strip_source(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block (markers included) with the stub at the marker's indent."""
    out, inside, start_line = [], False, 0
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = _MARK.match(line.rstrip("\n"))
        if m and m.group("mark") == BEGIN:
            if inside:
                raise ValueError(f"line {i + 1}: '{BEGIN}' inside another solution block (opened at line {start_line}).")
            inside, start_line = True, i + 1
            out.append(f"{m.group('indent')}{STUB}\n")
        elif m and m.group("mark") == END:
            if not inside:
                raise ValueError(f"line {i + 1}: '{END}' without a matching '{BEGIN}'.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"line {start_line}: '{BEGIN}' is never closed by '{END}'.")
    text = "".join(out)
    return text if source.endswith("\n") else text.rstrip("\n")


def strip_notebook(nb: dict) -> dict:
    """A student copy of a notebook (as loaded JSON): solutions stubbed, outputs cleared."""
    nb = json.loads(json.dumps(nb))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cell["source"] = strip_source(src).splitlines(keepends=True)
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def strip_folder(src: str | Path, dst: str | Path) -> list[Path]:
    """Write a student copy of every ``*.ipynb`` in ``src`` (or of one notebook file) into ``dst``."""
    src, dst = Path(src), Path(dst)
    if src.is_file():
        files = [src]
    elif src.is_dir():
        files = sorted(src.glob("*.ipynb"))
    else:
        raise ValueError(f"src={str(src)!r} is neither a notebook nor a folder; expected e.g. notebooks/.")
    if not files:
        raise ValueError(f"src={str(src)!r} holds no .ipynb files.")
    if dst.resolve() == (src if src.is_dir() else src.parent).resolve():
        raise ValueError(f"dst={str(dst)!r} is the source folder; choose another folder so the solutions survive.")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        nb = strip_notebook(json.loads(f.read_text(encoding="utf-8")))
        out = dst / f.name
        out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out)
    return written


def main(argv=None) -> int:
    """Command line: ``strip SRC DST`` writes student copies; exit 2 with a message on bad paths."""
    parser = argparse.ArgumentParser(prog="python -m scoregen_lite.exercises",
                                     description="Write student copies of the course notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    strip = sub.add_parser("strip", help="replace solutions by NotImplementedError and clear outputs")
    strip.add_argument("src", help="a notebook or a folder of notebooks, e.g. notebooks/")
    strip.add_argument("dst", help="output folder, e.g. student/")
    args = parser.parse_args(argv)
    try:
        written = strip_folder(args.src, args.dst)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
