"""The sampling benchmarks' tables and numbers, rendered from their committed files: the GPU and CPU MNIST benchmarks
(notebook 07) and fast sampling (notebook 08: the classic run, Frechet distance against NFE, EDM's windowed churn,
the speed-up against the cheapest Euler-Maruyama that matches a sampler). Reachable as ``sg.results.<name>``."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .. import artifacts
from .result_files import fmt_value, get_key, result_files

__all__ = ["gpu_benchmark_table", "cpu_benchmark_table", "fast_sampling_table", "fast_row_label", "ode_gap", "fast_runs",
           "load_fast_nfe", "load_fast_window", "em_speedup", "nfe_table"]


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
        ("training images/s", lambda r, _: fmt_value(get_key(r, "train", "images_per_s"), ",.0f")),
        ("training wall time, s", lambda r, _: fmt_value(get_key(r, "train", "seconds"), ".0f")),
        ("steps x batch", lambda r, _: f"{get_key(r, 'train', 'steps')} x {get_key(r, 'config', 'batch_size')}"),
        ("Frechet distance, 10k EM-500 samples", lambda r, _: fmt_value(get_key(r, "em", "frechet"), ".1f")),
        ("class histogram within 10 % +- 2 pts",
         lambda r, _: {True: "yes", False: "no"}.get(get_key(r, "em", "histogram_ok"), "n/a")),
        ("10k EM-500 samples, s", lambda r, _: fmt_value(get_key(r, "em", "seconds"), ".1f")),
        ("10k EDM Heun-18 samples (35 NFE), s", lambda r, _: fmt_value(get_key(r, "edm", "seconds"), ".1f")),
        ("Frechet distance, EDM Heun-18", lambda r, _: fmt_value(get_key(r, "edm", "frechet"), ".1f")),
        ("10k EDM Heun-18 + capped churn samples, s", lambda r, _: fmt_value(get_key(r, "edm_churn", "seconds"), ".1f")),
        ("Frechet distance, EDM Heun-18 + capped churn", lambda r, _: fmt_value(get_key(r, "edm_churn", "frechet"), ".1f")),
        ("10k DPM-Solver++(2M)-20 samples, s", lambda r, _: fmt_value(get_key(r, "dpm", "seconds"), ".1f")),
        ("Frechet distance, DPM-Solver++(2M)-20", lambda r, _: fmt_value(get_key(r, "dpm", "frechet"), ".1f")),
        ("bits/dim", lambda r, _: fmt_value(get_key(r, "bits_per_dim"), ".2f")),
        ("Frechet scale: real vs real digits", lambda _, res: fmt_value(res.get("frechet_real_vs_real"), ".2f")),
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


def cpu_benchmark_table(folder=None) -> str:
    """Markdown table of every committed CPU benchmark run (``benchmarks/mnist_cpu.py``)."""
    runs = result_files(folder, "mnist_cpu", "CPU benchmark")
    lines = ["| run | device | recipe | training images/s | steps in the budget | Frechet distance (EM-500) | target "
             "| histogram within 10 % +- 3 pts | 64 digits from the shipped checkpoint |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in runs:
        r = json.loads(path.read_text())
        # runs before the held-out reference (mnist_cpu_run1) measured against training digits, for the GPU target
        against = "held-out" if get_key(r, "quality", "reference_digits") else "training"
        target = "the reference recipe's, " if "reference_frechet" not in r else ""
        lines.append(
            f"| {path.stem} | {r['device']} | {_recipe_name(r.get('config', {}))} | "
            f"{fmt_value(get_key(r, 'train', 'images_per_s'), ',.0f')} | "
            f"{fmt_value(get_key(r, 'train', 'steps'), ',')} in {fmt_value(get_key(r, 'train', 'seconds'), '.0f')} s | "
            f"{fmt_value(get_key(r, 'quality', 'frechet'), '.1f')} to {against} digits, {get_key(r, 'quality', 'n_samples')} "
            f"samples | {target}<= {fmt_value(r.get('target_frechet'), '.2f')} | "
            f"{ {True: 'yes', False: 'no'}.get(get_key(r, 'quality', 'histogram_ok_3pts'), 'n/a') } "
            f"(gap {fmt_value(get_key(r, 'quality', 'max_histogram_gap'), '.3f')}) | "
            f"{fmt_value(get_key(r, 'shipped_64', 'seconds'), '.1f')} s ({get_key(r, 'shipped_64', 'sampler')}) |")
    lines.append("")
    lines.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(lines) + "\n"


def _fast_runs(folder, plan: str) -> list:
    """The committed fast-sampling runs of one plan (``benchmarks/fast_sampling_cpu.py --plan``): "classic" (runs
    1-3, every sampler once; files without a plan are classic) or "nfe" (run 4, Frechet distance against NFE)."""
    paths = [p for p in result_files(folder, "fast_sampling_cpu", "fast-sampling")
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
                f"{fmt_value(r.get('frechet_real'), '.1f')}).", "",
                "| sampler | NFE | seconds per 1,000 digits | Frechet distance |", "| --- | --- | --- | --- |"]
        for row in r["rows"]:
            out.append(f"| {fast_row_label(row)} | {row['nfe']} | {fmt_value(row['seconds_per_1000'], '.1f')} | "
                       f"{fmt_value(row['frechet'], '.1f')} |")
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
    ratio = f"Frechet ratio to EM-500 {fmt_value(s['sampler']['frechet'] / em500['frechet'], '.2f')}; " if em500 else ""
    how = (f"reached by {s['baseline']['label']}, the cheapest EM within {s['tol']:.0%} of it" if s["reach"] else
           f"better than every EM row; baseline {s['baseline']['label']}, the cheapest EM within {s['tol']:.0%} of "
           f"EM's best")
    return (f"EDM Heun-18 with churn capped at every level, {s['sampler']['nfe']} NFE: {ratio}{how}: "
            f"{fmt_value(s['nfe_ratio'], '.1f')}x fewer evaluations, {fmt_value(s['seconds_ratio'], '.1f')}x less time "
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
           f" (1-minute load average {fmt_value(load[0][0] if load[0] else None, '.1f')} at the start, "
           f"{fmt_value(load[1][0] if load[1] else None, '.1f')} at the end: times are inflated and noisy, see the note in "
           f"the file); scored against the {run['n_heldout']} held-out digits.", "",
           "| sampler | NFE | seconds per 1,000 digits | Frechet distance | precision | recall | feature spread | "
           "total variation |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    t = run.get("train_measures", {})
    out.append(f"| {run['n_samples']:,} training digits (no sampler) | | | {fmt_value(run.get('frechet_real'), '.1f')} | "
               f"{fmt_value(t.get('precision'), '.3f')} | {fmt_value(t.get('recall'), '.3f')} | "
               f"{fmt_value(t.get('feature_spread_vs_heldout'), '.3f')} | {fmt_value(t.get('total_variation'), '.1f')} |")
    for r in sorted(run["rows"], key=lambda r: (r["sampler"] != "em", r["nfe"], r["label"])):
        out.append(f"| {fast_row_label(r)} | {r['nfe']} | {fmt_value(r['seconds_per_1000'], '.0f')} | "
                   f"{fmt_value(r['frechet'], '.1f')} | "
                   f"{fmt_value(r.get('precision'), '.3f')} | {fmt_value(r.get('recall'), '.3f')} | "
                   f"{fmt_value(r.get('feature_spread_vs_heldout'), '.3f')} | {fmt_value(r.get('total_variation'), '.1f')} |")
    out += ["", f"Held-out digits' total variation: {fmt_value(run.get('heldout_total_variation'), '.1f')}. "
                f"Source: `benchmarks/results/{name}`."]
    return "\n".join(out) + "\n"
