"""The tables of what was trained and how the course runs, rendered from committed files: guidance (notebook 09),
the training recipes and sigma_data benchmarks (notebook 10), the shipped checkpoints' manifests, the course timings
and the widgets' latency. Reachable as ``sg.results.<name>``."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .. import artifacts
from .result_files import fmt_value, result_files

__all__ = ["load_guidance", "guidance_table", "load_recipes", "recipes_table", "course_timings_table",
           "checkpoints_table", "latency_rows", "latency_table", "widget_latency_table", "sigma_data_table"]


def load_guidance(folder=None) -> dict:
    """The newest committed guidance benchmark (``guidance_cpu*.json``, the highest run number) as a dict (notebook 09)."""
    return json.loads(result_files(folder, "guidance_cpu", "guidance")[-1].read_text())


def guidance_table(folder=None) -> str:
    """Markdown table of every committed guidance benchmark run (``benchmarks/guidance_cpu.py``): per guidance
    scale, the share of digits read as asked and their Frechet distance to the held-out digits, with the
    course's targets at notebook 09's scale. Shown in notebooks/09_controllable_generation.ipynb."""
    runs = result_files(folder, "guidance_cpu", "guidance")
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
                f"score {fmt_value(r.get('frechet_real_heldout'), '.1f')}). Targets at notebook 09's scale "
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
    return json.loads(result_files(folder, "recipes_cpu", "recipe")[-1].read_text())


def recipes_table(source=None) -> str:
    """Markdown table of the training recipes at equal CPU time (``benchmarks/recipes_cpu.py``): per recipe its
    choices, steps and images/s, the Frechet distance to the held-out digits for each sampler and the held-out
    bits/dim beside the blurred-bin reference ``sg.recipes.bits_floor`` (not a lower bound); one block per committed run
    (``recipes_cpu*.json``), or for the result dict
    ``source``. Introduced in notebooks/10_training_recipes.ipynb."""
    if isinstance(source, dict):
        runs = [("this run", source)]
    else:
        paths = result_files(source, "recipes_cpu", "recipe")
        runs = [(f"`{p.stem}`", json.loads(p.read_text())) for p in paths]
    out = []
    for label, r in runs:
        first = next(iter(r["recipes"].values()), {})
        samplers = [k for k, v in first.items() if isinstance(v, dict) and "frechet" in v]
        out += [f"{label}: {fmt_value(r['budget_s'], '.0f')} s of training per recipe on {r['device']}; Frechet distance of "
                f"{r['n_samples']:,} samples to the {r['n_heldout']} held-out digits (training digits score "
                f"{fmt_value(r.get('frechet_train_vs_heldout'), '.1f')}); bits/dim of held-out digits.", "",
                "| recipe | precond | noise levels | weighting | steps | images/s | "
                + " | ".join(f"FD {s}" for s in samplers) + " | bits/dim (blurred-bin reference) |",
                "| --- " * (7 + len(samplers)) + "|"]
        for name, row in r["recipes"].items():
            rc = row["recipe"]
            out.append(f"| {name} | {rc['precond']} | {rc['noise']} | {rc['weighting']} | {row['train']['steps']:,} | "
                       f"{row['train']['images_per_s']:,.0f} | "
                       + " | ".join(fmt_value(row[s]["frechet"], ".1f") for s in samplers)
                       + f" | {fmt_value(row.get('bits_per_dim'), '.2f')} ({fmt_value(row.get('bits_floor'), '.2f')}) |")
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
        lines.append(f"| {nb} | {fmt_value((modes.get('full') or {}).get('seconds'), '.0f')} | "
                     f"{fmt_value((modes.get('quick') or {}).get('seconds'), '.0f')} | {some.get('date', data['date'])} | "
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
             "digits score) | Frechet distance to held-out digits: EM-500 / Heun-18 / Heun-18 capped churn 40 (other "
             "samplers named) | held-out "
             "bits/dim (blurred-bin reference) | samples that copy a training digit (d1/d2 < 1/3) | "
             "guided at notebook 09's scale (in "
             "brackets): read as asked, Frechet distance to held-out | size |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    others = []
    for path in manifests:
        m = json.loads(path.read_text())
        q = m["metrics"]
        if "frechet" not in q:   # not a score model (the noisy classifier): listed below the table
            acc = ", ".join(f"{float(t):g}: {a:.0%}" for t, a in q.get("heldout_accuracy_at_t", {}).items())
            others.append(f"`{path.stem}.pt`: {m['what']}; {m['steps']:,} steps on {m['device']} in "
                          f"{fmt_value((m.get('seconds') or 0), '.0f')} s; held-out accuracy at t = {acc}; "
                          f"{m['size_mb']:.1f} MB.")
            continue
        fast = q.get("fast", {})
        own = _sampler_name(q)
        if q.get("sampler", "em") == "em":
            heldout = " / ".join(fmt_value(v, ".1f") for v in (q.get("frechet_heldout"),
                                                               fast.get("Heun-18", {}).get("frechet_heldout"),
                                                               fast.get("Heun-18 churn 40", {}).get("frechet_heldout")))
        else:             # a checkpoint measured with its own sampler (a flow, notebook 11): each value named
            heldout = " / ".join(f"{name} {fmt_value(v.get('frechet_heldout'), '.1f')}"
                                 for name, v in ((own, q), *((k, f) for k, f in fast.items())))
        lines.append(
            f"| `{path.stem}.pt` | {m['what']} | {m['device']} | {_steps(m)} x {m['batch_size']} | "
            f"{fmt_value((m.get('seconds') or 0) / 60, '.0f')} min{' (last run)' if 'steps_this_run' in m else ''} | "
            f"{q['frechet']:.1f} on {q['n_samples']:,} {own} "
            f"samples ({q['frechet_real_heldout']:.1f}) | {heldout} | {q['bits_per_dim']:.2f} "
            f"({fmt_value(q.get('bits_floor'), '.2f')}) | {_memorised(q)} | {_guided(q)} | {m['size_mb']:.1f} MB |")
    lines.append("")
    lines += [*others, ""] if others else []
    lines.append("Commands, commits, sha256 and all metrics: " + ", ".join(f"`checkpoints/{p.name}`" for p in manifests)
                 + ".")
    return "\n".join(lines) + "\n"


def _sampler_name(q: dict) -> str:
    """How a manifest's own sampler is named in the table: "EM-500"; a flow's "Flow-Heun (19 NFE)" (notebook 11),
    by the registry's label (``sg.samplers.SAMPLERS``)."""
    from ..core.registry import SAMPLERS

    label = SAMPLERS[q.get("sampler", "em")].label
    return f"{label}-{q['nfe']}" if q.get("sampler", "em") == "em" else f"{label} ({q['nfe']} NFE)"


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


#: how the latency table names each timing (``benchmarks/widget_latency.py``'s keys)
_LATENCY_NAMES = {"first_ms": "first response", "preview_ms": "first figure", "total_ms": "final figure"}


def _latency_verdicts(s: dict) -> str:
    """One widget's targets (95th percentiles) met or missed by how much, and its comparison with the baseline run."""
    f = lambda k: _LATENCY_NAMES.get(k, k.replace("_ms", ""))  # noqa: E731
    out = [f"{f(k)} <= {t['p95_target']:.0f}: " + ("met" if t["met"] else f"missed by {t['p95'] - t['p95_target']:.0f}")
           for k, t in s["targets"].items()]
    if s.get("baseline"):
        out.append("no worse than the baseline: " + ", ".join(
            f"{f(k)} {b['p95']:.0f} vs {b['baseline_p95']:.0f} " + ("met" if b["met"] else "missed")
            for k, b in s["baseline"].items()))
    return "; ".join(out)


def latency_rows(res: dict) -> list[str]:
    """The rows of one widget-latency run (``benchmarks/widget_latency.py``): per widget, milliseconds as
    median / 95th percentile, and each target met or missed by how much. A run made before issue 35 has no
    ``preview_ms``: its only figure, the final one, is also its first."""
    f = lambda d: f"{d['median']:.0f} / {d['p95']:.0f}" if d else "n/a"  # noqa: E731
    rows = []
    for w in res["widgets"]:
        s = w["summary"]
        first_figure = s.get("preview_ms", s["total_ms"])
        preview = s.get("preview_view_ms")
        kernel_preview = (f"{f(preview)} + {f(s.get('preview_render_ms'))}" if preview else "n/a")
        rows.append(f"| `{w['widget']}` | {w['notebook'][:2]} | {s['n_moves']} | {f(s['first_ms'])} | "
                    f"{f(first_figure)} | {f(s['total_ms'])} | {kernel_preview} | {f(s['view_ms'])} | "
                    f"{f(s['render_ms'])} | {f(s['rest_ms'])} | {_latency_verdicts(s)} |")
    return rows


def latency_table(res: dict, name: str) -> str:
    """The table of one widget-latency run (``res``, from the file ``name``): its mode, device, browser and date,
    then ``latency_rows``."""
    base = f"; MNIST explorers compared with `{res['baseline']}` (no worse: 95th percentile at most " \
           f"{res['no_worse']:g} times its)" if res.get("baseline") else ""
    return "\n".join([
        f"`{name}`: {res['mode']} mode, {res['device']}, {res['browser']}, {res['date']}; {res['moves_per_slider']} key "
        f"presses per slider, milliseconds, median / 95th percentile{base}:", "",
        "| widget | notebook | moves | first response (\"computing...\") | first figure painted (the preview, if any) | "
        "final figure painted | kernel: preview view + PNG | kernel: view (compute and artists) | kernel: PNG | "
        "messaging, decoding, paint | target (95th percentile) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", *latency_rows(res)]) + "\n"


def widget_latency_table(folder=None) -> str:
    """Markdown tables of every committed widget-latency run (``benchmarks/results/widget_latency_run*.json``) in the
    order they were made, after a line with the newest run's verdicts: how many explorers meet all their targets at
    the 95th percentile, and which miss by how much."""
    runs = result_files(folder, "widget_latency", "widget-latency")
    results = [json.loads(path.read_text()) for path in runs]
    newest = results[-1]
    missed = [f"`{w['widget']}` ({_latency_verdicts(w['summary'])})" for w in newest["widgets"]
              if not all(t["met"] for t in w["summary"]["targets"].values())
              or not all(b["met"] for b in (w["summary"].get("baseline") or {}).values())]
    n = len(newest["widgets"])
    out = [f"Newest run, `{runs[-1].name}` ({newest['mode']} mode, {newest['device']}): {n - len(missed)} of {n} explorers "
           f"meet all their targets" + (f"; {len(missed)} miss: " + "; ".join(missed) if missed else "") + ".", ""]
    for path, res in zip(runs, results):
        out += [latency_table(res, path.name)]
    out.append("Source: " + ", ".join(f"`benchmarks/results/{p.name}`" for p in runs) + ".")
    return "\n".join(out) + "\n"


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
        return fmt_value(s["mean"], ".2f") + ("" if s.get("sd") is None else f" ± {s['sd']:.2f}")

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
