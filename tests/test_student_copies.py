"""Student copies: every exercise check fails on the stub and passes on the solution, and each
student copy runs (quick mode) up to its first exercise."""
import ast
import json
import math
import os
import re

import pytest
import torch
from conftest import REPO

import scoregen_lite as sg
from scoregen_lite.courseware.copies import strip_notebook, strip_source
from scoregen_lite.exercises import ExerciseFailed

NB_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NB_DIR) if f.endswith(".ipynb"))


def exercises():
    """(notebook, solution source, check call, earlier solutions of the same notebook) for every exercise cell
    followed by its check: a later exercise may call an earlier one's function (01's sampler calls the student's
    langevin_step), so the earlier solutions run first."""
    found = []
    for name in NOTEBOOKS:
        nb = json.load(open(os.path.join(NB_DIR, name), encoding="utf-8"))
        earlier = []
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and "# BEGIN SOLUTION" in src:
                check = re.search(r"^(sg\.exercises\.check_\w+\(\w+\))\s*$", src, re.M)
                assert check, f"{name}: an exercise cell must end with its sg.exercises.check_...(...) call"
                found.append((name, src, check.group(1), tuple(earlier)))
                earlier.append(src)
    return found


EXERCISES = exercises()


def test_every_notebook_with_exercises_is_covered():
    assert {n for n, _, _, _ in EXERCISES} >= {n for n in NOTEBOOKS if not n.startswith("07_")}
    assert len(EXERCISES) >= 9


def _namespace():
    return {"torch": torch, "math": math, "sg": sg}


def _solved(name, earlier):
    """A namespace in which the notebook's earlier exercises are solved (their checks pass)."""
    ns = _namespace()
    for src in earlier:
        exec(compile(src, name, "exec"), ns)
    return ns


@pytest.mark.parametrize("name, src, check, earlier", EXERCISES,
                         ids=[f"{n[:2]}-{c.split('(')[0].split('_', 1)[1]}" for n, _, c, _ in EXERCISES])
def test_check_passes_on_solution_and_fails_on_stub(name, src, check, earlier, capsys):
    ns = _solved(name, earlier)
    capsys.readouterr()
    exec(compile(src, name, "exec"), ns)  # the solution cell runs its own check
    assert "passed" in capsys.readouterr().out
    stub = strip_source(src)
    assert "NotImplementedError" in stub
    with pytest.raises((NotImplementedError, ExerciseFailed)):
        exec(compile(stub, name, "exec"), _solved(name, earlier))


@pytest.mark.slow
def test_student_copies_run_up_to_first_exercise(tmp_path):
    """Execute each student copy in a kernel, quick mode: every cell before the first exercise runs
    without error, and the first error is the exercise's NotImplementedError."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    env_quick = os.environ.get("SCOREGEN_QUICK")
    os.environ["SCOREGEN_QUICK"] = "1"
    try:
        for name in NOTEBOOKS:
            nb = strip_notebook(json.load(open(os.path.join(NB_DIR, name), encoding="utf-8")))
            cells = nb["cells"]
            first = next((i for i, c in enumerate(cells) if "raise NotImplementedError(\"Exercise" in "".join(c["source"])), None)
            if first is None:  # no exercise (notebook 07): too slow to run whole here; nbval runs it
                continue
            nb["cells"] = cells[: first + 1]
            node = nbformat.reads(json.dumps(nb), as_version=4)
            client = nbclient.NotebookClient(node, timeout=600, kernel_name="python3",
                                             resources={"metadata": {"path": NB_DIR}})
            with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
                client.execute()
            assert "NotImplementedError" in str(info.value) and "Exercise" in str(info.value), name
            executed = [c for c in node.cells if c.cell_type == "code"]
            errors = [i for i, c in enumerate(executed) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
            assert errors == [len(executed) - 1], f"{name}: an error before the first exercise"
    finally:
        if env_quick is None:
            os.environ.pop("SCOREGEN_QUICK", None)
        else:
            os.environ["SCOREGEN_QUICK"] = env_quick


def test_exercise_cells_are_valid_python_after_stripping():
    for name, src, _, _ in EXERCISES:
        ast.parse(strip_source(src))
