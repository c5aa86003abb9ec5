"""sg.QUICK, sg.device, sg.seed_everything, and the repository's own promises."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

import scoregen_lite as sg


def test_seed_everything_reproducible():
    sg.seed_everything(7)
    a = torch.randn(3)
    sg.seed_everything(7)
    assert torch.equal(a, torch.randn(3))
    g = sg.seed_everything(7)
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=torch.Generator().manual_seed(7)))


def test_seed_must_be_int():
    with pytest.raises(TypeError, match="seed=0.5 must be an int"):
        sg.seed_everything(0.5)


def test_device_is_usable():
    d = sg.device()
    assert isinstance(d, torch.device)
    assert torch.ones(1, device=d).item() == 1.0


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("", False), ("true", True)])
def test_quick_flag_from_env(value, expected):
    code = "import scoregen_lite as sg; print(sg.QUICK, sg.quick('q', 'f'))"
    env = dict(os.environ, SCOREGEN_QUICK=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(expected), "q" if expected else "f"]


def test_quick_flag_rejects_garbage():
    env = dict(os.environ, SCOREGEN_QUICK="maybe")
    res = subprocess.run([sys.executable, "-c", "import scoregen_lite"], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "SCOREGEN_QUICK='maybe' is not understood" in res.stderr


def test_quick_mode_never_keyed_off_ci():
    from pathlib import Path

    files = sorted(Path(REPO, "scoregen_lite").rglob("*.py"))
    assert len(files) > 30, files
    src = "".join(f.read_text() for f in files)
    assert "environ.get(\"CI\"" not in src and "environ['CI']" not in src and 'environ["CI"]' not in src


def _fenced_lines(markdown: str) -> list[str]:
    """The non-blank lines of a Markdown text's fenced code blocks (``` or ~~~, any language, indented or not),
    stripped, a leading shell prompt ``$ `` dropped."""
    lines, fence = [], None
    for raw in markdown.splitlines():
        line = raw.strip()
        if fence is None:
            opening = re.match(r"(`{3,}|~{3,})", line)
            fence = opening.group(1) if opening else None
        elif line.startswith(fence) and not line.lstrip(fence[0]):
            fence = None
        elif line:
            lines.append(line.removeprefix("$ "))
    return lines


def _test_command_mismatch(readme: str, ci: str) -> str | None:
    """None when the README shows .ci/run's test command verbatim in a fenced block and shows no other full
    (slow or notebook) test command; else what is wrong. .ci/run runs pytest on one line, slow tests included."""
    ci_commands = [line.strip() for line in ci.splitlines()
                   if re.search(r"\bpytest\b", line) and not line.lstrip().startswith("#")]
    if len(ci_commands) != 1:
        return f".ci/run must run pytest on exactly one line, not {ci_commands}"
    command = ci_commands[0]
    if not re.search(r"(^|\s)(--slow|SCOREGEN_SLOW=1)(\s|$)", command) or not {"tests", "notebooks"} <= set(command.split()):
        return f".ci/run's test command {command!r} must run everything: --slow (tests/conftest.py), tests and notebooks"
    shown = [line for line in _fenced_lines(readme) if re.search(r"\bpytest\b", line)]
    if command not in shown:
        return f"the README shows no fenced line {command!r} (.ci/run's test command); its pytest lines: {shown}"
    other = [line for line in shown if line != command and re.search(r"--slow|SCOREGEN_SLOW=1|nbval|notebooks", line)]
    if other:
        return f"the README shows full test commands {other} besides .ci/run's {command!r}"
    return None


def test_ci_runs_readme_test_command_verbatim():
    """.ci/run's test command (everything, slow tests and notebooks) is the README's, verbatim."""
    readme = open(os.path.join(REPO, "README.md")).read()
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    problem = _test_command_mismatch(readme, ci)
    assert problem is None, problem


def test_test_command_check_catches_a_difference():
    full = "SCOREGEN_QUICK=1 python -m pytest --slow --nbval-lax --nbval-current-env tests notebooks"
    ci = f"set -e\n# the README's command:\n{full}\n"
    readme = f"Quick:\n\n```bash\npython -m pytest\n```\n\nAll, as CI:\n\n  ```bash\n  $ {full}\n  ```\n"
    assert _test_command_mismatch(readme, ci) is None
    assert "shows no fenced line" in _test_command_mismatch(readme.replace("--slow ", ""), ci)      # README differs
    assert "shows no fenced line" in _test_command_mismatch(readme, ci.replace(" notebooks", " notebooks -x"))
    assert "shows no fenced line" in _test_command_mismatch(f"Run\n\n    {full}\n", ci)               # not in a fenced block
    assert "besides" in _test_command_mismatch(readme + "```\npython -m pytest --slow tests\n```\n", ci)
    assert "must run everything" in _test_command_mismatch(readme.replace("--slow ", ""), ci.replace("--slow ", ""))
    assert "exactly one line" in _test_command_mismatch(readme, ci + "python -m pytest tests\n")


def test_ci_fails_clearly_without_shared_data(tmp_path):
    """.ci/run stops at once, naming the missing folder, when ../shared/data/mnist is absent (it used to
    go on with SCOREGEN_DATA unset and skip every MNIST test)."""
    import shutil

    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, ".ci", "run"), clone / ".ci" / "run")
    res = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PATH="/usr/bin:/bin"))
    assert res.returncode == 1 and "shared/data/mnist" in res.stderr and "not found" in res.stderr
    assert not (clone / ".ci-venv").exists()   # it failed before doing any work


def test_course_timings_on_a_small_notebook(tmp_path):
    """The timing report executes notebooks and writes the README's table."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nassert os.environ['SCOREGEN_QUICK'] == '1'")])
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "t.md"
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.course", "timings", str(path), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    table = out.read_text()
    assert table.startswith("| notebook | mode | seconds | device |") and "| 01_tiny | quick |" in table


def test_results_tables_render_committed_files():
    """The GPU table shows every committed run with its device (known values from h200_run2.json), and the
    README's result blocks are exactly what the committed files render (no hand-typed numbers)."""
    from scoregen_lite import results

    table = results.gpu_benchmark_table()
    assert "NVIDIA H200, run1, reference" in table and "NVIDIA H200, run2, ours" in table
    assert "| Frechet distance, 10k EM-500 samples | 69.0 | 22.0 | 79.7 | 25.3 |" in table
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.results", "readme", "--check"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr


def test_checkpoints_table_separates_a_fine_tuned_run():
    """Known values from the committed manifests: mnist_ve was fine-tuned (16,000 steps on top of 26,000), so
    its row names both counts and says the time is the last run's; a model trained in one run shows one count."""
    import json

    from scoregen_lite import results

    table = results.checkpoints_table()
    ve = json.loads((Path(REPO) / "checkpoints" / "mnist_ve.json").read_text())
    row = next(line for line in table.splitlines() if line.startswith("| `mnist_ve.pt`"))
    assert f"| {ve['steps_this_run']:,} fine-tuning ({ve['steps']:,} in all) x 128 |" in row and "(last run)" in row
    tiny = next(line for line in table.splitlines() if line.startswith("| `mnist_tiny100.pt`"))
    assert "| 2,500 x 128 |" in tiny and "last run" not in tiny and "fine-tuning" not in tiny
    assert "on 2,000 EM-500 samples" in row
    flow = next(line for line in table.splitlines() if line.startswith("| `mnist_flow.pt`"))   # measured with its own ODE
    fm = json.loads((Path(REPO) / "checkpoints" / "mnist_flow.json").read_text())["metrics"]
    assert "on 2,000 Flow-Heun (19 NFE) samples" in flow and "EM-" not in flow
    assert f"| Flow-Heun (19 NFE) {fm['frechet_heldout']:.1f} / Flow-Euler-20 " in flow


def test_ode_gap_known_values_and_run_order(tmp_path):
    """Known values from the committed run 2 (EM-500 21.07, Heun-18 36.27) and synthetic runs whose order
    by name (run10 < run2) is not their order in time."""
    import json

    from scoregen_lite import results

    run2 = results.ode_gap()["fast_sampling_cpu_run2"]
    assert run2["gap"] == pytest.approx(36.27 - 21.07, abs=0.01) and run2["ratio"] == pytest.approx(36.27 / 21.07, abs=1e-3)
    for n, (sde, ode) in {2: (20.0, 30.0), 10: (10.0, 25.0)}.items():
        rows = [{"label": "Euler-Maruyama, 500 steps", "frechet": sde},
                {"label": "EDM Heun, 18 levels (deterministic)", "frechet": ode}]
        (tmp_path / f"fast_sampling_cpu_run{n}.json").write_text(json.dumps({"rows": rows}))
    gaps = results.ode_gap(tmp_path)
    assert list(gaps) == ["fast_sampling_cpu_run2", "fast_sampling_cpu_run10"]
    assert [g["gap"] for g in gaps.values()] == [10.0, 15.0] and gaps["fast_sampling_cpu_run10"]["ratio"] == 2.5
    with pytest.raises(KeyError, match="no row 'nope'"):
        results.ode_gap(tmp_path, sde_label="nope")


def test_results_readme_check_catches_a_typed_number(tmp_path, monkeypatch):
    from scoregen_lite import results

    text = "a\n<!-- results:gpu-benchmark -->\n| typed by hand | 12.3 |\n<!-- /results:gpu-benchmark -->\nb\n"
    rendered = results.render_readme(text)
    assert "typed by hand" not in rendered and "NVIDIA H200" in rendered and rendered.startswith("a\n")
    with pytest.raises(ValueError, match="results:nope is unknown"):
        results.render_readme("<!-- results:nope -->\n<!-- /results:nope -->")


def test_results_check_covers_the_guide_pages(tmp_path):
    """``readme --check`` renders the blocks of README.md, CONTRIBUTING.md and docs/*.md: a number typed by hand
    on a guide page fails it, and so does a table of ``TABLES`` that no page shows any more."""
    from scoregen_lite import results

    course = tmp_path / "course"
    (course / "docs").mkdir(parents=True)
    (course / "README.md").write_text("# course\n")
    typed = "# B\n\n<!-- results:gpu-benchmark -->\n| typed by hand | 12.3 |\n<!-- /results:gpu-benchmark -->\n"
    (course / "docs" / "benchmarks.md").write_text(typed)
    assert results.rendered_pages(course) == [course / "README.md", course / "docs" / "benchmarks.md"]
    done = results.render_pages(course, write=False)
    assert done["stale"] == [course / "docs" / "benchmarks.md"] and "gpu-benchmark" not in done["missing"]
    assert "checkpoints" in done["missing"] and (course / "docs" / "benchmarks.md").read_text() == typed
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.results", "readme", "--check", "--course",
                          str(course)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "docs/benchmarks.md out of date" in res.stderr and "checkpoints" in res.stderr
    results.render_pages(course)
    assert "NVIDIA H200" in (course / "docs" / "benchmarks.md").read_text()
    assert results.render_pages(course, write=False)["stale"] == []
    assert results.render_pages(REPO, write=False) == {"stale": [], "missing": []}     # the committed pages


def test_readme_is_short_and_points_to_the_rest():
    """The README says what the course is, how to set it up, the notebook map, the notation sheet the notebooks
    link to, and where the rest lives: every docs/ page and CONTRIBUTING.md are linked from it, and it stays
    short (issue 33: the API, benchmark tables and guides moved to docs/ and the website). What is written by hand
    is bounded (88 lines with ten notebooks; each notebook adds a row); the notation sheet, rendered from
    sg.notation, grows with the symbols."""
    readme = (Path(REPO) / "README.md").read_text()
    by_hand = re.sub(r"<!-- results:([\w-]+) -->\n.*?<!-- /results:\1 -->", "", readme, flags=re.S)
    assert len(by_hand.splitlines()) <= 100, f"the README's hand-written part has {len(by_hand.splitlines())} lines"
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings == ["Set-up", "The notebooks", "Notation", "Where the rest lives", "Licence and citation"]
    pages = sorted(p.relative_to(REPO).as_posix() for p in Path(REPO, "docs").glob("*.md")) + ["CONTRIBUTING.md"]
    assert len(pages) >= 4 and all(f"]({page})" in readme for page in pages), pages
    assert all(f"(notebooks/{p.name})" in readme for p in Path(REPO, "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_course_timings_write_full_outputs(tmp_path):
    """--full --write stores the full-mode outputs in the notebook, cleaned, and --json the rows."""
    import json

    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint('mode', os.environ['SCOREGEN_QUICK'])")])
    path = tmp_path / "02_tiny.ipynb"
    nbformat.write(nb, path)
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.course", "timings", str(path), "--full", "--write",
                          "--out", str(tmp_path / "t.md"), "--json", str(tmp_path / "t.json")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    written = json.loads(path.read_text())
    assert "".join(written["cells"][0]["outputs"][0]["text"]) == "mode 0\n" and written["cells"][0]["execution_count"] == 1
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [r["mode"] for r in rows["rows"]] == ["quick", "full"] and "cores" in rows["device"]


def test_licences_and_citation():
    """The MIT licence pyproject declares, the content licence, and a valid CITATION.cff for this version."""
    from pathlib import Path

    import yaml

    repo = Path(REPO)
    assert (repo / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (repo / "pyproject.toml").read_text()
    assert "CC BY 4.0" in (repo / "LICENSE-CONTENT").read_text()
    cff = yaml.safe_load((repo / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == sg.__version__ and cff["license"] == "MIT"
    assert cff["title"].startswith("scoregen-lite") and cff["authors"] and cff["message"]
