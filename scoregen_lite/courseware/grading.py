"""Grading a class with nbgrader: the course's exercises as nbgrader "source" notebooks, autograded.

``python -m scoregen_lite.courseware.grading source notebooks/ COURSE/source/`` writes, for every notebook that has
exercises, ``COURSE/source/NN_name/NN_name.ipynb`` (one nbgrader assignment per notebook) in which:

* each exercise's solution cell is an nbgrader **solution cell** (``grade_id`` ``NN-name``, stable across runs:
  the notebook's number and the exercise's name), its ``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers written
  as nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``, so ``generate_assignment`` replaces the solution by
  nbgrader's stub;
* the ``sg.exercises.check_...`` call that followed it in the same cell becomes its own **locked, graded test
  cell** (``grade_id`` ``NN-name-check``) worth ``sg.exercises.POINTS[check]`` points;
* every other cell is locked (read-only), so a student cannot edit the tests or the text.

The checks live in the course package, which students have installed: none has cases hidden from the student
copy, so no test cell has a ``### BEGIN HIDDEN TESTS`` region. When a check fails, the autograder's output (and
so the student's feedback from ``generate_feedback``) is the check's message alone, the catalogued hint or where
the answer is wrong (``ExerciseFailed`` renders itself without a traceback), and the exercise scores 0.

Needs the ``grading`` extra (``pip install -e ".[grading]"``) only to run nbgrader itself; writing the source
notebooks needs nothing beyond the course. See docs/teaching.md, "Grading with nbgrader".

nbgrader runs the ``alembic`` executable from ``PATH`` whenever it opens a gradebook, so in a virtual environment
that is not activated (``.venv/bin/nbgrader ...``) it fails with ``FileNotFoundError: 'alembic'``.
``python -m scoregen_lite.courseware.grading ARGS`` runs ``nbgrader ARGS`` with this interpreter's ``bin`` folder first on
``PATH`` (``nbgrader_env``), and ``run_nbgrader`` and ``gradebook`` do the same from Python, so grading works
whether or not the environment is activated.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..exercises import POINTS
from .copies import BEGIN, END, write_and_report

__all__ = ["SCHEMA_VERSION", "nbgrader_notebook", "nbgrader_folder", "exercise_cells", "points_table", "bin_dir",
           "nbgrader_env", "run_nbgrader", "gradebook", "main"]

#: The nbgrader cell-metadata schema the generated notebooks use (nbgrader 0.9 reads version 3).
SCHEMA_VERSION = 3

_CHECK = re.compile(r"^sg\.exercises\.(check_\w+)\(.*\)\s*$")


def _meta(grade_id: str, *, solution=False, grade=False, locked=True, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def exercise_cells(nb: dict) -> list:
    """[(cell index, check name)] of a course notebook's exercises: code cells holding a solution block and
    the ``sg.exercises.check_...`` call that checks it."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        src = _source(cell)
        if cell.get("cell_type") == "code" and BEGIN in src:
            checks = [m.group(1) for line in src.splitlines() if (m := _CHECK.match(line.strip()))]
            if len(checks) != 1:
                raise ValueError(f"cell {i}: an exercise cell needs exactly one sg.exercises.check_...(...) call "
                                 f"after its solution, found {checks or 'none'}.")
            out.append((i, checks[0]))
    return out


def nbgrader_notebook(nb: dict, number: str) -> dict:
    """The nbgrader source version of a course notebook (loaded JSON); ``number`` (e.g. "01") prefixes the
    ``grade_id`` of its cells. Raises ``ValueError`` for an exercise without a check or a check without points."""
    nb = json.loads(json.dumps(nb))
    found = dict(exercise_cells(nb))
    cells = []
    for i, cell in enumerate(nb["cells"]):
        cell.setdefault("metadata", {})
        if i not in found:
            cell["metadata"]["nbgrader"] = _meta(f"{number}-locked-{i:03d}")
            cells.append(cell)
            continue
        check = found[i]
        if check not in POINTS:
            raise ValueError(f"{check} has no points in sg.POINTS; add it there.")
        lines = _source(cell).splitlines(keepends=True)
        at = next(k for k, line in enumerate(lines) if _CHECK.match(line.strip()))
        solution = "".join(lines[:at]).rstrip() + "\n"
        solution = solution.replace(BEGIN, "### BEGIN SOLUTION").replace(END, "### END SOLUTION")
        name = check[len("check_"):]
        cell["source"] = solution.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"]["nbgrader"] = _meta(f"{number}-{name}", solution=True, locked=False)
        test = {"cell_type": "code", "execution_count": None, "outputs": [],
                "metadata": {"nbgrader": _meta(f"{number}-{name}-check", grade=True,
                                               points=POINTS[check])},
                "source": "".join(lines[at:]).strip().splitlines(keepends=True)}
        cells += [cell, test]
    nb["cells"] = cells
    return nb


def nbgrader_folder(src, dst) -> list:
    """Write the nbgrader source notebook of every course notebook in ``src`` that has exercises to
    ``dst/NN_name/NN_name.ipynb`` (``dst`` is an nbgrader course's ``source/`` folder). Returns the paths."""
    src, dst = Path(src), Path(dst)
    files = [src] if src.is_file() else sorted(src.glob("[0-9][0-9]_*.ipynb")) if src.is_dir() else None
    if files is None:
        raise ValueError(f"src={str(src)!r} is neither a notebook nor a folder; expected e.g. notebooks/.")
    if not files:
        raise ValueError(f"src={str(src)!r} holds no course notebooks (NN_name.ipynb).")
    if src.is_dir() and dst.resolve() == src.resolve():
        raise ValueError(f"dst={str(dst)!r} is the source folder; choose an nbgrader course's source/ folder.")
    written = []
    for f in files:
        nb = json.loads(f.read_text(encoding="utf-8"))
        if not exercise_cells(nb):
            continue
        out = dst / f.stem / f.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(nbgrader_notebook(nb, f.stem[:2]), indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        written.append(out)
    return written


def points_table(notebooks="notebooks") -> str:
    """Markdown table of the graded exercises (notebook, exercise, check, points) and each notebook's total,
    from ``sg.POINTS`` and the notebooks' exercise cells (rendered in docs/teaching.md)."""
    rows, totals = [], {}
    for f in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        for _, check in exercise_cells(json.loads(f.read_text(encoding="utf-8"))):
            points = POINTS[check]
            rows.append(f"| {f.stem} | `{f.stem[:2]}-{check[len('check_'):]}` | `sg.exercises.{check}` | {points} |")
            totals[f.stem] = totals.get(f.stem, 0) + points
    total = " · ".join(f"{k[:2]}: {v}" for k, v in totals.items())
    return ("| assignment (notebook) | grade_id | check | points |\n| --- | --- | --- | --- |\n" + "\n".join(rows)
            + f"\n\nTotal per notebook: {total}; {sum(totals.values())} points in all.\n")


def bin_dir() -> Path:
    """The folder of this interpreter's executables (``.venv/bin``, ``.venv\\Scripts`` on Windows), where pip put
    ``nbgrader`` and ``alembic``."""
    return Path(sys.executable).absolute().parent


def nbgrader_env(env=None) -> dict:
    """A copy of ``env`` (default ``os.environ``) with ``bin_dir()`` first on ``PATH``, so that nbgrader finds the
    ``alembic`` executable it runs (``nbgrader.api.get_alembic_version``) in an environment that is not activated."""
    env = dict(os.environ if env is None else env)
    first = str(bin_dir())
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != first]
    env["PATH"] = os.pathsep.join([first, *rest])
    return env


def run_nbgrader(*args, course=".", env=None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` (this interpreter's nbgrader, ``python -m nbgrader``) in the nbgrader course folder
    ``course`` with ``nbgrader_env(env)``; returns the CompletedProcess (output captured as text; the caller
    checks ``returncode``). Raises ``FileNotFoundError`` when ``course`` is not a folder."""
    course = Path(course)
    if not course.is_dir():
        raise FileNotFoundError(f"course={str(course)!r} is not a folder; pass an nbgrader course directory "
                                f"(the one with nbgrader_config.py and source/).")
    return subprocess.run([sys.executable, "-m", "nbgrader", *map(str, args)], cwd=course, env=nbgrader_env(env),
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def gradebook(course="."):
    """``with gradebook(course) as gb:`` nbgrader's ``Gradebook`` of ``course/gradebook.db``, opened with
    ``bin_dir()`` first on ``PATH`` (nbgrader runs ``alembic`` when it opens a gradebook); ``PATH`` is restored
    afterwards."""
    from nbgrader.api import Gradebook

    old = os.environ.get("PATH")
    os.environ["PATH"] = nbgrader_env()["PATH"]
    try:
        with Gradebook(f"sqlite:///{Path(course).absolute() / 'gradebook.db'}") as gb:
            yield gb
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old


def main(argv=None) -> int:
    """``python -m scoregen_lite.courseware.grading source SRC DST`` writes nbgrader source notebooks
    (``nbgrader_folder``); ``python -m scoregen_lite.courseware.grading ARGS`` runs ``nbgrader ARGS`` in the
    current folder, working whether or not the virtual environment is activated (see ``nbgrader_env``).
    Returns the exit status (2 with a message on bad paths)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m scoregen_lite.courseware.grading source SRC DST\n"
              "         writes nbgrader source notebooks (solution cells, locked graded test cells with POINTS)\n"
              "       python -m scoregen_lite.courseware.grading NBGRADER-COMMAND [ARGS...]\n"
              "         runs nbgrader with this interpreter's bin folder first on PATH (nbgrader needs its 'alembic'),\n"
              "         e.g. python -m scoregen_lite.courseware.grading autograde 01_scores_and_langevin --create")
        return 0 if args else 2
    if args[0] == "source":
        if len(args) != 3:
            print("error: source needs SRC (a notebook or folder, e.g. notebooks/) and DST (a course's source/ "
                  "folder)", file=sys.stderr)
            return 2
        return write_and_report(nbgrader_folder, args[1], args[2])
    return subprocess.call([sys.executable, "-m", "nbgrader", *args], env=nbgrader_env())


if __name__ == "__main__":
    raise SystemExit(main())
