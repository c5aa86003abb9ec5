"""The website's helpers, without a browser (tests/browser/test_site_browser.py opens the pages): the equation
count the browser test compares with MathJax's, the figures' text alternatives, and the Binder / Colab links that
appear only when the repository URL is set."""
import json
import shutil
from pathlib import Path

import pytest

from scoregen_lite import site

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,want", [
    ("no maths here", 0),
    ("inline $x$ and $\\sigma(t)$", 2),
    ("display $$D(x;\\sigma) = x + \\sigma^2 s$$ then $y$", 2),
    ("\\(a\\) and \\[b\\]", 2),
    ("$$\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}$$", 1),       # an environment inside $$ is one equation
    ("\\begin{equation} a = b \\end{equation} and $c$", 2),
    ("code `$SCOREGEN_DATA` is not maths, $x$ is", 1),
    ("```\nprice = $5 and $6\n```\n$z$", 1),
    ("costs \\$5, but $x$", 1),                                           # an escaped dollar is a dollar sign
])
def test_count_equations_known_values(text, want):
    assert site.count_equations(text) == want


def test_figure_alt_texts_from_titles_and_the_following_sentence():
    cells = [
        {"cell_type": "code", "source": 'ax.set_title("the ring, exact score")\nfig.suptitle(f"sigma = {s:g}")'},
        {"cell_type": "markdown", "source": "The arrows point uphill: towards the modes. More text follows here."},
        {"cell_type": "code", "source": "x = 1"},
        {"cell_type": "markdown", "source": "## 2. Next section"},
    ]
    alts = site.figure_alt_texts(cells)
    assert alts[0] == ("Figure: the ring, exact score; sigma = .... "
                       "The arrows point uphill: towards the modes.")
    # a heading is no caption: the markdown before the cell says what it shows
    assert alts[1] == "" and alts[2] == "Figure for: The arrows point uphill: towards the modes."
    assert site.figure_alt_texts([{"cell_type": "code", "source": "plt.plot(x)"}]) == [
        "A figure of this cell's output (see the code above it)."]


def test_repository_url_and_launch_links(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert site.repository_url(tmp_path) is None
    assert site._launch_links(None, "01_x.ipynb") == ""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[project.urls]\n'
                                             'Repository = "https://github.com/someone/scoregen-lite"\n')
    url = site.repository_url(tmp_path)
    assert url == "https://github.com/someone/scoregen-lite"
    links = site._launch_links(url, "01_x.ipynb")
    assert "mybinder.org/v2/gh/someone/scoregen-lite/HEAD?labpath=notebooks%2F01_x.ipynb" in links
    assert "colab.research.google.com/github/someone/scoregen-lite/blob/HEAD/notebooks/01_x.ipynb" in links
    assert site.repository_url(REPO) is None      # the course sets none today: its pages have no launch links


@pytest.mark.parametrize("repo_url", [None, "https://github.com/someone/scoregen-lite"])
def test_a_page_has_launch_links_only_when_the_url_is_set(tmp_path, repo_url):
    """A one-notebook course builds (no search index), its page has the sidebar, typeset-ready maths, alt texts,
    and Binder / Colab links exactly when pyproject.toml names the repository."""
    pytest.importorskip("nbconvert")
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "02_score_matching.ipynb", course / "notebooks")
    shutil.copy(REPO / "README.md", course)
    urls = f'\n[project.urls]\nRepository = "{repo_url}"\n' if repo_url else ""
    (course / "pyproject.toml").write_text(f'[project]\nname = "x"\n{urls}')
    info = site.build_site(tmp_path / "out", course=course, log=lambda *a: None, search=False)
    page = (tmp_path / "out" / "02_score_matching.html").read_text()
    assert ("mybinder.org" in page) == ("colab.research.google.com" in page) == bool(repo_url)
    assert 'aria-current="page"' in page and 'class="sg-outline"' in page and "mathjax/tex-svg-full.js" in page
    assert "No description has been provided" not in page and 'alt="Figure:' in page
    nb = json.loads((course / "notebooks" / "02_score_matching.ipynb").read_text())
    assert info["equations"]["02_score_matching.html"] == sum(
        site.count_equations("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown") > 10
    assert (tmp_path / "out" / "mathjax" / "tex-svg-full.js").exists()


@pytest.mark.parametrize("nb_path", sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_setup_cell_tells_a_runtime_without_the_package_the_install_line(nb_path, monkeypatch):
    """On a hosted runtime (Colab, Binder) without the course package, the setup cell's import fails with the
    exact install line of the README, not a bare ModuleNotFoundError."""
    import sys

    cell = next(c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code")
    src = "".join(cell["source"])
    guard = src[src.index("try:\n"): src.index("from err\n") + len("from err\n")]
    monkeypatch.setitem(sys.modules, "scoregen_lite", None)          # import scoregen_lite now fails
    with pytest.raises(ModuleNotFoundError) as info:
        exec(compile(guard, str(nb_path), "exec"), {})
    assert 'pip install -e ".[notebooks]"' in str(info.value)
    assert 'pip install -e ".[notebooks]"' in (REPO / "README.md").read_text()
