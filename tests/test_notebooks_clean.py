"""Committed notebooks are clean: no execution counts, no stray metadata, no errors or warnings,
small images, and the shared structure every notebook follows."""
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from scoregen_lite.courseware import nbclean

NB_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NB_DIR) if f.endswith(".ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].startswith("01_")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean(name):
    path = os.path.join(NB_DIR, name)
    raw = open(path, encoding="utf-8").read()
    nb = json.loads(raw)
    assert nbclean.problems(nb, name) == []
    assert raw == nbclean._dump(nb), f"{name}: not in canonical layout; run python -m scoregen_lite.nbclean notebooks/"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_structure(name):
    nb = json.load(open(os.path.join(NB_DIR, name), encoding="utf-8"))
    cells = [dict(c, source="".join(c["source"])) for c in nb["cells"]]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith(f"# {name[:2]} ")
    assert "You will learn" in cells[0]["source"]
    setup = cells[1]["source"]
    assert "import scoregen_lite as sg" in setup and "sg.setup_notebook(" in setup
    assert any(c["cell_type"] == "markdown" and "\n## Summary" in "\n" + c["source"] for c in cells)
    assert any("assert " in c["source"] for c in cells if c["cell_type"] == "code"), "facts must be asserted"


def test_cleaner_detects_dirty_notebook(tmp_path):
    nb = json.load(open(os.path.join(NB_DIR, NOTEBOOKS[0]), encoding="utf-8"))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 37
    code["metadata"] = {"collapsed": False, "scrolled": True}
    code["outputs"] = code["outputs"] + [
        {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []},
        {"output_type": "stream", "name": "stderr", "text": "UserWarning: careful\n"},
    ]
    nb["metadata"]["widgets"] = {"state": {}}
    found = nbclean.problems(nb, "dirty.ipynb")
    assert any("not clean" in f for f in found)
    assert any("stored error output" in f for f in found)
    assert any("warning" in f for f in found)
    p = tmp_path / "dirty.ipynb"
    p.write_text(json.dumps(nb))
    res = subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.nbclean", "--check", str(p)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    subprocess.run([sys.executable, "-m", "scoregen_lite.courseware.nbclean", str(p)], check=True, capture_output=True)
    cleaned = json.loads(p.read_text())
    assert cleaned["metadata"].get("widgets") is None
    counts = [c["execution_count"] for c in cleaned["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))


FIGURE_MAKERS = ("plt.subplots", "sg.plot.panels", "plt.figure")


def _makes_a_figure(source: str) -> bool:
    return any(m in source for m in FIGURE_MAKERS) or ("_view(" in source and "fig" in source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_figure_is_followed_by_what_to_see(name):
    """Next to every figure, one sentence saying what to see in it (issue 24): the markdown cell right after each
    cell that draws a figure starts with "**What to see.**"."""
    cells = json.load(open(os.path.join(NB_DIR, name), encoding="utf-8"))["cells"]
    missing = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and _makes_a_figure("".join(c["source"]))
               and not (i + 1 < len(cells) and cells[i + 1]["cell_type"] == "markdown"
                        and "".join(cells[i + 1]["source"]).startswith("**What to see.**"))]
    assert not missing, f"{name}: cells {missing} draw a figure without a '**What to see.**' cell after them"
