"""The course website (``python -m scoregen_lite.courseware.course site``), built from the committed notebooks, served on
127.0.0.1 and opened page by page in Chromium (Playwright, the system executable), as a student reads it:

* no console errors, no request leaves 127.0.0.1, every image loads and has a text alternative, every internal
  link resolves, each page's title is its notebook's title;
* the maths is typeset by the site's own MathJax copy: as many equations on the page as ``count_equations``
  finds in the notebook's markdown, no TeX error, and no raw delimiter ($, $$, \\(, \\[) left in the visible text;
* the sidebar lists every notebook with the current one marked and the page's outline linked to its sections;
* the guide's pages (``docs/*.md``, ``CONTRIBUTING.md``) show every table of their markdown as a table, and the API
  reference (generated from the docstrings) has a page per module or subpackage, each linked from ``api.html``,
  with no docstring typeset as TeX;
* search (Pagefind) finds given terms on the right pages (notebooks, the guide, the API) and its result jumps to
  the section;
* axe-core reports no critical or serious accessibility violation, and headings go down one level at a time.

Screenshots (a page with equations, a search result) go to test-artifacts/site/.
Runs when Chromium is installed; with SCOREGEN_BROWSER_TESTS=1 (set by .ci/run) a missing browser fails."""
import os
import re
import shutil
import threading
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest

pytestmark = pytest.mark.slow    # a real browser: minutes; `pytest --slow` or CI (.ci/run)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "site"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("SCOREGEN_BROWSER_TESTS") == "1"
if not CHROMIUM:
    if REQUIRED:
        raise RuntimeError("SCOREGEN_BROWSER_TESTS=1 but chromium is missing (apt-get install chromium).")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api") if not REQUIRED else __import__("playwright.sync_api").sync_api
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright") if not REQUIRED else \
    __import__("axe_playwright_python.sync_playwright").sync_playwright

from scoregen_lite.courseware.api_reference import api_pages  # noqa: E402
from scoregen_lite.courseware.guide import guide_page, guide_sources  # noqa: E402
from scoregen_lite.courseware.site import build_site, notebook_title  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: the guide's pages: their markdown source in the repository
GUIDES = {guide_page(source): REPO / source for source in guide_sources(REPO)}
API = ["api.html"] + [page for page, _ in api_pages()]
#: search term -> the page it must list (and jump into)
SEARCHES = {"Tweedie": "08_fast_sampling.html", "RePaint": "09_controllable_generation.html",
            "memorisation": "10_training_recipes.html", "nbgrader": "teaching.html",
            "GaussianMixture": "api_core.html"}

# the text a student sees, without code (inputs, outputs' <pre>) and without the MathML MathJax adds for screen readers
_VISIBLE_TEXT = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code, script, style, .jp-InputArea, mjx-assistive-mml').forEach(e => e.remove());
  return main.innerText;
}"""


# the notation sheet's text as a student reads it (its markdown sits in the input area), without MathJax's MathML
_SHEET_TEXT = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-assistive-mml').forEach(e => e.remove());
  return main.innerText;
}"""


# a fragment names an element by its id as written or percent-decoded (nbconvert writes ids percent-encoded)
_HAS_ID = "id => (document.getElementById(id) || document.getElementById(decodeURIComponent(id))) !== null"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    info = build_site(out, log=lambda *a: None)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", out, info
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


def test_site_builds_every_notebook_quickly(site):
    _, out, info = site
    assert info["pages"] == [f"{p.stem}.html" for p in NOTEBOOKS] and len(info["pages"]) >= 9
    assert info["seconds"] < 120                       # the budget; measured 16 s here (search index included)
    assert (out / "index.html").exists() and all((out / "notebooks" / p.name).exists() for p in NOTEBOOKS)
    assert (out / "notation.html").exists() and "notation.html" in info["equations"]
    assert info["guides"] == list(GUIDES) and len(GUIDES) >= 4 and "contributing.html" in GUIDES
    assert info["api"] == API and len(API) >= 6 and all((out / page).exists() for page in [*GUIDES, *API])
    assert (out / "mathjax" / "tex-svg-full.js").exists() and (out / "pagefind" / "pagefind-ui.js").exists()
    # a reasonable size: measured 28 MB in all (MathJax 7, the notebook downloads 7, the search index 4), the
    # largest page 1.4 MB (JupyterLab's styles are one shared file, not a copy in every page)
    assert info["megabytes"] < 35 and info["largest_page"][1] < 3
    print(f"site: {info['megabytes']:.1f} MB, largest page {info['largest_page'][0]} {info['largest_page'][1]:.1f} MB, "
          f"built in {info['seconds']:.1f} s")


def _open(browser, url, name):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:")) else None)
    response = page.goto(f"{url}/{name}", wait_until="load")
    assert response.status == 200
    return page, errors, outside


@pytest.mark.parametrize("name", ["index.html", "notation.html"] + [f"{p.stem}.html" for p in NOTEBOOKS] + list(GUIDES)
                         + API)
def test_page_loads_cleanly(site, browser, name):
    url, _, info = site
    page, errors, outside = _open(browser, url, name)
    try:
        if name != "index.html":
            page.wait_for_function("() => document.body.dataset.mathjax === 'done'", timeout=60_000)
        page.wait_for_timeout(300)
        assert errors == [], f"{name}: console errors {errors[:3]}"
        assert outside == [], f"{name}: requests leaving the machine {outside[:3]}"
        images = page.evaluate("() => [...document.images].map(i => [i.complete, i.naturalWidth, i.alt])")
        assert all(done and width > 0 for done, width, _ in images), f"{name}: an image did not load"
        assert all(len(alt) > 15 and "No description" not in alt for _, _, alt in images), \
            f"{name}: a figure without a text alternative: {[a for *_, a in images if len(a) <= 15][:3]}"
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
        internal = {h.split("#")[0] for h in hrefs if h and not h.startswith(("http:", "https:", "mailto:", "#"))}
        assert internal, f"{name}: no navigation links"
        for href in internal:
            with urllib.request.urlopen(urljoin(f"{url}/{name}", href)) as r:
                assert r.status == 200, f"{name}: link {href} is broken"
        for anchor in {h[1:] for h in hrefs if h and h.startswith("#")}:   # the outline's links land on a section
            assert page.evaluate(_HAS_ID, anchor), f"{name}: #{anchor} points nowhere"
        levels = page.evaluate("() => [...document.querySelectorAll('main h1, main h2, main h3, main h4')]"
                               ".map(h => +h.tagName[1])")
        assert levels and levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:])), \
            f"{name}: headings skip a level: {levels}"
        text = page.inner_text("body")
        if name == "index.html":
            assert len(images) == 0 and all(f"{p.stem}.html" in internal for p in NOTEBOOKS)
            assert "CC BY 4.0" in text and "MIT" in text and "notation.html" in internal
            assert {*GUIDES, "api.html"} <= internal, f"{name}: the guide's pages are not linked"
            page.screenshot(path=str(_artifact("index.png")), full_page=True)
        elif name in GUIDES:   # a guide page: its markdown's tables shown as tables, its maths typeset
            source = GUIDES[name].read_text(encoding="utf-8")
            assert page.title() == re.search(r"^# (.+)$", source, flags=re.M).group(1).strip()
            assert page.locator("main table").count() == len(re.findall(r"^\| ?---", source, flags=re.M)), \
                f"{name}: not every table of {GUIDES[name].name} is shown as a table"
            _assert_typeset(page, name, info, _SHEET_TEXT)
            assert page.locator("nav.sg-sidebar li[aria-current=page] > a").get_attribute("href") == name
            if name == "benchmarks.html":
                page.screenshot(path=str(_artifact("benchmarks.png")), full_page=False)
        elif name in API:      # the API reference: generated from the docstrings, none typeset as TeX
            assert page.locator("main mjx-container").count() == info["equations"][name] == 0
            assert page.locator("nav.sg-sidebar li[aria-current=page] > a").get_attribute("href") == "api.html"
            if name == "api.html":
                assert set(API[1:]) <= internal, f"{name}: an API page is not linked"
            else:
                assert page.title() == dict(api_pages())[name] and page.locator("main h2").count() >= 1
                assert page.locator("main code").count() >= 3, f"{name}: no signatures"
        elif name == "notation.html":   # the notation sheet: every symbol typeset, reachable from the sidebar
            assert page.title() == "Notation" and "index.html" in internal
            typeset = page.locator("main mjx-container").count()
            assert typeset == info["equations"][name] >= 30, f"{name}: {typeset} of {info['equations'][name]} typeset"
            assert page.locator("mjx-merror, [data-mjx-error]").count() == 0, f"{name}: a TeX error"
            visible = page.evaluate(_SHEET_TEXT)
            assert "Tweedie" in visible and "Abbreviations" in visible
            assert not re.search(r"\$[^$\s][^$]*\$", visible), f"{name}: raw $...$ left: {_around(visible, '$')}"
            assert page.locator("main table").count() == 2
            assert page.locator("nav.sg-sidebar ol > li").count() == len(NOTEBOOKS)
        else:
            nb = REPO / "notebooks" / name.replace(".html", ".ipynb")
            assert page.title() == notebook_title(nb)
            assert "index.html" in internal and f"notebooks/{nb.name}" in internal and "notation.html" in internal
            assert len(images) >= 2, f"{name}: the figures are missing"
            # the maths: every equation of the markdown typeset, none left as TeX, no TeX error
            _assert_typeset(page, name, info)
            # the sidebar: every notebook, this one marked, with this page's section headings linked
            sidebar = page.locator("nav.sg-sidebar")
            assert sidebar.locator("ol > li").count() == len(NOTEBOOKS)
            assert sidebar.locator("li[aria-current=page] > a").get_attribute("href") == name
            outline = sidebar.locator(".sg-outline a")
            n_h2 = page.locator("main h2").count()
            assert outline.count() >= n_h2 >= 3, f"{name}: outline has {outline.count()} links for {n_h2} sections"
            n_widgets = page.locator(".sg-widget").count()
            src = nb.read_text(encoding="utf-8")
            assert n_widgets == len(re.findall(r"sg\.widgets\.\w+_explorer\(", src))
            if name.startswith("08_"):
                page.screenshot(path=str(_artifact("08_fast_sampling.png")), full_page=False)
        _assert_accessible(page, name)
    finally:
        page.close()


def _assert_typeset(page, name, info, text=_VISIBLE_TEXT):
    """Every equation of the page's markdown typeset (as many as ``count_equations`` found), no TeX error, and no
    raw TeX left in the visible text (``text``: a script that returns it)."""
    typeset = page.locator("main mjx-container").count()
    assert typeset == info["equations"][name], \
        f"{name}: {typeset} equations typeset, the page's markdown has {info['equations'][name]}"
    assert page.locator("mjx-merror, [data-mjx-error]").count() == 0, f"{name}: a TeX error"
    visible = page.evaluate(text)
    for raw in ("$$", "\\(", "\\[", "\\begin{"):
        assert raw not in visible, f"{name}: raw TeX {raw!r} left: ...{_around(visible, raw)}..."
    assert not re.search(r"\$[^$\s][^$]*\$", visible), f"{name}: raw $...$ left: {_around(visible, '$')}"


def _assert_accessible(page, name):
    """axe-core (as bundled by axe-playwright-python): no violation of critical or serious impact."""
    results = axe_playwright.Axe().run(page)
    bad = [(v["id"], v["impact"], len(v["nodes"]), v["nodes"][0]["target"]) for v in results.response["violations"]
           if v["impact"] in ("critical", "serious")]
    assert bad == [], f"{name}: axe-core violations (rule, impact, nodes, first node): {bad}"


@pytest.mark.parametrize("term,want", sorted(SEARCHES.items()))
def test_search_finds_the_section(site, browser, term, want):
    """Typing a term into the search box lists the page that teaches it (a notebook, the guide or the API
    reference), and its sub-result jumps to a section of that page."""
    url, _, _ = site
    page, errors, outside = _open(browser, url, "index.html")
    try:
        box = page.locator("#sg-search input")
        box.fill(term)
        page.wait_for_selector(".pagefind-ui__result-link", timeout=20_000)
        page.wait_for_timeout(800)          # pagefind fills in the results' sub-results as they load
        links = page.eval_on_selector_all(".pagefind-ui__result-link", "els => els.map(e => e.getAttribute('href'))")
        pages = [h.split("#")[0].rsplit("/", 1)[-1] for h in links]
        assert want in pages, f"search {term!r} lists {pages}, not {want}"
        nested = page.eval_on_selector_all(".pagefind-ui__result-link",
                                           "els => els.map(e => e.getAttribute('href')).filter(h => h.includes('#'))")
        jump = [h for h in nested if want in h]
        assert jump, f"search {term!r}: no result jumps to a section of {want} ({nested[:5]})"
        if term == "Tweedie":
            page.screenshot(path=str(_artifact("search_tweedie.png")), full_page=False)
        page.goto(urljoin(f"{url}/index.html", jump[0]), wait_until="load")
        anchor = jump[0].split("#", 1)[1]
        assert page.evaluate(_HAS_ID, anchor)
        assert errors == [] and outside == [], (errors[:3], outside[:3])
    finally:
        page.close()


def _around(text, needle, width=60):
    i = text.find(needle)
    return text[max(0, i - width): i + width]


def _artifact(name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
