"""Course tools for teachers: ``python -m scoregen_lite.courseware.course timings`` executes every notebook in
quick mode (and, with ``--full``, in full mode) and writes the table of seconds per notebook, mode
and device; with ``--json benchmarks/results/course_timings.json`` it also writes the file that the
timing table of docs/teaching.md is rendered from (``sg.results.course_timings_table``).
``python -m scoregen_lite.courseware.course site [--out site/]`` builds the course website from the committed,
executed notebooks (``sg.site.build_site``; needs the ``site`` extra).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["run_notebook", "timings", "main"]


def run_notebook(path, quick: bool, timeout: int = 3600, write: bool = False) -> float:
    """Execute a notebook in a fresh kernel (``SCOREGEN_QUICK`` set accordingly, working directory =
    the notebook's folder) and return the wall time in seconds; with ``write`` the executed notebook
    replaces the file, cleaned by ``scoregen_lite.nbclean`` (how the committed outputs are made).
    Raises ``nbclient.exceptions.CellExecutionError`` if a cell fails."""
    import nbclient
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    old = os.environ.get("SCOREGEN_QUICK")
    os.environ["SCOREGEN_QUICK"] = "1" if quick else "0"
    try:
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        if write:
            import json

            from .nbclean import clean_notebook

            cleaned = clean_notebook(json.loads(nbformat.writes(nb)))
            path.write_text(json.dumps(cleaned, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return seconds
    finally:
        if old is None:
            os.environ.pop("SCOREGEN_QUICK", None)
        else:
            os.environ["SCOREGEN_QUICK"] = old


def timings(notebooks, full: bool = False, log=print, write: bool = False, cold_cache: bool = True) -> list[dict]:
    """Run each notebook in quick mode (and full mode with ``full``); one row per run:
    {"notebook", "mode", "seconds", "device", "cache"}. With ``write`` (and ``full``) the full-mode outputs
    are written back into the notebooks. With ``cold_cache`` (the default) the runs start from an empty
    ``SCOREGEN_CACHE`` (a temporary folder shared by the runs, in order), so whatever a student's first run
    trains or downloads (the metrics classifier, for one) is counted where it happens."""
    import tempfile

    from ..runtime import device

    rows = []
    old = os.environ.get("SCOREGEN_CACHE")
    with tempfile.TemporaryDirectory(prefix="scoregen-cache-") as tmp:
        if cold_cache:
            os.environ["SCOREGEN_CACHE"] = tmp
        try:
            for nb in notebooks:
                for quick in ([True, False] if full else [True]):
                    seconds = run_notebook(nb, quick, write=write and not quick)
                    rows.append({"notebook": Path(nb).stem, "mode": "quick" if quick else "full", "seconds": seconds,
                                 "device": str(device()), "cache": "cold" if cold_cache else "warm",
                                 "date": datetime.date.today().isoformat()})
                    log(f"{Path(nb).stem:<32} {rows[-1]['mode']:<6} {seconds:7.1f} s")
        finally:
            if old is None:
                os.environ.pop("SCOREGEN_CACHE", None)
            else:
                os.environ["SCOREGEN_CACHE"] = old
    return rows


def to_markdown(rows) -> str:
    lines = ["| notebook | mode | seconds | device |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['notebook']} | {r['mode']} | {r['seconds']:.0f} | {r['device']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Command line: ``timings [--full] [--out FILE] [NOTEBOOK ...]``."""
    parser = argparse.ArgumentParser(prog="python -m scoregen_lite.courseware.course")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("timings", help="execute the notebooks and write a timing table (markdown)")
    t.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    t.add_argument("--full", action="store_true", help="also run full mode (slow: what a student runs)")
    t.add_argument("--out", default="course-timings.md")
    t.add_argument("--json", help="also write the rows, the device and the date as JSON (docs/teaching.md renders it)")
    t.add_argument("--write", action="store_true", help="with --full: write the full-mode outputs into the notebooks")
    t.add_argument("--warm-cache", action="store_true",
                   help="use your SCOREGEN_CACHE (default: an empty one, as on a student's first run)")
    w = sub.add_parser("site", help="build the course website from the committed notebooks (no execution)")
    w.add_argument("--out", default="site", help="output folder (replaced; ignored by git)")
    args = parser.parse_args(argv)
    if args.command == "site":
        from .site import build_site

        build_site(args.out)
        return 0
    notebooks = args.notebooks or sorted(str(p) for p in Path("notebooks").glob("*.ipynb"))
    if not notebooks:
        print("error: no notebooks given and none in ./notebooks; run from the repository root.", file=sys.stderr)
        return 2
    rows = timings(notebooks, full=args.full, write=args.write, cold_cache=not args.warm_cache)
    table = to_markdown(rows)
    Path(args.out).write_text(table)
    if args.json:
        from ..runtime import device_name

        path = Path(args.json)
        if path.exists():   # keep the rows of the notebooks not run this time
            ran = {r["notebook"] for r in rows}
            kept = [r for r in json.loads(path.read_text())["rows"] if r["notebook"] not in ran]
            rows = sorted(kept + rows, key=lambda r: (r["notebook"], r["mode"] != "quick"))
        path.write_text(json.dumps({"device": device_name(), "date": datetime.date.today().isoformat(),
                                    "rows": rows}, indent=2) + "\n")
    print(f"\n{table}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
