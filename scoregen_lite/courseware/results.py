"""Numbers that are results, rendered from the committed files that hold them, never typed by hand.

Every table of measured numbers on the course's pages and in the notebooks comes from here: the GPU benchmark
(``benchmarks/results/*_run*.json``), the CPU benchmark (``benchmarks/results/mnist_cpu*.json``), the
course timings (``benchmarks/results/course_timings.json``) and the shipped checkpoints' manifests
(``checkpoints/*.json``). Each table names the device and shows every committed run.

``python -m scoregen_lite.courseware.results readme`` rewrites the marked blocks
(``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``) of every page that holds them (``rendered_pages``: the
README, ``CONTRIBUTING.md`` and the guide's ``docs/*.md``, which the website shows as they are committed) from
the files; ``--check`` fails when a page is out of date or a table of ``TABLES`` is on no page (a test runs it).
Introduced in notebooks/07_mnist_score_sde.ipynb.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from .. import artifacts

__all__ = ["sigma_data_table", "gpu_benchmark_table", "cpu_benchmark_table", "fast_sampling_table", "ode_gap",
           "fast_runs", "load_fast_nfe", "em_speedup", "nfe_table", "guidance_table", "load_guidance", "recipes_table",
           "load_recipes", "course_timings_table", "checkpoints_table", "TABLES", "render_readme", "rendered_pages",
           "render_pages", "main"]




def _fmt(value, spec: str) -> str:
    if value is None:
        return "n/a"
    return format(value, spec)


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def gpu_benchmark_table(folder=None) -> str:
    """Markdown table of every committed GPU benchmark run (``benchmarks/mnist_gpu.py``): one column per
    run and recipe, the device in the header."""
    folder = Path(folder) if folder else artifacts.results_dir()
    loaded = {p: json.loads(p.read_text()) for p in sorted(folder.glob("*_run*.json"))}
    runs = [p for p, res in loaded.items() if "reference" in res or "ours" in res]
    if not runs:
        raise FileNotFoundError(f"no GPU benchmark results (*_run*.json) in {folder}; run benchmarks/mnist_gpu.py.")
    cols = []
    for path in runs:
        res = loaded[path]
        for recipe in ("reference", "ours"):
            if recipe in res:
                cols.append((f"{res['device']}, {path.stem.split('_')[-1]}, {recipe}", res[recipe], res))
    rows = [
        ("training images/s", lambda r, _: _fmt(_get(r, "train", "images_per_s"), ",.0f")),
        ("training wall time, s", lambda r, _: _fmt(_get(r, "train", "seconds"), ".0f")),
        ("steps x batch", lambda r, _: f"{_get(r, 'train', 'steps')} x {_get(r, 'config', 'batch_size')}"),
        ("Frechet distance, 10k EM-500 samples", lambda r, _: _fmt(_get(r, "em", "frechet"), ".1f")),
        ("class histogram within 10 % +- 2 pts", lambda r, _: {True: "yes", False: "no"}.get(_get(r, "em", "histogram_ok"), "n/a")),
        ("10k EM-500 samples, s", lambda r, _: _fmt(_get(r, "em", "seconds"), ".1f")),
        ("10k EDM Heun-18 samples (35 NFE), s", lambda r, _: _fmt(_get(r, "edm", "seconds"), ".1f")),
        ("Frechet distance, EDM Heun-18", lambda r, _: _fmt(_get(r, "edm", "frechet"), ".1f")),
        ("10k EDM Heun-18 + capped churn samples, s", lambda r, _: _fmt(_get(r, "edm_churn", "seconds"), ".1f")),
        ("Frechet distance, EDM Heun-18 + capped churn", lambda r, _: _fmt(_get(r, "edm_churn", "frechet"), ".1f")),
        ("10k DPM-Solver++(2M)-20 samples, s", lambda r, _: _fmt(_get(r, "dpm", "seconds"), ".1f")),
        ("Frechet distance, DPM-Solver++(2M)-20", lambda r, _: _fmt(_get(r, "dpm", "frechet"), ".1f")),
        ("bits/dim", lambda r, _: _fmt(_get(r, "bits_per_dim"), ".2f")),
        ("Frechet scale: real vs real digits", lambda _, res: _fmt(res.get("frechet_real_vs_real"), ".2f")),
    ]
    lines = ["| | " + " | ".join(c[0] for c in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(r, res) for _, r, res in cols) + " |")
    lines.append("")
    lines.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(lines) + "\n"


def _recipe_name(config: dict) -> str:
    """The recipe of a benchmark's config by its ``sg.recipes.RECIPES`` name (configs written before recipes
    existed trained with eq. (8) as written, "song")."""
    from ..core.recipes import RECIPES

    parts = (config.get("precond", "none"), config.get("noise", "uniform"), config.get("weighting", "sigma2"))
    names = [name for name, recipe in RECIPES.items() if tuple(recipe) == parts]
    return names[0] if names else " / ".join(map(str, parts))


def _result_files(folder, stem: str, what: str) -> list:
    """The committed ``STEM*.json`` files of ``folder`` (default ``results_dir()``) in the order they were made:
    by the run number that ends the name (run2 before run10), then by name; none is an error naming the
    script (``benchmarks/STEM.py``) that writes them."""
    folder = Path(folder) if folder else artifacts.results_dir()

    def made(path):
        number = re.search(r"\d+$", path.stem)
        return (int(number.group()) if number else -1, path.name)

    paths = sorted(folder.glob(f"{stem}*.json"), key=made)
    if not paths:
        raise FileNotFoundError(f"no {what} results ({stem}*.json) in {folder}; run benchmarks/{stem}.py.")
    return paths


def cpu_benchmark_table(folder=None) -> str:
    """Markdown table of every committed CPU benchmark run (``benchmarks/mnist_cpu.py``)."""
    runs = _result_files(folder, "mnist_cpu", "CPU benchmark")
    lines = ["| run | device | recipe | training images/s | steps in the budget | Frechet distance (EM-500) | target "
             "| histogram within 10 % +- 3 pts | 64 digits from the shipped checkpoint |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in runs:
        r = json.loads(path.read_text())
        # runs before the held-out reference (mnist_cpu_run1) measured against training digits, for the GPU target
        against = "held-out" if _get(r, "quality", "reference_digits") else "training"
        target = "the reference recipe's, " if "reference_frechet" not in r else ""
        lines.append(
            f"| {path.stem} | {r['device']} | {_recipe_name(r.get('config', {}))} | "
            f"{_fmt(_get(r, 'train', 'images_per_s'), ',.0f')} | "
            f"{_fmt(_get(r, 'train', 'steps'), ',')} in {_fmt(_get(r, 'train', 'seconds'), '.0f')} s | "
            f"{_fmt(_get(r, 'quality', 'frechet'), '.1f')} to {against} digits, {_get(r, 'quality', 'n_samples')} "
            f"samples | {target}<= {_fmt(r.get('target_frechet'), '.2f')} | "
            f"{ {True: 'yes', False: 'no'}.get(_get(r, 'quality', 'histogram_ok_3pts'), 'n/a') } "
            f"(gap {_fmt(_get(r, 'quality', 'max_histogram_gap'), '.3f')}) | "
            f"{_fmt(_get(r, 'shipped_64', 'seconds'), '.1f')} s ({_get(r, 'shipped_64', 'sampler')}) |")
    lines.append("")
    lines.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(lines) + "\n"


def _fast_runs(folder, plan: str) -> list:
    """The committed fast-sampling runs of one plan (``benchmarks/fast_sampling_cpu.py --plan``): "classic" (runs
    1-3, every sampler once; files without a plan are classic) or "nfe" (run 4, Frechet distance against NFE)."""
    paths = [p for p in _result_files(folder, "fast_sampling_cpu", "fast-sampling")
             if json.loads(p.read_text()).get("plan", "classic") == plan]
    if not paths:
        raise FileNotFoundError(f"no fast-sampling results of plan {plan!r} in {folder or artifacts.results_dir()}; run "
                                f"benchmarks/fast_sampling_cpu.py --plan {plan}.")
    return paths


def fast_sampling_table(folder=None) -> str:
    """Markdown table of every committed fast-sampling benchmark run of the classic plan
    (``benchmarks/fast_sampling_cpu.py``, runs 1-3): one row per sampler with NFE, time per 1,000 digits and the
    Frechet distance to held-out digits, the device and sample count in the heading. Runs of the "nfe" plan
    (Frechet distance against NFE) are ``nfe_table``'s. Introduced in notebooks/08_fast_sampling.ipynb."""
    runs = _fast_runs(folder, "classic")
    shipped = artifacts.course_dir() / "checkpoints" / "mnist_ve.json"
    shipped_sha = json.loads(shipped.read_text())["sha256"] if shipped.exists() else None
    out = []
    for path in runs:
        r = json.loads(path.read_text())
        stale = "" if r.get("checkpoint_sha256") == shipped_sha else \
            " (not the checkpoint shipped now: its sha256 differs or was not recorded; rerun the script for that one)"
        out += [f"`{path.stem}`: {r['n_samples']:,} digits per sampler from `{r['checkpoint']}`{stale} on {r['device']}; "
                f"Frechet distance to the {r['n_heldout']} held-out digits (training digits score "
                f"{_fmt(r.get('frechet_real'), '.1f')}).", "",
                "| sampler | NFE | seconds per 1,000 digits | Frechet distance |", "| --- | --- | --- | --- |"]
        for row in r["rows"]:
            out.append(f"| {fast_row_label(row)} | {row['nfe']} | {_fmt(row['seconds_per_1000'], '.1f')} | "
                       f"{_fmt(row['frechet'], '.1f')} |")
        if r.get("claim"):
            out += ["", _speedup_footer(r)]
        out.append("")
    out.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(out) + "\n"


def fast_row_label(row: dict) -> str:
    """A fast-sampling row's label as the tables print it: for EDM's sampler with churn, the churn it applies,
    eta = min(S_churn / N, sqrt(2) - 1) (Karras et al. 2022, Algorithm 2; notebook 08, section 4), and where: at its
    cap with no window (the course's "capped churn at every level"; the first level is never churned, see
    ``sg.samplers.churn_etas``), or on the window [S_tmin, S_tmax]. Other rows keep their label."""
    churn = row.get("churn") or 0.0
    if row.get("sampler") != "edm" or churn <= 0:
        return row["label"]
    eta = min(churn / row["n_steps"], math.sqrt(2.0) - 1.0)
    amount = "eta at its cap sqrt(2) - 1" if eta == math.sqrt(2.0) - 1.0 else f"eta = {eta:.3g}, below the cap"
    where = "no window" if "s_tmin" not in row else "only in the window"
    return f"{row['label']} ({amount}, {where})"


def _speedup_footer(run: dict) -> str:
    """The footer of a classic fast-sampling run: Heun-18 with capped churn against EM-500 in Frechet distance, and
    its speed-up against the fair baseline of ``em_speedup`` (not EM-500, which is over-resolved)."""
    s = em_speedup(run)
    em500 = next((r for r in run["rows"] if r["sampler"] == "em" and r["n_steps"] == 500), None)
    ratio = f"Frechet ratio to EM-500 {_fmt(s['sampler']['frechet'] / em500['frechet'], '.2f')}; " if em500 else ""
    how = (f"reached by {s['baseline']['label']}, the cheapest EM within {s['tol']:.0%} of it" if s["reach"] else
           f"better than every EM row; baseline {s['baseline']['label']}, the cheapest EM within {s['tol']:.0%} of "
           f"EM's best")
    return (f"EDM Heun-18 with churn capped at every level, {s['sampler']['nfe']} NFE: {ratio}{how}: "
            f"{_fmt(s['nfe_ratio'], '.1f')}x fewer evaluations, {_fmt(s['seconds_ratio'], '.1f')}x less time "
            f"(`sg.results.em_speedup`).")


def ode_gap(folder=None, sde_label: str = "Euler-Maruyama, 500 steps",
            ode_label: str = "EDM Heun, 18 levels (deterministic)") -> dict:
    """How far the deterministic (probability-flow ODE) sampler trails the reverse SDE in each committed
    fast-sampling run: ``{run: {"sde": FD, "ode": FD, "gap": ode - sde, "ratio": ode / sde, "sha256": ...}}``,
    runs in the order they were made (run1, run2, ...), of the classic plan (one per checkpoint). Notebook 08,
    section 5, reads it to say what a better-trained checkpoint changes."""
    out = {}
    for path in _fast_runs(folder, "classic"):
        r = json.loads(path.read_text())
        fd = {row["label"]: row["frechet"] for row in r["rows"]}
        missing = [label for label in (sde_label, ode_label) if label not in fd]
        if missing:
            raise KeyError(f"{path.name} has no row {missing[0]!r}; its rows are {sorted(fd)}.")
        sde, ode = fd[sde_label], fd[ode_label]
        out[path.stem] = {"sde": sde, "ode": ode, "gap": ode - sde, "ratio": ode / sde,
                          "sha256": r.get("checkpoint_sha256")}
    return out


def fast_runs(folder=None, plan: str = "classic") -> dict:
    """The committed fast-sampling runs of ``plan`` ("classic": runs 1-3, every sampler once; "nfe": run 4; "window":
    run 5) as
    ``{run name: its dict}``, in the order they were made (notebook 08, section 5)."""
    return {p.stem: json.loads(p.read_text()) for p in _fast_runs(folder, plan)}


def load_fast_nfe(folder=None) -> dict:
    """The newest committed fast-sampling run of the "nfe" plan (``fast_sampling_cpu_run4.json`` and later) as a
    dict, with its ``path``: Frechet distance against NFE for Euler-Maruyama beside EDM's Heun with and without
    churn, each row with precision, recall, feature spread and total variation (notebook 08, section 5)."""
    path = _fast_runs(folder, "nfe")[-1]
    return {**json.loads(path.read_text()), "path": path}


def load_fast_window(folder=None) -> dict:
    """The newest committed fast-sampling run of the "window" plan (``fast_sampling_cpu_run5.json`` and later) as a
    dict, with its ``path``: Heun-18 with EDM's per-level churn (S_churn = 40 * 18 / 256, so eta = 40 / 256 = 0.156 as
    with S_churn = 40 on EDM's 256 levels, on sigma in [0.05, 50], S_noise 1.003) beside Heun-18 with capped churn,
    deterministic Heun-18 and EM-100 on the same seeds, with run 4's measures (notebook 08, section 5). Render it
    with ``nfe_table``."""
    path = _fast_runs(folder, "window")[-1]
    return {**json.loads(path.read_text()), "path": path}


def em_speedup(run: dict | None = None, label: str = "EDM Heun, 18 levels, churn 40", tol: float = 0.10) -> dict:
    """The fair speed-up of the sampler row ``label`` of a fast-sampling run (default: ``load_fast_nfe()``; a classic
    run's dict works too) over Euler-Maruyama: the ratio of evaluations (and seconds) of the cheapest EM row that
    reaches the sampler's quality, its Frechet distance at most (1 + ``tol``) times the sampler's. When no EM row
    reaches it, the sampler beats every EM row, and the baseline is the cheapest EM row at EM's own best quality
    (within ``tol`` of the lowest EM Frechet distance): EM's plateau, beyond which more steps buy nothing.

    Returns {"sampler": its row, "reach": the cheapest EM row reaching it (or None), "plateau": the cheapest EM row
    within ``tol`` of the best EM row, "best_em", "baseline": reach or else plateau, "nfe_ratio" and
    "seconds_ratio" (baseline / sampler), "tol"}. The NFE ratio does not depend on the machine's load; the time
    ratio does. Notebook 08, section 5."""
    run = run if run is not None else load_fast_nfe()
    rows = {r["label"]: r for r in run["rows"]}
    if label not in rows:
        raise KeyError(f"no row {label!r}; the rows are {sorted(rows)}.")
    row = rows[label]
    ems = sorted((r for r in run["rows"] if r["sampler"] == "em"), key=lambda r: r["nfe"])
    if not ems:
        raise KeyError("the run has no Euler-Maruyama rows.")
    best = min(ems, key=lambda r: r["frechet"])
    reach = next((r for r in ems if r["frechet"] <= (1 + tol) * row["frechet"]), None)
    plateau = next(r for r in ems if r["frechet"] <= (1 + tol) * best["frechet"])
    base = reach or plateau
    return {"sampler": row, "reach": reach, "plateau": plateau, "best_em": best, "baseline": base, "tol": tol,
            "nfe_ratio": base["nfe"] / row["nfe"], "seconds_ratio": base["seconds"] / row["seconds"]}


def nfe_table(run: dict | None = None) -> str:
    """Markdown table of an "nfe" or "window" fast-sampling run (default: ``load_fast_nfe()``): per sampler NFE, seconds per
    1,000 digits, Frechet distance, precision, recall, feature spread (relative to the held-out digits') and
    mean total variation, with the run's device, load note and the training digits' own row for scale."""
    run = run if run is not None else load_fast_nfe()
    name = Path(run["path"]).name if "path" in run else "fast_sampling_cpu_run4.json"
    load = run.get("load_average_start"), run.get("load_average_end")
    out = [f"`{Path(name).stem}`: {run['n_samples']:,} digits per sampler from `{run['checkpoint']}` on {run['device']}"
           f" (1-minute load average {_fmt(load[0][0] if load[0] else None, '.1f')} at the start, "
           f"{_fmt(load[1][0] if load[1] else None, '.1f')} at the end: times are inflated and noisy, see the note in "
           f"the file); scored against the {run['n_heldout']} held-out digits.", "",
           "| sampler | NFE | seconds per 1,000 digits | Frechet distance | precision | recall | feature spread | "
           "total variation |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    t = run.get("train_measures", {})
    out.append(f"| {run['n_samples']:,} training digits (no sampler) | | | {_fmt(run.get('frechet_real'), '.1f')} | "
               f"{_fmt(t.get('precision'), '.3f')} | {_fmt(t.get('recall'), '.3f')} | "
               f"{_fmt(t.get('feature_spread_vs_heldout'), '.3f')} | {_fmt(t.get('total_variation'), '.1f')} |")
    for r in sorted(run["rows"], key=lambda r: (r["sampler"] != "em", r["nfe"], r["label"])):
        out.append(f"| {fast_row_label(r)} | {r['nfe']} | {_fmt(r['seconds_per_1000'], '.0f')} | {_fmt(r['frechet'], '.1f')} | "
                   f"{_fmt(r.get('precision'), '.3f')} | {_fmt(r.get('recall'), '.3f')} | "
                   f"{_fmt(r.get('feature_spread_vs_heldout'), '.3f')} | {_fmt(r.get('total_variation'), '.1f')} |")
    out += ["", f"Held-out digits' total variation: {_fmt(run.get('heldout_total_variation'), '.1f')}. "
                f"Source: `benchmarks/results/{name}`."]
    return "\n".join(out) + "\n"


def load_guidance(folder=None) -> dict:
    """The newest committed guidance benchmark (``guidance_cpu*.json``, the highest run number) as a dict (notebook 09)."""
    return json.loads(_result_files(folder, "guidance_cpu", "guidance")[-1].read_text())


def guidance_table(folder=None) -> str:
    """Markdown table of every committed guidance benchmark run (``benchmarks/guidance_cpu.py``): per guidance
    scale, the share of digits read as asked and their Frechet distance to the held-out digits, with the
    course's targets at notebook 09's scale. Shown in notebooks/09_controllable_generation.ipynb."""
    runs = _result_files(folder, "guidance_cpu", "guidance")
    shipped = artifacts.course_dir() / "checkpoints" / "mnist_cond.json"
    shipped_sha = json.loads(shipped.read_text())["sha256"] if shipped.exists() else None
    out = []
    for path in runs:
        r = json.loads(path.read_text())
        stale = "" if r.get("checkpoint_sha256") == shipped_sha else " (not the checkpoint shipped now)"
        s = r["sampler"]
        out += [f"`{path.stem}`: {r['n']:,} digits per scale ({r['n'] // 10} asked of each class) from "
                f"`{Path(r['checkpoint']).name}`{stale} on {r['device']}, EDM Heun-{s['n_steps']} with "
                f"{_guidance_churn(s)}; Frechet distance to the {r['n_heldout']} held-out digits (training digits "
                f"score {_fmt(r.get('frechet_real_heldout'), '.1f')}). Targets at notebook 09's scale "
                f"{r['chosen_scale']:g}: >= {r['target_accuracy']:.0%} read as asked, Frechet distance <= "
                f"{r['target_frechet']:g}.", "",
                "| guidance scale | read as asked | Frechet distance | seconds |", "| --- | --- | --- | --- |"]
        for row in r["rows"]:
            mark = " (notebook 09)" if row["scale"] == r["chosen_scale"] else ""
            out.append(f"| {row['scale']:g}{mark} | {row['accuracy']:.1%} | {row['frechet']:.1f} | {row['seconds']:.0f} |")
        met = {True: "met", False: "missed", None: "not measured"}[r.get("meets_target")]
        out += ["", f"Targets at scale {r['chosen_scale']:g}: {met}.", ""]
    out.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(out) + "\n"


def _guidance_churn(s: dict) -> str:
    """How the guidance benchmark's sampler churns, in notebook 08's words."""
    churn = s.get("churn", 0) or 0
    if churn <= 0:
        return "no churn (deterministic)"
    capped = churn / s["n_steps"] >= math.sqrt(2.0) - 1.0
    window = "s_tmin" in s or "s_tmax" in s
    return (f"churn {churn:g} " + ("capped at every level (eta = sqrt(2) - 1" if capped else
                                  f"(eta = {churn / s['n_steps']:.3g}") + (", windowed)" if window else ", no window)"))


def load_recipes(folder=None) -> dict:
    """The newest committed recipe benchmark (``recipes_cpu*.json``, the highest run number) as a dict (notebook 10)."""
    return json.loads(_result_files(folder, "recipes_cpu", "recipe")[-1].read_text())


def recipes_table(source=None) -> str:
    """Markdown table of the training recipes at equal CPU time (``benchmarks/recipes_cpu.py``): per recipe its
    choices, steps and images/s, the Frechet distance to the held-out digits for each sampler and the held-out
    bits/dim beside the blurred-bin reference ``sg.recipes.bits_floor`` (not a lower bound); one block per committed run (``recipes_cpu*.json``), or for the result dict
    ``source``. Introduced in notebooks/10_training_recipes.ipynb."""
    if isinstance(source, dict):
        runs = [("this run", source)]
    else:
        paths = _result_files(source, "recipes_cpu", "recipe")
        runs = [(f"`{p.stem}`", json.loads(p.read_text())) for p in paths]
    out = []
    for label, r in runs:
        first = next(iter(r["recipes"].values()), {})
        samplers = [k for k, v in first.items() if isinstance(v, dict) and "frechet" in v]
        out += [f"{label}: {_fmt(r['budget_s'], '.0f')} s of training per recipe on {r['device']}; Frechet distance of "
                f"{r['n_samples']:,} samples to the {r['n_heldout']} held-out digits (training digits score "
                f"{_fmt(r.get('frechet_train_vs_heldout'), '.1f')}); bits/dim of held-out digits.", "",
                "| recipe | precond | noise levels | weighting | steps | images/s | "
                + " | ".join(f"FD {s}" for s in samplers) + " | bits/dim (blurred-bin reference) |",
                "| --- " * (7 + len(samplers)) + "|"]
        for name, row in r["recipes"].items():
            rc = row["recipe"]
            out.append(f"| {name} | {rc['precond']} | {rc['noise']} | {rc['weighting']} | {row['train']['steps']:,} | "
                       f"{row['train']['images_per_s']:,.0f} | "
                       + " | ".join(_fmt(row[s]["frechet"], ".1f") for s in samplers)
                       + f" | {_fmt(row.get('bits_per_dim'), '.2f')} ({_fmt(row.get('bits_floor'), '.2f')}) |")
        out.append("")
    if not isinstance(source, dict):
        out.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in paths) + ".")
    return "\n".join(out) + "\n"


def course_timings_table(folder=None) -> str:
    """Markdown table of the committed course timings (``python -m scoregen_lite.courseware.course timings``)."""
    folder = Path(folder) if folder else artifacts.results_dir()
    path = folder / "course_timings.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run python -m scoregen_lite.courseware.course timings --full --json {path}.")
    data = json.loads(path.read_text())
    by_nb: dict = {}
    for row in data["rows"]:
        by_nb.setdefault(row["notebook"], {})[row["mode"]] = row
    lines = [f"Measured on {data['device']}, seconds per notebook (each row's date; a cold cache trains what a "
             f"student's first run trains, e.g. the metrics classifier):", "",
             "| notebook | full mode | quick mode | measured | cache |", "| --- | --- | --- | --- | --- |"]
    for nb, modes in by_nb.items():
        some = modes.get("full") or modes.get("quick")
        lines.append(f"| {nb} | {_fmt((modes.get('full') or {}).get('seconds'), '.0f')} | "
                     f"{_fmt((modes.get('quick') or {}).get('seconds'), '.0f')} | {some.get('date', data['date'])} | "
                     f"{some.get('cache', 'warm')} |")
    lines.append("")
    lines.append(f"Source: `benchmarks/results/{path.name}`.")
    return "\n".join(lines) + "\n"


def checkpoints_table(folder=None) -> str:
    """Markdown table of the shipped checkpoints from their manifests (``checkpoints/*.json``)."""
    folder = Path(folder) if folder else artifacts.course_dir() / "checkpoints"
    manifests = sorted(folder.glob("*.json"))
    if not manifests:
        raise FileNotFoundError(f"no checkpoint manifests in {folder}.")
    lines = ["| checkpoint | what | trained on | steps x batch | time | Frechet distance to training digits (held-out "
             "digits score) | Frechet distance to held-out digits: EM-500 / Heun-18 / Heun-18 capped churn 40 | held-out "
             "bits/dim (blurred-bin reference) | samples that copy a training digit (d1/d2 < 1/3) | guided at notebook 09's scale (in "
             "brackets): read as asked, Frechet distance to held-out | size |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    others = []
    for path in manifests:
        m = json.loads(path.read_text())
        q = m["metrics"]
        if "frechet" not in q:   # not a score model (the noisy classifier): listed below the table
            acc = ", ".join(f"{float(t):g}: {a:.0%}" for t, a in q.get("heldout_accuracy_at_t", {}).items())
            others.append(f"`{path.stem}.pt`: {m['what']}; {m['steps']:,} steps on {m['device']} in "
                          f"{_fmt((m.get('seconds') or 0), '.0f')} s; held-out accuracy at t = {acc}; "
                          f"{m['size_mb']:.1f} MB.")
            continue
        fast = q.get("fast", {})
        heldout = " / ".join(_fmt(v, ".1f") for v in (q.get("frechet_heldout"), fast.get("Heun-18", {}).get("frechet_heldout"),
                                                     fast.get("Heun-18 churn 40", {}).get("frechet_heldout")))
        lines.append(
            f"| `{path.stem}.pt` | {m['what']} | {m['device']} | {_steps(m)} x {m['batch_size']} | "
            f"{_fmt((m.get('seconds') or 0) / 60, '.0f')} min{' (last run)' if 'steps_this_run' in m else ''} | {q['frechet']:.1f} on {q['n_samples']:,} EM-{q['nfe']} "
            f"samples ({q['frechet_real_heldout']:.1f}) | {heldout} | {q['bits_per_dim']:.2f} "
            f"({_fmt(q.get('bits_floor'), '.2f')}) | {_memorised(q)} | {_guided(q)} | {m['size_mb']:.1f} MB |")
    lines.append("")
    lines += [*others, ""] if others else []
    lines.append("Commands, commits, sha256 and all metrics: " + ", ".join(f"`checkpoints/{p.name}`" for p in manifests)
                 + ".")
    return "\n".join(lines) + "\n"


def _steps(m: dict) -> str:
    """Steps of a manifest; for a fine-tuned checkpoint (``init_from``) the last run's and the total."""
    if "steps_this_run" not in m:
        return f"{m['steps']:,}"
    return f"{m['steps_this_run']:,} fine-tuning ({m['steps']:,} in all)"


def _memorised(q: dict) -> str:
    if "memorised_fraction" not in q:
        return "n/a"
    return f"{q['memorised_fraction']:.0%} of {q['n_samples']:,} (trained on {q['n_train_seen']:,})"


def _guided(q: dict) -> str:
    if "guided_accuracy" not in q:
        return "n/a"
    return (f"({q['guided']['scale']:g}): {q['guided_accuracy']:.1%}, {q['guided_frechet_heldout']:.1f} "
            f"({q['guided']['n']:,} samples)")


def latency_rows(res: dict) -> list[str]:
    """The rows of one widget-latency run (``benchmarks/widget_latency.py``): per widget, milliseconds as
    median / 95th percentile, and each of issue 23's targets met or missed by how much."""
    f = lambda d: f"{d['median']:.0f} / {d['p95']:.0f}" if d else "n/a"  # noqa: E731
    rows = []
    for w in res["widgets"]:
        s = w["summary"]
        target = "; ".join(f"{k.replace('_ms', '')} <= {t['p95_target']:.0f}: "
                           + ("met" if t["met"] else f"missed by {t['p95'] - t['p95_target']:.0f}")
                           for k, t in s["targets"].items())
        rows.append(f"| `{w['widget']}` | {w['notebook'][:2]} | {s['n_moves']} | {f(s['first_ms'])} | "
                    f"{f(s['total_ms'])} | {f(s['view_ms'])} | {f(s['render_ms'])} | {f(s['rest_ms'])} | {target} |")
    return rows


def widget_latency_table(folder=None) -> str:
    """Markdown table of every committed widget-latency run (``benchmarks/results/widget_latency_run*.json``)."""
    folder = Path(folder) if folder else artifacts.results_dir()
    runs = sorted(folder.glob("widget_latency_run*.json"))
    if not runs:
        raise FileNotFoundError(f"no widget_latency_run*.json in {folder}; run python benchmarks/widget_latency.py.")
    out = []
    for path in runs:
        res = json.loads(path.read_text())
        out += [f"`{path.name}`: {res['mode']} mode, {res['device']}, {res['browser']}, {res['date']}; "
                f"{res['moves_per_slider']} key presses per slider, milliseconds, median / 95th percentile:", "",
                "| widget | notebook | moves | first response (\"computing...\") | new figure painted | kernel: view "
                "(compute and artists) | kernel: PNG | messaging, decoding, paint | target (95th percentile) |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *latency_rows(res), ""]
    out.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(out) + "\n"


def grading_points_table(folder=None) -> str:
    """The nbgrader points per exercise and notebook (``sg.grading.points_table`` of the course's notebooks)."""
    from .grading import points_table

    return points_table(Path(folder) if folder else artifacts.course_dir() / "notebooks")


def notation_table(folder=None) -> str:
    """The course's notation sheet and abbreviations (``sg.notation.sheet``; ``folder`` is unused)."""
    from .notation import sheet

    return sheet()


#: Block name (``<!-- results:NAME -->`` on a page of ``rendered_pages``) -> the function that renders it.
TABLES = {"gpu-benchmark": gpu_benchmark_table, "cpu-benchmark": cpu_benchmark_table,
          "fast-sampling": fast_sampling_table, "fast-sampling-nfe": nfe_table, "guidance": guidance_table, "recipes": recipes_table,
          "course-timings": course_timings_table, "checkpoints": checkpoints_table,
          "grading-points": grading_points_table, "widget-latency": widget_latency_table,
          "notation": notation_table}


_BLOCK = re.compile(r"<!-- results:([\w-]+) -->\n.*?<!-- /results:\1 -->", flags=re.S)


def render_readme(text: str) -> str:
    """``text`` (a page: the README or a guide page) with every ``<!-- results:NAME -->`` ...
    ``<!-- /results:NAME -->`` block re-rendered by ``TABLES[NAME]``."""
    def fill(m):
        name = m.group(1)
        if name not in TABLES:
            raise ValueError(f"the block results:{name} is unknown; expected one of {sorted(TABLES)}.")
        return f"<!-- results:{name} -->\n{TABLES[name]()}<!-- /results:{name} -->"

    return _BLOCK.sub(fill, text)


def rendered_pages(course=None) -> list:
    """The pages whose result blocks this module renders: ``README.md``, ``CONTRIBUTING.md`` and ``docs/*.md`` of the
    course folder (those that exist; the website shows the last two as committed)."""
    course = Path(course) if course else artifacts.course_dir()
    pages = [course / "README.md", course / "CONTRIBUTING.md", *sorted((course / "docs").glob("*.md"))]
    return [p for p in pages if p.exists()]


def render_pages(course=None, *, write: bool = True) -> dict:
    """Re-render the result blocks of every page of ``rendered_pages(course)``; with ``write`` store the pages that
    changed. Returns {"stale": [pages whose blocks were out of date], "missing": [names of ``TABLES`` that no page
    shows]} (a table that fell off every page is as wrong as an out-of-date one)."""
    stale, shown = [], set()
    for path in rendered_pages(course):
        old = path.read_text(encoding="utf-8")
        shown |= {m.group(1) for m in _BLOCK.finditer(old)}
        new = render_readme(old)
        if new != old:
            stale.append(path)
            if write:
                path.write_text(new, encoding="utf-8")
    return {"stale": stale, "missing": sorted(set(TABLES) - shown)}


def main(argv=None) -> int:
    """``python -m scoregen_lite.courseware.results readme [--check] [--course DIR]``: re-render the result blocks of
    the README and the guide's pages (``rendered_pages``)."""
    p = argparse.ArgumentParser(prog="python -m scoregen_lite.courseware.results")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("readme", help="re-render the results blocks of README.md, CONTRIBUTING.md and docs/*.md "
                                      "from the committed files")
    r.add_argument("--check", action="store_true", help="exit 1 if a page is out of date or a table is on no page; "
                                                        "write nothing")
    r.add_argument("--course", help="the course folder (default: the one this package is in)")
    args = p.parse_args(argv)
    course = Path(args.course) if args.course else artifacts.course_dir()
    done = render_pages(course, write=not args.check)
    names = ", ".join(str(path.relative_to(course)) for path in done["stale"])
    if done["missing"]:
        print(f"no page shows the table(s) {', '.join(done['missing'])}: put a <!-- results:NAME --> "
              f"<!-- /results:NAME --> block on the page that should (README.md or a docs/ page)", file=sys.stderr)
    if args.check:
        if done["stale"]:
            print(f"{names} out of date with the committed results; run python -m scoregen_lite.courseware.results "
                  f"readme", file=sys.stderr)
        return 1 if done["stale"] or done["missing"] else 0
    print(f"results blocks rendered: {names or 'every page unchanged'}")
    return 1 if done["missing"] else 0


def sigma_data_table(source=None) -> str:
    """Markdown table of ``benchmarks/sigma_data_cpu.py`` (issue 32, notebook 10): the CPU recipe trained with
    EDM's sigma_data and P_mean (values for images in [-1, 1]) and with the values scaled to the course's [0, 1]
    digits, the same seed and steps; per setting its constants, steps and wall time, the Frechet distance to the
    held-out digits for each sampler (mean +- sd over the sampling seeds) and the ratio Heun / EM, with the noise
    floor (training digits vs held-out digits) beside. ``source``: a result dict, a JSON path, or None for
    ``benchmarks/results/sigma_data_cpu_run1.json``."""
    if isinstance(source, dict):
        r = source
    else:
        path = Path(source) if source else artifacts.results_dir() / "sigma_data_cpu_run1.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run benchmarks/sigma_data_cpu.py.")
        r = json.loads(path.read_text())
    labels = list(r["samplers"])

    def fd(s):
        return _fmt(s["mean"], ".2f") + ("" if s.get("sd") is None else f" ± {s['sd']:.2f}")

    fl = r["floor"]
    out = [f"{r['steps']:,} training steps per setting (same seed and batches) on {r['device']}; Frechet distance of "
           f"{r['n_samples']:,} samples x {r['sample_seeds']} sampling seeds to the {r['data']['n_heldout']:,} held-out "
           f"digits (mean ± sd over seeds); training digits: std {r['data']['train_std']:.3f}.", "",
           "| setting | sigma_data | P_mean | P_std | steps | train s | "
           + " | ".join(f"FD {s}" for s in labels) + f" | {labels[1]} / {labels[0]} |",
           "| --- " * (7 + len(labels)) + "|"]
    for name, run in r["runs"].items():
        s = run["setting"]
        out.append(f"| {name} | {s['sigma_data']:.4g} | {s['p_mean']:.3f} | {s['p_std']:.2g} | {run['train']['steps']:,} | "
                   f"{run['train']['seconds']:.0f} | " + " | ".join(fd(run["samplers"][k]) for k in labels)
                   + f" | {run['heun_over_em']:.2f} |")
    out.append("| floor: training digits | | | | | | " + " | ".join(fd(fl) for _ in labels) + " | |")
    return "\n".join(out) + "\n"


TABLES["sigma-data"] = sigma_data_table
TABLES["fast-sampling-window"] = lambda: nfe_table(load_fast_window())


def flow_runs(folder=None) -> dict:
    """The committed flow-matching benchmark runs (``benchmarks/results/flow_cpu_run*.json``, notebook 11) as
    ``{run name: its dict}``, in the order they were made. Each file holds ``device``, ``n_samples``, ``n_heldout``,
    ``frechet_real`` (as many training digits against the held-out ones), ``checkpoints`` ({model: {"sha256": ...}})
    and ``rows``, each with ``model``, ``sampler``, ``nfe`` and ``frechet`` (optional ``seconds``); a missing folder
    or file is refused, and so is a row without one of these keys."""
    runs = {p.stem: json.loads(p.read_text()) for p in _result_files(folder, "flow_cpu", "flow-matching")}
    for name, run in runs.items():
        for row in run.get("rows") or [None]:
            missing = [k for k in ("model", "sampler", "nfe", "frechet") if not isinstance(row, dict) or k not in row]
            if missing:
                raise KeyError(f"{name}.json: row {row!r} has no {missing[0]!r}; each row needs model, sampler, nfe "
                               f"and frechet (rerun the benchmark).")
    return runs


def load_flow(folder=None) -> dict:
    """The newest committed flow-matching benchmark run (``flow_runs``) as a dict, with its ``name`` (notebook 11)."""
    name, run = list(flow_runs(folder).items())[-1]
    return {**run, "name": name}


def flow_table(folder=None) -> str:
    """Markdown tables of every committed flow-matching benchmark run (``flow_runs``; notebook 11): per run, its
    device, digits per sampler, held-out digits, the training digits' own score and the checkpoints (flagged when one
    is not the checkpoint shipped now), then the Frechet distance to the held-out digits against NFE, one row per
    model and sampler, one column per NFE (blank where that pair was not run)."""
    out = []
    for name, run in flow_runs(folder).items():
        shipped = {}
        for model in run.get("checkpoints", {}):
            manifest = artifacts.course_dir() / "checkpoints" / f"{model}.json"
            shipped[model] = json.loads(manifest.read_text()).get("sha256") if manifest.exists() else None
        models = ", ".join(f"`{m}` (sha256 {str(c.get('sha256'))[:8]}"
                           f"{'' if c.get('sha256') == shipped[m] else ', not the checkpoint shipped now'})"
                           for m, c in run.get("checkpoints", {}).items())
        nfes = sorted({r["nfe"] for r in run["rows"]})
        pairs = list(dict.fromkeys((r["model"], r["sampler"]) for r in run["rows"]))
        fd = {(r["model"], r["sampler"], r["nfe"]): r["frechet"] for r in run["rows"]}
        out += [f"`{name}`: {run['n_samples']:,} digits per sampler on {run['device']}, Frechet distance to the "
                f"{run['n_heldout']} held-out digits (as many training digits score {_fmt(run.get('frechet_real'), '.1f')})"
                f"; checkpoints {models or 'n/a'}.", "",
                "| model | sampler | " + " | ".join(f"{n} NFE" for n in nfes) + " |", "| --- " * (2 + len(nfes)) + "|"]
        out += [f"| {m} | {s} | " + " | ".join(_fmt(fd[m, s, n], ".1f") if (m, s, n) in fd else "" for n in nfes) + " |"
                for m, s in pairs]
        out += [*([""] + [run["note"]] if run.get("note") else []), ""]
    out.append("Source: " + ", ".join(f"`benchmarks/results/{name}.json`" for name in flow_runs(folder)) + ".")
    return "\n".join(out) + "\n"


__all__ += ["flow_runs", "load_flow", "flow_table"]


if __name__ == "__main__":
    sys.exit(main())
