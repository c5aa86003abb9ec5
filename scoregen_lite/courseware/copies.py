"""Student copies of the course notebooks: each solution block (between ``# BEGIN SOLUTION`` and
``# END SOLUTION``) becomes ``raise NotImplementedError(...)`` at the same indentation, and outputs are cleared.

``python -m scoregen_lite.courseware.copies strip notebooks/ student/`` (the command line lives here and is re-exported by
``sg.exercises``, whose checks the copies keep); ``... nbgrader notebooks/ COURSE/source/`` writes nbgrader source
notebooks instead (``sg.grading``).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["BEGIN", "END", "STUB", "strip_source", "strip_notebook", "strip_folder", "write_and_report", "main"]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'

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
    parser = argparse.ArgumentParser(prog="python -m scoregen_lite.courseware.copies",
                                     description="Write student copies of the course notebooks (nbgrader source "
                                                 "notebooks: python -m scoregen_lite.courseware.grading source).")
    sub = parser.add_subparsers(dest="command", required=True)
    strip = sub.add_parser("strip", help="replace solutions by NotImplementedError and clear outputs")
    strip.add_argument("src", help="a notebook or a folder of notebooks, e.g. notebooks/")
    strip.add_argument("dst", help="output folder, e.g. student/")
    args = parser.parse_args(argv)
    return write_and_report(strip_folder, args.src, args.dst)


def write_and_report(write, src, dst) -> int:
    """The command lines' common end: ``write(src, dst)`` (``strip_folder`` here, ``grading.nbgrader_folder``),
    each written path printed; a ValueError (a bad path, a notebook without its markers) printed as ``error: ...``
    and exit status 2 instead of a traceback."""
    try:
        written = write(src, dst)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
