"""Grading with nbgrader (``sg.grading``; ``python -m scoregen_lite.courseware.grading source``).

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
from scoregen_lite.courseware import copies

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if grading.exercise_cells(json.loads(p.read_text()))]
CONFIG = 'c = get_config()\nc.CourseDirectory.course_id = "scoregen"\nc.Execute.timeout = 900\n'
HINT = "the weights must depend on x: use the responsibilities r_k(x)"


def test_source_notebooks_metadata():
    """Each exercise: an unlocked solution cell with nbgrader's markers, then a locked graded test cell worth
    POINTS[check]; every other cell locked; grade_ids unique and the same on every run."""
    assert WITH_EXERCISES == NOTEBOOKS       # every notebook has exercises (read from the folder, not counted by hand)
    assert set(sg.exercises.POINTS) == {c for p in WITH_EXERCISES for _, c in grading.exercise_cells(json.loads(p.read_text()))}
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


def test_points_table_is_in_the_teachers_guide():
    assert grading.points_table(REPO / "notebooks") in (REPO / "docs" / "teaching.md").read_text()


@pytest.fixture(scope="module")
def nbgrader_cli():
    if os.environ.get("SCOREGEN_GRADING_TESTS") != "1":
        pytest.importorskip("nbgrader")
    exe = shutil.which("nbgrader", path=str(Path(sys.executable).parent)) or shutil.which("nbgrader")
    assert exe, "nbgrader is not installed: pip install -e \".[grading]\""
    return exe


def _without_venv_bin(path=None):
    """PATH without this interpreter's bin folder: a virtual environment that is not activated."""
    here = str(Path(sys.executable).absolute().parent)
    return os.pathsep.join(p for p in (path or os.environ.get("PATH", "")).split(os.pathsep) if p and p != here)


def _run(exe, course, *args):
    # as a teacher who did not activate the environment: PATH lacks the venv's bin (where nbgrader's alembic is)
    env = dict(os.environ, SCOREGEN_QUICK="1", MPLBACKEND="Agg", PATH=_without_venv_bin())
    env.pop("VIRTUAL_ENV", None)
    res = grading.run_nbgrader(*args, course=course, env=env, timeout=1800)
    assert res.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}"
    return res


def _submit(course, student, assignment, nb):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb, indent=1))


def _scores(course, assignment, student):
    with grading.gradebook(course) as gb:
        sub = gb.find_submission(assignment, student)
        grades = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
        return sub.score, sub.max_score, grades


@pytest.mark.slow
def test_grading_without_an_activated_environment(tmp_path, nbgrader_cli, monkeypatch):
    """nbgrader runs the ``alembic`` executable from PATH when it creates a gradebook; with the venv not activated
    (its bin folder not on PATH) plain nbgrader fails with FileNotFoundError: 'alembic'. The course's way
    (``python -m scoregen_lite.courseware.grading``, ``grading.run_nbgrader``, ``grading.gradebook``) works. Each step gets a
    fresh course folder: a gradebook that nbgrader failed to finish opens without alembic afterwards."""
    def course(name):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "nbgrader_config.py").write_text(CONFIG)
        return folder

    env = dict(os.environ, PATH=_without_venv_bin())
    env.pop("VIRTUAL_ENV", None)
    if shutil.which("alembic", path=env["PATH"]) is None:   # the failure this guards against is real here
        plain = subprocess.run([nbgrader_cli, "db", "student", "add", "dana"], cwd=course("plain"), env=env,
                               capture_output=True, text=True, timeout=600)
        assert plain.returncode != 0 and "alembic" in plain.stdout + plain.stderr
    res = grading.run_nbgrader("db", "student", "add", "dana", course=course("run"), env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-3000:]
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.grading", "db", "student", "add", "dana"],
                         cwd=course("module"), env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-3000:]
    monkeypatch.setenv("PATH", env["PATH"])          # in-process too (the gradebook of the tests' _scores)
    fresh = course("inprocess")
    with grading.gradebook(fresh) as gb:
        gb.add_student("dana")
        assert [s.id for s in gb.students] == ["dana"]
    assert os.environ["PATH"] == env["PATH"]          # restored afterwards


def test_nbgrader_env_puts_the_interpreters_bin_first():
    env = grading.nbgrader_env({"PATH": os.pathsep.join(["/usr/bin", str(grading.bin_dir()), "/bin"])})
    assert env["PATH"].split(os.pathsep) == [str(grading.bin_dir()), "/usr/bin", "/bin"]
    assert grading.nbgrader_env({})["PATH"] == str(grading.bin_dir())
    assert (grading.bin_dir() / "python").exists() or (grading.bin_dir() / "python.exe").exists()


@pytest.mark.slow
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
            body = src.split(copies.BEGIN)[1].split(copies.END)[0]
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
    assert errors[0]["ename"] == "ExerciseFailed" and errors[0]["traceback"] == [f"ExerciseFailed: {errors[0]['evalue']}"]
    # any later error is in an ungraded cell that uses the student's gmm_score (so a wrong answer shows there too)
    failed = [c for c in graded["cells"] if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert all("gmm_score(" in "".join(c["source"]) and not c["metadata"].get("nbgrader", {}).get("grade")
               for c in failed[1:]), [("".join(c["source"])[:80]) for c in failed]
