"""Grading with nbgrader (``sg.grading``; ``python -m scoregen_lite.exercises nbgrader``).

The unit tests check the source notebooks' metadata. The end-to-end test runs the real nbgrader (its command
line, no mocks) in a temporary course directory, in quick mode: ``generate_assignment`` for every notebook with
exercises (the release has no solution code), then ``autograde`` of three students: the solutions (full marks in
the first and the last notebook with exercises), the released copy unchanged (zero), and one catalogued mistake (prior weights for
responsibilities in notebook 01's gmm_score: exactly that exercise's points lost, and its feedback from
``generate_feedback`` shows that mistake's hint rather than a traceback).

Runs when nbgrader is installed (``pip install -e ".[grading]"``); with SCOREGEN_GRADING_TESTS=1 (set by .ci/run)
a missing nbgrader fails instead of skipping."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import scoregen_lite as sg
from scoregen_lite import grading

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if grading.exercise_cells(json.loads(p.read_text()))]
CONFIG = 'c = get_config()\nc.CourseDirectory.course_id = "scoregen"\nc.Execute.timeout = 900\n'
HINT = "the weights must depend on x: use the responsibilities r_k(x)"


def test_source_notebooks_metadata():
    """Each exercise: an unlocked solution cell with nbgrader's markers, then a locked graded test cell worth
    POINTS[check]; every other cell locked; grade_ids unique and the same on every run."""
    assert len(WITH_EXERCISES) == 10 and set(sg.exercises.POINTS) == {c for p in WITH_EXERCISES for _, c in
                                                                     grading.exercise_cells(json.loads(p.read_text()))}
    for path in WITH_EXERCISES:
        nb = json.loads(path.read_text())
        out = grading.nbgrader_notebook(nb, path.stem[:2])
        assert out == grading.nbgrader_notebook(nb, path.stem[:2])            # stable
        metas = [c["metadata"]["nbgrader"] for c in out["cells"]]
        ids = [m["grade_id"] for m in metas]
        assert len(ids) == len(set(ids)) and all(m["schema_version"] == 3 for m in metas)
        n_ex = len(grading.exercise_cells(nb))
        assert len(out["cells"]) == len(nb["cells"]) + n_ex
        for k, (cell, m) in enumerate(zip(out["cells"], metas)):
            src = "".join(cell["source"])
            if m["solution"]:
                assert not m["locked"] and not m["grade"] and "### BEGIN SOLUTION" in src and "sg.exercises" not in src
                test, tm = out["cells"][k + 1], metas[k + 1]
                check = "".join(test["source"]).split("sg.exercises.")[1].split("(")[0]
                assert tm == {"grade": True, "grade_id": m["grade_id"] + "-check", "locked": True, "points":
                              sg.exercises.POINTS[check], "schema_version": 3, "solution": False, "task": False}
            elif not m["grade"]:
                assert m["locked"] and "BEGIN SOLUTION" not in src
        assert sum(m.get("points", 0) for m in metas) == sum(sg.exercises.POINTS[c] for _, c in
                                                             grading.exercise_cells(nb))


def test_points_table_is_in_the_readme():
    assert grading.points_table(REPO / "notebooks") in (REPO / "README.md").read_text()


@pytest.fixture(scope="module")
def nbgrader_cli():
    if os.environ.get("SCOREGEN_GRADING_TESTS") != "1":
        pytest.importorskip("nbgrader")
    exe = shutil.which("nbgrader", path=str(Path(sys.executable).parent)) or shutil.which("nbgrader")
    assert exe, "nbgrader is not installed: pip install -e \".[grading]\""
    return exe


def _run(exe, course, *args):
    env = dict(os.environ, SCOREGEN_QUICK="1", MPLBACKEND="Agg")
    res = subprocess.run([exe, *args], cwd=course, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}"
    return res


def _submit(course, student, assignment, nb):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb, indent=1))


def _scores(course, assignment, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        grades = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
        return sub.score, sub.max_score, grades


def test_nbgrader_end_to_end(tmp_path, nbgrader_cli):
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(CONFIG)
    written = grading.nbgrader_folder(REPO / "notebooks", course / "source")
    assert [p.parent.name for p in written] == [p.stem for p in WITH_EXERCISES]
    released = {}
    for path in WITH_EXERCISES:
        a = path.stem
        _run(nbgrader_cli, course, "generate_assignment", a, "--force")
        release = json.loads((course / "release" / a / f"{a}.ipynb").read_text())
        text = "\n".join("".join(c["source"]) for c in release["cells"])
        assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text
        for i, _ in grading.exercise_cells(json.loads(path.read_text())):    # no line of any solution is released
            src = "".join(json.loads(path.read_text())["cells"][i]["source"])
            body = src.split(sg.exercises.BEGIN)[1].split(sg.exercises.END)[0]
            for line in (ln.strip() for ln in body.splitlines()):
                if len(line) > 12:
                    assert line not in text, f"{a}: solution line {line!r} is in the release"
        released[a] = release

    # the solutions: full marks, autograded for the first and the last notebook with exercises (every notebook's
    # solutions pass their checks under nbval, and every notebook's nbgrader metadata and points are checked
    # above; autograding all nine here took 8 of CI's 30 minutes)
    start, totals = time.perf_counter(), {}
    for path in (WITH_EXERCISES[0], WITH_EXERCISES[-1]):
        a = path.stem
        _submit(course, "alice", a, json.loads((course / "source" / a / f"{a}.ipynb").read_text()))
        _run(nbgrader_cli, course, "autograde", a, "--student", "alice", "--create", "--force")
        score, max_score, _ = _scores(course, a, "alice")
        assert score == max_score == sum(sg.exercises.POINTS[c] for _, c in
                                         grading.exercise_cells(json.loads(path.read_text()))), a
        totals[a] = max_score
    print(f"autograde of {len(totals)} notebooks (quick mode): {time.perf_counter() - start:.0f} s; "
          f"points {totals}")

    # the released copy, unchanged: zero
    first = WITH_EXERCISES[0].stem
    _submit(course, "bob", first, released[first])
    _run(nbgrader_cli, course, "autograde", first, "--student", "bob", "--create", "--force")
    score, max_score, grades = _scores(course, first, "bob")
    assert score == 0 and max_score == totals[first], grades

    # one catalogued mistake: prior weights for responsibilities in gmm_score
    nb = json.loads((course / "source" / first / f"{first}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["metadata"]["nbgrader"]["grade_id"] == "01-gmm_score")
    src = "".join(cell["source"])
    assert src.count("resp = torch.softmax(log_terms, dim=1)") == 1
    cell["source"] = src.replace("resp = torch.softmax(log_terms, dim=1)",
                                 "resp = weights[None, :].expand(len(x), -1)").splitlines(keepends=True)
    _submit(course, "carol", first, nb)
    _run(nbgrader_cli, course, "autograde", first, "--student", "carol", "--create", "--force")
    score, max_score, grades = _scores(course, first, "carol")
    assert grades["01-gmm_score-check"] == 0 and score == max_score - sg.exercises.POINTS["check_gmm_score"], grades
    _run(nbgrader_cli, course, "generate_feedback", first, "--student", "carol", "--force")
    feedback = (course / "feedback" / "carol" / first / f"{first}.html").read_text()
    assert HINT in feedback and "ExerciseFailed: gmm_score" in feedback
    graded = json.loads((course / "autograded" / "carol" / first / f"{first}.ipynb").read_text())
    errors = [o for c in graded["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert len(errors) == 1 and errors[0]["traceback"] == [f"ExerciseFailed: {errors[0]['evalue']}"]
