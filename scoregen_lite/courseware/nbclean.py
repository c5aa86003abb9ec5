"""Keep committed notebooks clean: ``python -m scoregen_lite.nbclean notebooks/`` cleans them
in place, ``--check`` only reports (exit 1 when any notebook is not clean).

Clean means: execution counts renumbered 1, 2, 3, ... over the code cells (so
re-running a notebook top to bottom causes no churn, and nbval, which only
runs cells with a count when outputs are stored, is satisfied), no cell metadata except ``tags``, notebook
metadata reduced to the kernelspec and language name, no widget state, no
tqdm/widget views and no stored error output or warning. Outputs that teach
(text, small PNG figures, animations) are kept.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["clean_notebook", "problems", "main"]

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_IMAGE_CHARS = 300_000
_WARNING = re.compile(r"Warning|Traceback")
_PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar: "40%|####      | 4/10"


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value)


def _clean_output(out: dict, count: int) -> dict | None:
    out = dict(out)
    if out.get("output_type") == "execute_result":
        out["execution_count"] = count
    data = out.get("data")
    if data is not None:
        # a widget (slider panel, tqdm bar) shows nothing without a live kernel: drop the whole output
        if WIDGET_VIEW in data or not data:
            return None
        if set(data) == {"text/plain"} and _PROGRESS.search(_text(data["text/plain"])):
            return None
    if out.get("output_type") == "stream" and out.get("name") == "stderr":
        text = _text(out.get("text", ""))
        # tqdm progress bars are live feedback, not content
        if "\r" in text or _PROGRESS.search(text):
            return None
    return out


def clean_notebook(nb: dict) -> dict:
    """Return a cleaned copy of a notebook given as loaded JSON."""
    nb = json.loads(json.dumps(nb))
    lang = nb.get("metadata", {}).get("language_info", {}).get("name", "python")
    nb["metadata"] = {"kernelspec": KERNELSPEC, "language_info": {"name": lang}}
    count = 0
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
        cell.pop("id", None)
        if cell.get("cell_type") == "code":
            count += 1
            cell["execution_count"] = count
            outputs = (_clean_output(o, count) for o in cell.get("outputs", []))
            cell["outputs"] = [o for o in outputs if o is not None]
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def problems(nb: dict, name: str = "notebook") -> list[str]:
    """What is wrong with a committed notebook: not clean, error or warning outputs, large images."""
    found = []
    if clean_notebook(nb) != nb:
        found.append(f"{name}: not clean (run: python -m scoregen_lite.nbclean {name})")
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                found.append(f"{name} cell {i}: stored error output {out.get('ename')}")
            if out.get("name") == "stderr" and _WARNING.search(_text(out.get("text", ""))):
                found.append(f"{name} cell {i}: stored warning or traceback on stderr")
            for kind, value in (out.get("data") or {}).items():
                if kind.startswith("image/") and len(_text(value)) > MAX_IMAGE_CHARS:
                    found.append(f"{name} cell {i}: {kind} output of {len(_text(value)):,} chars (limit {MAX_IMAGE_CHARS:,})")
    return found


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _files(paths):
    for p in map(Path, paths):
        yield from (sorted(p.glob("*.ipynb")) if p.is_dir() else [p])


def main(argv=None) -> int:
    """Command line: clean notebooks in place, or ``--check`` them (exit 1 when any is not clean)."""
    parser = argparse.ArgumentParser(prog="python -m scoregen_lite.nbclean", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if anything is not clean")
    args = parser.parse_args(argv)
    status = 0
    for f in _files(args.paths):
        raw = f.read_text(encoding="utf-8")
        nb = json.loads(raw)
        if args.check:
            found = problems(nb, str(f))
            if not found and raw != _dump(nb):
                found = [f"{f}: not in the canonical JSON layout (run: python -m scoregen_lite.nbclean {f})"]
            for line in found:
                print(line)
            status |= bool(found)
        else:
            cleaned = _dump(clean_notebook(nb))
            if cleaned != raw:
                f.write_text(cleaned, encoding="utf-8")
                print(f"cleaned {f}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
