"""The course as a static website, built from the committed files (nothing is re-executed):
``python -m scoregen_lite.courseware.course site [--out site/]`` (or ``python -m scoregen_lite.courseware.site``).

The pages: one per notebook (nbconvert's HTML exporter with its "lab" template: figures embedded, animations
kept, code and outputs as stored); a home page with the README's notebook map and the measured minutes per notebook
(``benchmarks/results/course_timings.json``); the notation sheet (``sg.notation``); the guide, ``docs/*.md`` and
``CONTRIBUTING.md`` as committed (``scoregen_lite.courseware.guide``); and the API reference, generated from the
package's docstrings at build time (``scoregen_lite.courseware.api_reference``). Every page has typeset maths
(MathJax 3.2.2, TeX input and SVG output, copied from the pinned PyPI package ``django-static-mathjax``), a sidebar
with every notebook and reference page and the page's outline, a static search index (Pagefind, the pinned PyPI
package ``pagefind[bin]``), a text alternative for every figure (its plot's titles, then the first sentence of the
markdown after it), and, on a notebook's page, how to run it (Binder and Colab links when ``pyproject.toml`` sets
``[project.urls] Repository``).

The page template, styles and scripts are package data (``site_files/``, read by ``site_file``). Nothing is fetched
from the internet, so the site builds and reads offline and can be copied to any static host. See docs/teaching.md,
"The course website", and CONTRIBUTING.md, "The website".
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from ..artifacts import course_dir
from .api_reference import api_index, api_markdown, api_pages
from .guide import CODE_SPAN, guide_page, guide_sources, markdown_title, page_nav, site_links
from .notation import NOTATION_LINK

__all__ = ["build_site", "notebook_title", "notebook_map", "figure_alt_texts", "count_equations", "repository_url",
           "site_file", "SITE_FILES", "MATHJAX_CONFIG", "main"]

#: The folder of the site's package data: the page template (``page.html.j2``, extending nbconvert's "lab"
#: template), the home page (``home.html.j2``), their styles (``page.css``, ``home.css``), the search box's script
#: (``search.js``), MathJax's configuration (``mathjax-config.js``) and the note a widget's cell gets
#: (``widget-note.html``).
SITE_FILES = "site_files"


def site_file(name: str) -> str:
    """The text of one of the site's package-data files, ``scoregen_lite/courseware/site_files/NAME`` (read with
    ``importlib.resources``, so it works from an installed wheel as from the source folder)."""
    path = resources.files(__package__) / SITE_FILES / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"the site file {name!r} is missing ({path}): it ships as package data of "
                                f"scoregen_lite.courseware ([tool.setuptools.package-data] in pyproject.toml); "
                                f"reinstall the course with pip install -e .") from err


#: The MathJax configuration every page loads (``site_files/mathjax-config.js``: MathJax 3, TeX input with every
#: package, SVG output: no font files; Jupyter's delimiters). When typesetting ends,
#: ``document.body.dataset.mathjax`` is set to "done" (the browser tests wait for it).
MATHJAX_CONFIG = site_file("mathjax-config.js")

_MATHJAX_URL = "mathjax/tex-svg-full.js"
#: What the site copies of the MathJax package (``es5/``): the one-file TeX-to-SVG component, and what its menu
#: loads on demand (accessibility explorer, speech rules).
_MATHJAX_PARTS = ("tex-svg-full.js", "a11y", "ui", "sre")

def notebook_title(path) -> str:
    """The notebook's title: its first markdown heading without the leading '#'."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(path).stem


def notebook_map(readme) -> dict:
    """The README's notebook table as {stem: {"topic", "equations", "runs_on"}}."""
    rows = {}
    for line in Path(readme).read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| \[(\d\d_\w+)\]\(notebooks/\1\.ipynb\) \| (.*) \| (.*) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = {"topic": m.group(2).replace("\\|", "|"), "equations": m.group(3), "runs_on": m.group(4)}
    return rows


def repository_url(course) -> str | None:
    """The course repository's URL from ``pyproject.toml`` (``[project.urls]``: ``Repository``, ``Source`` or
    ``Homepage``), or None when none is set (then the site has no Binder / Colab links)."""
    path = Path(course) / "pyproject.toml"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    block = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    if not block:
        return None
    for key in ("Repository", "Source", "Homepage"):
        m = re.search(rf'^\s*"?{key}"?\s*=\s*"([^"]+)"', block.group(1), flags=re.M | re.I)
        if m:
            return m.group(1).rstrip("/")
    return None


def _launch_links(repo: str | None, nb_name: str) -> str:
    """Binder and Colab links for a GitHub repository URL (none for other hosts or when unset)."""
    m = re.match(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?$", repo or "")
    if not m:
        return ""
    owner, name = m.groups()
    binder = f"https://mybinder.org/v2/gh/{owner}/{name}/HEAD?labpath=notebooks%2F{nb_name}"
    colab = f"https://colab.research.google.com/github/{owner}/{name}/blob/HEAD/notebooks/{nb_name}"
    return (f' Or launch it online: <a class="sg-launch" href="{binder}">Binder</a>, '
            f'<a class="sg-launch" href="{colab}">Colab</a> (there, run the install line the setup cell prints first).')


def _nav(i: int, pages: list, repo: str | None = None) -> str:
    stem = pages[i][0]
    prev = f'<a href="{pages[i - 1][0]}.html">&larr; {html.escape(pages[i - 1][1])}</a>' if i > 0 else ""
    nxt = f'<a href="{pages[i + 1][0]}.html">{html.escape(pages[i + 1][1])} &rarr;</a>' if i + 1 < len(pages) else ""
    return (f'<nav class="sg-nav" aria-label="Previous and next">{prev}{nxt}'
            f'<a href="notebooks/{stem}.ipynb" download>download {stem}.ipynb</a>'
            f'<span class="sg-run">Run it interactively (widgets need a live kernel): '
            f'<code>pip install -e ".[notebooks]"</code> in the course folder, then '
            f'<code>jupyter lab notebooks/{stem}.ipynb</code>.{_launch_links(repo, stem + ".ipynb")}</span></nav>')


def _plain(fragment: str) -> str:
    """Text of an HTML fragment (tags dropped, entities kept as text)."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\u00b6", "").strip()


def _outline(body: str, levels: str = "23") -> list:
    """[(level, id, text)] of a rendered page's headings of ``levels`` (h2 and h3 by default), in order."""
    return [(int(level), html.unescape(ident), _plain(inner))
            for level, ident, inner in re.findall(rf'<h([{levels}]) id="([^"]+)"[^>]*>(.*?)</h\1>', body, flags=re.S)]


def _sidebar(pages: list, current: int | None, outline: list, reference=(), here: str | None = None) -> str:
    """The sidebar: every notebook, then the reference pages ``reference`` ([(href, title)]); the current page
    (notebook number ``current``, or the reference page ``here``) is marked and lists ``outline``."""
    def item(href, title, is_current):
        if not is_current:
            return f'<li><a href="{href}">{html.escape(title)}</a></li>'
        sub = "".join(f'<li class="sg-h{level}"><a href="#{html.escape(ident, quote=True)}">{html.escape(text)}</a></li>'
                      for level, ident, text in outline)
        inner = f'<ul class="sg-outline" aria-label="On this page">{sub}</ul>' if sub else ""
        return f'<li aria-current="page"><a href="{href}">{html.escape(title)}</a>{inner}</li>'

    notebooks = "".join(item(f"{stem}.html", title, j == current) for j, (stem, title) in enumerate(pages))
    refs = "".join(item(href, title, href == here) for href, title in reference)
    return (f'<nav class="sg-sidebar" aria-label="Course"><a class="sg-home" href="index.html">scoregen-lite</a>'
            f'<div id="sg-search" role="search"></div><h2>Notebooks</h2><ol>{notebooks}</ol>'
            f'<h2>Reference</h2><ul>{refs}</ul></nav>')


_TITLE_CALL = re.compile(r"""(?:set_title|suptitle|\btitle\s*=|\.title)\s*\(?\s*f?(["'])(.+?)\1""")


def _first_sentence(markdown: str) -> str:
    text = re.sub(r"`([^`]*)`", r"\1", markdown)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$([^$]*)\$", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_#>|\\{}]", "", text)
    text = " ".join(text.split())
    m = re.match(r"(.{20,240}?[.!?])(\s|$)", text)
    return (m.group(1) if m else text[:240]).strip()


def figure_alt_texts(cells) -> list:
    """For each code cell, the text alternative of its figures (one string per cell; "" for markdown cells):
    the plot's titles found in the cell's source (f-string fields shown as "..."), then the first sentence
    of the markdown cell that follows, which says what the figure shows; with neither, the first sentence of
    the markdown before the cell. ``cells``: a notebook's cells."""
    out = []
    for k, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            out.append("")
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        titles = [re.sub(r"\{[^}]*\}", "...", t) for _, t in _TITLE_CALL.findall(src)]
        titles = [t for t in titles if len(re.findall(r"[A-Za-z]", t)) >= 3]   # not a title made of fields alone
        follow = ""
        for later in cells[k + 1:]:
            if later["cell_type"] == "markdown":
                body = "".join(later["source"]) if isinstance(later["source"], list) else later["source"]
                if not body.lstrip().startswith("#"):
                    follow = _first_sentence(body)
                break
            if later["cell_type"] == "code":
                break
        if not follow and not titles:        # no caption after it: what the section before it says it shows
            for earlier in reversed(cells[:k]):
                if earlier["cell_type"] == "markdown":
                    body = "".join(earlier["source"]) if isinstance(earlier["source"], list) else earlier["source"]
                    body = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))
                    follow = ("Figure for: " + _first_sentence(body)) if body.strip() else ""
                    break
        parts = []
        if titles:
            parts.append("Figure: " + "; ".join(dict.fromkeys(titles)) + ".")
        if follow:
            parts.append(follow)
        out.append(" ".join(parts) or "A figure of this cell's output (see the code above it).")
    return out


_CODE_SPAN = CODE_SPAN
_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\begin\{(equation|align|gather)\*?\}.+?\\end\{\1\*?\}|"
                   r"(?<![\\$])\$(?!\$)(?:\\\$|[^$])+?(?<!\\)\$|\\\(.+?\\\)", flags=re.S)


def count_equations(markdown: str) -> int:
    """How many equations MathJax's tex2jax finds in a markdown text: $...$, $$...$$, \\(...\\), \\[...\\] and
    equation environments, outside code spans and blocks (where it does not look); ``\\$`` is a dollar sign."""
    return len(_MATH.findall(_CODE_SPAN.sub(" ", markdown)))


def _minutes(timings_file) -> dict:
    if not Path(timings_file).exists():
        return {}
    data = json.loads(Path(timings_file).read_text())
    out: dict = {}
    for row in data["rows"]:
        out.setdefault(row["notebook"], {})[row["mode"]] = row["seconds"]
    out["_device"] = data.get("device", "")
    return out


def build_site(out="site", *, course=None, log=print, search: bool = True) -> dict:
    """Write the website into ``out`` (replaced if it exists): ``index.html``, one ``NN_name.html`` per
    notebook in ``course/notebooks``, a copy of each notebook under ``notebooks/``, ``notation.html``, one page
    per guide page (``guide_sources``: ``docs/*.md`` and ``CONTRIBUTING.md``), the API reference (``api.html``
    and ``api_pages``), MathJax under ``mathjax/`` and (with ``search``) the Pagefind index under ``pagefind/``.
    Returns {"pages": the notebooks' pages, "guides": the guide's pages, "api": the API pages, "equations":
    {page: count in its markdown}, "seconds": build time, "megabytes": the site's size, "largest_page": (name,
    MB)}. Needs the ``site`` extra (``pip install -e ".[site]"``: nbconvert, django-static-mathjax, pagefind)."""
    try:
        import jinja2
        import mathjax  # MathJax 3.2.2 as a PyPI package (django-static-mathjax, no dependencies)
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(f"building the site needs the site extra ({err}); pip install -e \".[site]\"") from err

    start = time.perf_counter()
    course = Path(course) if course else course_dir()
    nb_dir = course / "notebooks"
    notebooks = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (NN_name.ipynb) in {nb_dir}.")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    _copy_mathjax(Path(mathjax.__file__).parent / "static" / "mathjax", out / "mathjax")
    repo = repository_url(course)
    pages = [(p.stem, notebook_title(p)) for p in notebooks]
    exporter = HTMLExporter(template_name="lab", template_file="scoregen.html.j2",
                            extra_loaders=[jinja2.DictLoader({"scoregen.html.j2": site_file("page.html.j2")})])
    guides = []
    for source in guide_sources(course):
        text = (course / source).read_text(encoding="utf-8")
        guides.append((source, guide_page(source), markdown_title(text, source), text))
    api = api_pages()
    reference = ([("notation.html", "Notation")] + [(page, title) for _, page, title, _ in guides]
                 + [("api.html", "API reference")])
    sequence = reference + [(page, name) for page, name in api]
    render = _Renderer(exporter, pages, reference)
    equations = {}
    for i, path in enumerate(notebooks):
        nb = nbformat.read(path, as_version=4)
        n_widgets, n_eq = 0, 0
        alts = figure_alt_texts(nb.cells)
        for k, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":   # links to sibling notebooks and the notation sheet go to their pages
                cell.source = re.sub(r"\]\((\d\d_\w+)\.ipynb\)", r"](\1.html)", cell.source)
                cell.source = cell.source.replace(f"]({NOTATION_LINK})", "](notation.html)")
                n_eq += count_equations(cell.source)
            if cell.cell_type != "code":
                continue
            for output in cell.outputs:
                data = output.get("data", {})
                if "image/png" in data:
                    output.setdefault("metadata", {})["scoregen_alt"] = alts[k]
                if "text/html" in data and "<img" in data["text/html"]:   # e.g. an animation's frames
                    alt = html.escape(alts[k], quote=True)
                    data["text/html"] = re.sub(r"<img(?![^>]*\balt=)", f'<img alt="{alt}"', data["text/html"])
                    data["text/html"] = re.sub(   # matplotlib's animation player: a named frame slider
                        r"<input(?=[^>]*anim-slider)(?![^>]*aria-label)", '<input aria-label="animation frame"',
                        data["text/html"])
                if "text/markdown" in data and "text/html" not in data:
                    n_eq += count_equations(data["text/markdown"])
            # a committed notebook stores no widget view (nbclean drops them): the explorer cell's output is empty
            if re.search(r"sg\.widgets\.\w+_explorer\(", cell.source):
                cell.outputs = list(cell.outputs) + [nbformat.v4.new_output("display_data", data={
                    "text/html": site_file("widget-note.html").strip().format(nb=f"notebooks/{path.name}"),
                    "text/plain": "widget"})]
                n_widgets += 1
        body = render(nb, pages[i][1], _nav(i, pages, repo), current=i)
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        shutil.copy(path, out / "notebooks" / path.name)
        equations[f"{path.stem}.html"] = n_eq
        log(f"{path.stem}.html ({len(body) / 1e6:.1f} MB, {n_eq} equations"
            f"{f', {n_widgets} widget note(s)' if n_widgets else ''})")
    equations["notation.html"] = _notation_page(out, render, pages)
    log(f"notation.html ({equations['notation.html']} equations)")
    for source, page, title, text in guides:     # the guide, as committed (its tables rendered into it)
        markdown = site_links(text, source)
        equations[page] = _markdown_page(out, render, page, title, markdown, page_nav(sequence, page))
        log(f"{page} (from {source}, {equations[page]} equations)")
    for page, title, markdown in [("api.html", "API reference", api_index())] + \
            [(page, name, api_markdown(name)) for page, name in api]:
        equations[page] = _markdown_page(out, render, page, title, markdown, page_nav(sequence, page),
                                         outline="2", here="api.html")
    log(f"API reference: api.html and {len(api)} pages from the docstrings")
    for name, css in render.shared.items():     # JupyterLab's styles, once for every page
        (out / name).write_text(css, encoding="utf-8")
    _home(out, pages, notebook_map(course / "README.md"),
          _minutes(course / "benchmarks" / "results" / "course_timings.json"), reference)
    if search:
        _index(out, log)
    seconds = time.perf_counter() - start
    sizes = {p: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    largest = max((p for p in sizes if p.suffix == ".html"), key=sizes.get)
    info = {"pages": [f"{s}.html" for s, _ in pages], "guides": [page for _, page, _, _ in guides],
            "api": ["api.html"] + [page for page, _ in api], "equations": equations, "seconds": seconds,
            "megabytes": sum(sizes.values()) / 1e6, "largest_page": (largest.name, sizes[largest] / 1e6)}
    log(f"site written to {out} ({len(pages)} notebooks, {len(guides)} guide pages, {len(info['api'])} API pages "
        f"+ index.html and notation.html) in {seconds:.1f} s: {info['megabytes']:.1f} MB, largest page "
        f"{largest.name} {sizes[largest] / 1e6:.1f} MB")
    return info


class _Renderer:
    """Renders one page of the site: a notebook exported with the course's template (``site_files/page.html.j2``),
    nothing fetched from the internet, the sidebar with this page's outline, no pilcrows in search results, and
    JupyterLab's styles (the same on every page) in one shared file instead of in each page (``shared``:
    {file name: CSS}, named by a hash of the CSS; ``build_site`` writes them)."""

    def __init__(self, exporter, pages, reference):
        self.exporter, self.pages, self.reference = exporter, pages, reference
        self.css, self.search_js = site_file("page.css"), site_file("search.js")
        self.shared: dict = {}

    def _share_lab_css(self, body: str) -> str:
        m = re.search(r"<!--sg-lab-css-->(.*?)<!--/sg-lab-css-->", body, flags=re.S)
        if not m:
            raise RuntimeError("site_files/page.html.j2 lost the <!--sg-lab-css--> markers around nbconvert's styles.")
        styles = re.compile(r'<style type="text/css">(.*?)</style>', flags=re.S)
        if styles.sub("", m.group(1)).strip():      # anything but styles there: keep the block as it is
            return body[:m.start()] + m.group(1) + body[m.end():]
        css = "\n".join(part.strip() for part in styles.findall(m.group(1))) + "\n"
        name = f"lab-{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
        self.shared[name] = css
        return body[:m.start()] + f'<link rel="stylesheet" href="{name}">' + body[m.end():]

    def __call__(self, nb, title: str, nav: str, *, current: int | None = None, here: str | None = None,
                 outline: str = "23") -> str:
        resources = {"metadata": {"name": title}, "language_code": "en", "scoregen_css": self.css,
                     "scoregen_nav": nav, "scoregen_sidebar": "<!--scoregen-sidebar-->",
                     "scoregen_mathjax_config": MATHJAX_CONFIG, "scoregen_mathjax_url": _MATHJAX_URL,
                     "scoregen_search_js": self.search_js}
        body, _ = self.exporter.from_notebook_node(nb, resources=resources)
        body = self._share_lab_css(re.sub(r'<link[^>]*href="https?://[^"]*"[^>]*>', "", body))
        sidebar = _sidebar(self.pages, current, _outline(body, outline), self.reference, here)
        body = body.replace("<!--scoregen-sidebar-->", sidebar, 1)
        return body.replace('<a class="anchor-link"', '<a data-pagefind-ignore class="anchor-link"')


def _markdown_page(out: Path, render, page: str, title: str, markdown: str, nav: str, *, outline: str = "23",
                   here: str | None = None) -> int:
    """Write ``page`` from ``markdown`` (one markdown cell, typeset like the notebook pages); returns its number
    of equations."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown)])
    (out / page).write_text(render(nb, title, nav, here=here or page, outline=outline), encoding="utf-8")
    return count_equations(markdown)


def _notation_page(out: Path, render, pages) -> int:
    """``notation.html``: the notation sheet (``sg.notation``), typeset like the notebook pages; returns its
    number of equations."""
    from .notation import abbreviations_table, markdown_table

    text = ("# Notation\n\nOne meaning per symbol across the notebooks, the package and the widgets. The course "
            "notes' equations (1)-(8) keep their symbols; where a paper writes a symbol differently, the last column "
            "says so.\n\n## Symbols\n\n" + markdown_table() + "\n## Abbreviations\n\n" + abbreviations_table())
    nav = ('<nav class="sg-nav" aria-label="Previous and next"><a href="index.html">&larr; the course</a>'
           f'<a href="{pages[0][0]}.html">{html.escape(pages[0][1])} &rarr;</a></nav>')
    return _markdown_page(out, render, "notation.html", "Notation", text, nav)


def _copy_mathjax(package: Path, target: Path) -> None:
    """Copy the pages' MathJax (``_MATHJAX_PARTS`` of the package's ``es5/`` build) and its licence."""
    target.mkdir(parents=True)
    for part in _MATHJAX_PARTS:
        src = package / "es5" / part
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing: the site needs MathJax 3 from the pinned PyPI package "
                                    f"django-static-mathjax (pip install -e \".[site]\").")
        (shutil.copytree if src.is_dir() else shutil.copy)(src, target / part)
    shutil.copy(package / "LICENSE", target / "LICENSE")


def _index(out: Path, log) -> None:
    """The static search index: Pagefind over the notebook pages' main content (``data-pagefind-body``)."""
    cmd = [sys.executable, "-m", "pagefind", "--site", str(out), "--output-subdir", "pagefind"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"the search index could not be built ({' '.join(cmd)}): {err}; "
                           f"pip install -e \".[site]\" installs pagefind") from err
    if run.returncode != 0:
        raise RuntimeError(f"pagefind failed (exit {run.returncode}): {(run.stderr or run.stdout).strip()[-800:]}; "
                           f"pip install -e \".[site]\" installs it")
    found = re.search(r"Indexed (\d+) pages?", run.stdout)
    log(f"search index: {found.group(0) if found else 'built'} (pagefind)")



def _home(out: Path, pages, nb_map: dict, minutes: dict, reference=()) -> None:
    """``index.html`` from ``site_files/home.html.j2``: the notebook map with the measured minutes, the reference
    pages and the search box."""
    import jinja2

    rows = []
    for stem, title in pages:
        info = nb_map.get(stem, {})
        m = minutes.get(stem, {})
        rows.append({"href": f"{stem}.html", "title": title, "topic": info.get("topic", ""),
                     "equations": info.get("equations", ""), "runs_on": info.get("runs_on", ""),
                     "full": f"{max(1, round(m['full'] / 60))} min" if "full" in m else "n/a",
                     "quick": f"{m['quick']:.0f} s" if "quick" in m else "n/a"})
    template = jinja2.Environment(autoescape=True).from_string(site_file("home.html.j2"))
    page = template.render(rows=rows, guides=[{"href": h, "title": t} for h, t in reference],
                           device=minutes.get("_device", ""), css=site_file("home.css"),
                           search_js=site_file("search.js"))
    (out / "index.html").write_text(page, encoding="utf-8")


def main(argv=None) -> int:
    """``python -m scoregen_lite.courseware.site [--out site/] [--no-search]``: build the website (the same as
    ``python -m scoregen_lite.courseware.course site``)."""
    parser = argparse.ArgumentParser(prog="python -m scoregen_lite.courseware.site", description=main.__doc__)
    parser.add_argument("--out", default="site", help="output folder (replaced; ignored by git)")
    parser.add_argument("--no-search", action="store_true", help="skip the Pagefind search index")
    args = parser.parse_args(argv)
    build_site(args.out, search=not args.no_search)
    return 0


if __name__ == "__main__":
    sys.exit(main())
