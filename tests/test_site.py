"""The website's helpers, without a browser (tests/browser/test_site_browser.py opens the pages): the equation
count the browser test compares with MathJax's, the figures' text alternatives, the Binder / Colab links that
appear only when the repository URL is set, the guide's pages (docs/*.md, CONTRIBUTING.md) with their rendered
tables and links, the API reference generated from the docstrings, and the template, styles and scripts shipped
as package data."""
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scoregen_lite import site
from scoregen_lite.courseware import api_reference, guide

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


def _tables(markdown: str) -> int:
    """How many tables a markdown text has (its delimiter rows)."""
    return len(re.findall(r"^\| ?---", markdown, flags=re.M))


def test_guide_and_api_pages_are_built_from_the_committed_files(tmp_path):
    """The guide's pages are the committed docs/*.md and CONTRIBUTING.md with every table shown as a table (the
    results blocks included) and their links pointing to the site's pages; the API reference has a page per module
    or subpackage with a heading, the signature and the docstring's first paragraph for every public function and
    class the package defines; JupyterLab's styles are one shared file, not copied into every page."""
    pytest.importorskip("nbconvert")
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "01_scores_and_langevin.ipynb", course / "notebooks")
    for name in ("README.md", "CONTRIBUTING.md", "pyproject.toml"):
        shutil.copy(REPO / name, course)
    shutil.copytree(REPO / "docs", course / "docs")
    out = tmp_path / "out"
    info = site.build_site(out, course=course, log=lambda *a: None, search=False)
    assert info["guides"] == ["teaching.html", "running.html", "benchmarks.html", "contributing.html"]
    for source in guide.guide_sources(course):
        markdown = (course / source).read_text()
        page = (out / guide.guide_page(source)).read_text()
        assert page.count("<table") == _tables(markdown), f"{source}: not every table is shown as a table"
        assert _tables(markdown) > 0 or source == "CONTRIBUTING.md", f"{source} lost its tables"
        assert not re.search(r'href="[^"]*\.md[#"]', page), f"{source}: a link to a markdown file is left"
        assert f"<title>{guide.markdown_title(markdown, source)}</title>" in page
    teaching, running = (out / "teaching.html").read_text(), (out / "running.html").read_text()
    assert 'href="running.html"' in teaching and 'href="index.html"' in teaching
    assert "<th>grade_id</th>" in teaching and "<th>full mode</th>" in teaching      # points, timings: rendered
    assert "mnist_ve.pt" in running and "<th>checkpoint</th>" in running
    assert "NVIDIA H200" in (out / "benchmarks.html").read_text()
    assert 'href="teaching.html"' in (out / "index.html").read_text()

    assert info["api"] == ["api.html"] + [page for page, _ in api_reference.api_pages()]
    assert "api_core.html" in info["api"] and "api_courseware.html" in info["api"]
    index = (out / "api.html").read_text()
    assert all(f'href="{page}"' in index for page in info["api"][1:])
    assert all(f"<code>{name}</code>" in index for name in api_reference.entry_points())   # python -m doors
    for page, name in api_reference.api_pages():
        text = (out / page).read_text()
        folder = REPO / Path(*name.split("."))          # every module file of the subpackage, found here
        files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
        names = {".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for f in files}
        modules = [importlib.import_module(m) for m in sorted(names) if not any(p.startswith("_") for p in m.split("."))]
        assert modules, name
        for module in modules:
            short = module.__name__.rsplit(".", 1)[-1]
            for attr in getattr(module, "__all__", []):
                obj = getattr(module, attr)
                if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
                    assert f'id="{short}.{attr}"' in text, f"{page}: {module.__name__}.{attr} is missing"
    core = (out / "api_core.html").read_text()
    assert "GaussianMixture(weights" in core
    words = api_reference.first_paragraph(importlib.import_module("scoregen_lite.core.sde").VESDE).split()[:6]
    assert " ".join(words) in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", core))
    assert all(info["equations"][page] == 0 for page in info["api"])      # no docstring is typeset as TeX

    shared = list(out.glob("lab-*.css"))
    assert len(shared) == 1 and shared[0].stat().st_size > 100_000
    for page in ["01_scores_and_langevin.html", "notation.html", *info["guides"], *info["api"]]:
        html = (out / page).read_text()
        assert f'href="{shared[0].name}"' in html and "jp-RenderedHTMLCommon {" not in html, page
    assert (out / "teaching.html").stat().st_size < 100_000


def test_site_links_become_the_sites_pages():
    links = ("[a](../notebooks/04_ncsn.ipynb) [b](running.md) [c](../README.md) [d](../README.md#notation) "
             "[e](../CONTRIBUTING.md) [f](https://example.org/x.md) [g](#a-section) `[h](nope.md)`")
    assert guide.site_links(links, "docs/teaching.md") == (
        "[a](04_ncsn.html) [b](running.html) [c](index.html) [d](notation.html) [e](contributing.html) "
        "[f](https://example.org/x.md) [g](#a-section) `[h](nope.md)`")
    assert guide.site_links("[t](docs/teaching.md) [n](notebooks/01_x.ipynb)", "CONTRIBUTING.md") == \
        "[t](teaching.html) [n](01_x.html)"
    with pytest.raises(ValueError, match=r"docs/running.md: the link \(../benchmarks/results/x.json\) points to a file"):
        guide.site_links("see [x](../benchmarks/results/x.json)", "docs/running.md")
    with pytest.raises(ValueError, match="section ids differ"):
        guide.site_links("[q](running.md#quick-mode)", "docs/teaching.md")
    with pytest.raises(ValueError, match="has no title"):
        guide.markdown_title("## not a title", "docs/x.md")


def test_a_docstring_renders_as_written_and_is_not_typeset():
    """Dollar signs, backslashes, angle brackets, asterisks and underscores of a docstring reach the page as
    written, and MathJax finds no equation in it."""
    nbconvert = pytest.importorskip("nbconvert.filters.markdown_mistune")

    class Example:
        """Reads ``$SCOREGEN_DATA/mnist`` or $HOME/data when a < b & c, with *args and __init__, \\(x\\) untouched.

        The second paragraph is not shown."""

    text = api_reference.first_paragraph(Example)
    assert text.endswith("untouched.") and "second" not in text
    markdown = api_reference.docstring_markdown(text)
    assert site.count_equations(markdown) == 0
    rendered = nbconvert.markdown2html_mistune(markdown)
    plain = re.sub(r"<[^>]+>", "", rendered).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()
    assert plain == "Reads $SCOREGEN_DATA/mnist or $HOME/data when a < b & c, with *args and __init__, \\(x\\) untouched."
    assert api_reference.first_paragraph(type("NoDoc", (Example,), {})) == ""     # never a base class's docstring


def test_site_files_are_package_data_and_not_code(tmp_path):
    """The page template, styles and scripts are files of the package (read with importlib.resources), none is a
    string in site.py, and a wheel built from pyproject.toml carries them."""
    names = ["page.html.j2", "home.html.j2", "page.css", "home.css", "search.js", "mathjax-config.js",
             "widget-note.html"]
    assert all(len(site.site_file(name)) > 50 for name in names)
    assert "window.MathJax" in site.MATHJAX_CONFIG and "{% extends 'lab/index.html.j2'" not in Path(site.__file__).read_text()
    assert not re.search(r"^_?(CSS|HOME_CSS|TEMPLATE|SEARCH_JS)\s*=", Path(site.__file__).read_text(), flags=re.M)
    with pytest.raises(FileNotFoundError, match="reinstall the course"):
        site.site_file("nope.css")
    build = tmp_path / "src"
    build.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, build)
    shutil.copytree(REPO / "scoregen_lite", build / "scoregen_lite", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path / "wheel"), str(build)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    wheel = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl")))
    shipped = {Path(n).name for n in wheel.namelist() if "/courseware/site_files/" in n}
    assert shipped == set(names)
