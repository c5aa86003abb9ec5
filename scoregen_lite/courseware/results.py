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
import re
import sys
from pathlib import Path

from .. import artifacts
from .result_files import fmt_value, result_files
from .sampling_tables import (  # noqa: F401 (sg.results.<name>, as the notebooks use them)
    cpu_benchmark_table,
    em_speedup,
    fast_row_label,
    fast_runs,
    fast_sampling_table,
    gpu_benchmark_table,
    load_fast_nfe,
    load_fast_window,
    nfe_table,
    ode_gap,
)
from .training_tables import (  # noqa: F401 (sg.results.<name>, as the notebooks use them)
    checkpoints_table,
    course_timings_table,
    guidance_table,
    latency_rows,
    latency_table,
    load_guidance,
    load_recipes,
    recipes_table,
    sigma_data_table,
    widget_latency_table,
)

__all__ = ["TABLES", "render_readme", "rendered_pages", "render_pages", "main", "gpu_benchmark_table",
           "cpu_benchmark_table", "fast_sampling_table", "fast_row_label", "ode_gap", "fast_runs", "load_fast_nfe",
           "load_fast_window", "em_speedup", "nfe_table", "load_guidance", "guidance_table", "load_recipes",
           "recipes_table", "course_timings_table", "checkpoints_table", "latency_rows", "latency_table", "widget_latency_table",
           "sigma_data_table"]


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
          "fast-sampling": fast_sampling_table, "fast-sampling-nfe": nfe_table, "guidance": guidance_table,
          "recipes": recipes_table,
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


TABLES["sigma-data"] = sigma_data_table
TABLES["fast-sampling-window"] = lambda: nfe_table(load_fast_window())


def flow_runs(folder=None) -> dict:
    """The committed flow-matching benchmark runs (``benchmarks/results/flow_cpu_run*.json``, notebook 11) as
    ``{run name: its dict}``, in the order they were made. Each file holds ``device``, ``n_samples``, ``n_heldout``,
    ``frechet_real`` (as many training digits against the held-out ones), ``checkpoints`` ({model: {"sha256": ...}})
    and ``rows``, each with ``model``, ``sampler``, ``nfe`` and ``frechet`` (optional ``seconds``); a missing folder
    or file is refused, and so is a row without one of these keys."""
    runs = {p.stem: json.loads(p.read_text()) for p in result_files(folder, "flow_cpu", "flow-matching")}
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
        nfes, column, merged = [], {}, set()   # two NFEs one apart share a column (Euler N, Heun 2N - 1): the larger
        for n in sorted({r["nfe"] for r in run["rows"]}, reverse=True):
            if nfes and nfes[-1] - n == 1 and nfes[-1] not in merged:
                merged.add(nfes[-1])
            else:
                nfes.append(n)
            column[n] = nfes[-1]
        nfes.reverse()
        def sampler(r):   # the sampler, and its churn where it has one (stochastic EDM, notebook 08)
            return r["sampler"] + (f", churn {r['churn']:g}" if r.get("churn") else "")

        pairs = list(dict.fromkeys((r["model"], sampler(r)) for r in run["rows"]))
        fd = {(r["model"], sampler(r), column[r["nfe"]]): fmt_value(r["frechet"], ".1f")
              + (f" ({r['nfe']})" if column[r["nfe"]] != r["nfe"] else "") for r in run["rows"]}
        out += [f"`{name}`: {run['n_samples']:,} digits per sampler on {run['device']}, Frechet distance to the "
                f"{run['n_heldout']} held-out digits (as many training digits score {fmt_value(run.get('frechet_real'), '.1f')})"
                f"; checkpoints {models or 'n/a'}.", "",
                "| model | sampler | " + " | ".join(f"{n} NFE" for n in nfes) + " |", "| --- " * (2 + len(nfes)) + "|"]
        out += [f"| {m} | {s} | " + " | ".join(fd.get((m, s, n), "") for n in nfes) + " |" for m, s in pairs]
        if merged:
            out += ["", "A value marked (n) took n evaluations, one fewer than its column's (Heun: 2N - 1)."]
        out += [*([""] + [run["note"]] if run.get("note") else []), ""]
    out.append("Source: " + ", ".join(f"`benchmarks/results/{name}.json`" for name in flow_runs(folder)) + ".")
    return "\n".join(out) + "\n"


__all__ += ["flow_runs", "load_flow", "flow_table"]
TABLES["flow"] = flow_table


if __name__ == "__main__":
    sys.exit(main())
