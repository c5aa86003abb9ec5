"""The course as a static website, built from the committed, executed notebooks (nothing is re-executed):
``python -m scoregen_lite.courseware.course site [--out site/]``.

One HTML page per notebook (nbconvert's HTML exporter with its "lab" template: figures embedded,
animations kept, code and outputs as stored) and a home page with the README's notebook map and the
measured minutes per notebook (``benchmarks/results/course_timings.json``). Every page has:

* **typeset maths**: MathJax 3.2.2 (TeX input, SVG output, so no font files) copied into ``site/mathjax/`` from
  the pinned PyPI package ``django-static-mathjax`` (no dependencies; the ``site`` extra), configured like Jupyter's
  ($...$, $$...$$, \\(...\\), \\[...\\], environments such as ``aligned``);
* **navigation**: a sidebar listing every notebook (the current one marked) with the page's own outline (its
  section headings, linked), previous / next, and a link to the notebook file;
* **search**: a static full-text index built by Pagefind (the pinned PyPI package ``pagefind[bin]``) over every
  notebook page, searched in the browser, results linked to the section (``site/pagefind/``);
* **accessibility**: a language, a skip link, landmarks, and a text alternative for every figure taken from its
  cell (the plot's titles, then the first sentence of the markdown that follows it);
* **run it yourself**: how to run the notebook locally, and launch links for Binder and Colab when the
  repository URL is set in ``pyproject.toml`` (``[project.urls] Repository``; none when unset).

Everything is local: no script, style or font is fetched from the internet, so the site builds and reads
offline and can be copied to any static host. Widgets need a running kernel: where a notebook had one, the
page says so. See the README, "The course as a website".
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .notation import NOTATION_LINK

__all__ = ["build_site", "notebook_title", "notebook_map", "figure_alt_texts", "count_equations", "repository_url",
           "MATHJAX_CONFIG"]

#: The MathJax configuration every page loads (MathJax 3, TeX input with every package, SVG output: no font
#: files). Delimiters as Jupyter's: $...$, $$...$$, \\(...\\), \\[...\\] and environments. When typesetting
#: ends, ``document.body.dataset.mathjax`` is set to "done" (the browser tests wait for it).
MATHJAX_CONFIG = r"""window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  startup: {pageReady: function () {
    return MathJax.startup.defaultPageReady().then(function () { document.body.dataset.mathjax = 'done'; });
  }}
};"""

_MATHJAX_URL = "mathjax/tex-svg-full.js"
#: What the site copies of the MathJax package (``es5/``): the one-file TeX-to-SVG component, and what its menu
#: loads on demand (accessibility explorer, speech rules).
_MATHJAX_PARTS = ("tex-svg-full.js", "a11y", "ui", "sre")

_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script>{{ resources.scoregen_mathjax_config }}</script>
<script defer src="{{ resources.scoregen_mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<link rel="icon" href="data:,"><style>{{ resources.scoregen_css }}</style>
<link rel="stylesheet" href="pagefind/pagefind-ui.css"><script src="pagefind/pagefind-ui.js"></script>{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook sg-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<a class="sg-skip" href="#sg-main">Skip to the notebook</a>
{{ resources.scoregen_sidebar }}
<div class="sg-content">
{{ resources.scoregen_nav }}
<main id="sg-main" data-pagefind-body>
{%- endblock body_header -%}
{% block body_footer %}
</main>
{{ resources.scoregen_nav }}
</div>
{{ resources.scoregen_search_js }}
</body>
{% endblock body_footer %}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="{{ output.metadata.get('scoregen_alt', 'figure') | escape_html }}">
</div>
{%- endblock data_png %}
"""

_SEARCH_JS = """<script>
window.addEventListener("DOMContentLoaded", function () {
  new PagefindUI({element: "#sg-search", showSubResults: true, showImages: false, resetStyles: false,
                  translations: {placeholder: "Search the course"}});
  var input = document.querySelector("#sg-search input");
  if (input) { input.setAttribute("aria-label", "Search the course"); }
});
</script>"""

_CSS = """
body.sg-page { margin: 0; }
.sg-skip { position: absolute; left: -999px; top: 0; background: #fff; padding: 0.5em; z-index: 10; }
.sg-skip:focus { left: 0.5em; }
.sg-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 290px; overflow-y: auto; box-sizing: border-box;
  padding: 1em 0.9em 2em 1em; background: #f7f5fc; border-right: 1px solid #ddd3fb; font: 14px/1.4 system-ui, sans-serif; }
.sg-sidebar a { color: #4c1d95; text-decoration: none; } .sg-sidebar a:hover { text-decoration: underline; }
.sg-sidebar .sg-home { font-weight: 600; font-size: 16px; display: block; margin-bottom: 0.6em; }
.sg-sidebar ol { padding-left: 1.4em; margin: 0.8em 0; } .sg-sidebar li { margin: 0.25em 0; }
.sg-sidebar li[aria-current] > a { font-weight: 700; color: #1f1147; }
.sg-sidebar .sg-outline { list-style: none; padding-left: 0.6em; margin: 0.3em 0 0.5em 0; border-left: 2px solid #c4b5fd; }
.sg-sidebar .sg-outline li { margin: 0.15em 0; font-size: 13px; } .sg-sidebar .sg-outline .sg-h3 { padding-left: 0.9em; }
.sg-sidebar h2 { font-size: 13px; text-transform: uppercase; letter-spacing: 0.04em; color: #3b3355; margin: 1em 0 0.3em 0; }
.sg-content { margin-left: 290px; padding: 0 1em; }
@media (max-width: 900px) { .sg-sidebar { position: static; width: auto; border-right: none; }
  .sg-content { margin-left: 0; } }
#sg-search { --pagefind-ui-scale: 0.75; --pagefind-ui-primary: #4c1d95; --pagefind-ui-text: #222; }
.sg-nav { display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; padding: 0.7em 1em; margin: 1em 0;
  background: #f4f0ff; border: 1px solid #ddd3fb; border-radius: 6px; font: 14px system-ui, sans-serif; }
.sg-nav a { color: #4c1d95; text-decoration: none; } .sg-nav a:hover { text-decoration: underline; } main .jp-RenderedMarkdown a:link, main .jp-RenderedMarkdown a:visited { text-decoration: underline; }
.sg-nav .sg-run { flex-basis: 100%; color: #333; font-size: 13px; }
.sg-nav code, .sg-widget code { background: #fff; padding: 0 0.25em; border-radius: 3px; }
/* matplotlib's animation player asks for Font Awesome from a CDN; offline, these glyphs stand in */
.anim-buttons i.fa { font-style: normal; font-family: system-ui, sans-serif; }
.fa-play:before { content: "\\25B6"; } .fa-pause:before { content: "\\23F8"; } .fa-minus:before { content: "\\2212"; }
.fa-plus:before { content: "+"; } .fa-step-forward:before { content: "\\25B7|"; } .fa-step-backward:before { content: "|\\25C1"; }
.fa-fast-forward:before { content: "\\23ED"; } .fa-fast-backward:before { content: "\\23EE"; }
.fa-flip-horizontal { display: inline-block; transform: scaleX(-1); }
.sg-widget { padding: 0.6em 0.9em; margin: 0.4em 0; background: #fff8e6; border: 1px solid #f2d48a; border-radius: 6px;
  font: 14px system-ui, sans-serif; }
/* contrast (WCAG AA, 4.5:1): JupyterLab's half-transparent prompts and its lighter syntax colours (operators #a2f,
   numbers #080, comments #408080) darkened until they pass on the code cells' #f5f5f5 */
body.sg-page { --jp-cell-prompt-not-active-opacity: 1; --jp-cell-inprompt-font-color: #1f5d99;
  --jp-cell-outprompt-font-color: #a3361d; --jp-mirror-editor-operator-color: #7a1fc2;
  --jp-mirror-editor-meta-color: #7a1fc2; --jp-mirror-editor-number-color: #006b00;
  --jp-mirror-editor-comment-color: #3a6666; --jp-mirror-editor-atom-color: #4545c4;
  --jp-mirror-editor-bracket-color: #66664a; --jp-mirror-editor-quote-color: #006b00; }
"""

_HOME_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { color: #4c1d95; } a { color: #4c1d95; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 0.45em 0.6em; vertical-align: top; text-align: left; }
th { background: #f4f0ff; } td.min { white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.25em; border-radius: 3px; }
.note { color: #444; font-size: 14px; }
#sg-search { max-width: 640px; margin: 1em 0 1.5em 0; --pagefind-ui-primary: #4c1d95; --pagefind-ui-text: #222; }
"""

_WIDGET_NOTE = ('<div class="sg-widget">An interactive widget runs here when the notebook runs in Jupyter with a '
                'live kernel (the sliders call the course package); a static page cannot run it. Open '
                '<code>{nb}</code> in JupyterLab to use it.</div>')


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


def _outline(body: str) -> list:
    """[(level, id, text)] of a rendered page's h2 and h3 headings, in order."""
    return [(int(level), html.unescape(ident), _plain(inner))
            for level, ident, inner in re.findall(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', body, flags=re.S)]


def _sidebar(pages: list, current: int | None, outline: list) -> str:
    items = []
    for j, (stem, title) in enumerate(pages):
        if j == current:
            sub = "".join(f'<li class="sg-h{level}"><a href="#{html.escape(ident, quote=True)}">{html.escape(text)}</a></li>'
                          for level, ident, text in outline)
            inner = f'<ul class="sg-outline" aria-label="On this page">{sub}</ul>' if sub else ""
            items.append(f'<li aria-current="page"><a href="{stem}.html">{html.escape(title)}</a>{inner}</li>')
        else:
            items.append(f'<li><a href="{stem}.html">{html.escape(title)}</a></li>')
    return (f'<nav class="sg-sidebar" aria-label="Course"><a class="sg-home" href="index.html">scoregen-lite</a>'
            f'<div id="sg-search" role="search"></div><h2>Notebooks</h2><ol>{"".join(items)}</ol>'
            f'<h2>Reference</h2><ul><li><a href="notation.html">Notation</a></li></ul></nav>')


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


_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`", flags=re.S)
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
    notebook in ``course/notebooks``, a copy of each notebook under ``notebooks/``, MathJax under ``mathjax/``
    and (with ``search``) the Pagefind index under ``pagefind/``. Returns {"pages": [...], "equations":
    {page: count in its markdown}, "seconds": build time, "megabytes": the site's size, "largest_page": (name,
    MB)}. Needs the ``site`` extra (``pip install -e ".[site]"``: nbconvert, django-static-mathjax, pagefind)."""
    try:
        import jinja2
        import mathjax          # MathJax 3.2.2 as a PyPI package (django-static-mathjax, no dependencies)
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(f"building the site needs the site extra ({err}); pip install -e \".[site]\"") from err

    start = time.perf_counter()
    course = Path(course) if course else Path(__file__).resolve().parents[1]
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
    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"scoregen.html.j2": _TEMPLATE})],
                            template_file="scoregen.html.j2")
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
                    "text/html": _WIDGET_NOTE.format(nb=f"notebooks/{path.name}"), "text/plain": "widget"})]
                n_widgets += 1
        body = _render(exporter, nb, pages[i][1], _nav(i, pages, repo), pages, i)
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        shutil.copy(path, out / "notebooks" / path.name)
        equations[f"{path.stem}.html"] = n_eq
        log(f"{path.stem}.html ({len(body) / 1e6:.1f} MB, {n_eq} equations"
            f"{f', {n_widgets} widget note(s)' if n_widgets else ''})")
    equations["notation.html"] = _notation_page(out, exporter, pages)
    log(f"notation.html ({equations['notation.html']} equations)")
    _home(out, pages, notebook_map(course / "README.md"), _minutes(course / "benchmarks" / "results" /
                                                                    "course_timings.json"))
    if search:
        _index(out, log)
    seconds = time.perf_counter() - start
    sizes = {p: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    largest = max((p for p in sizes if p.suffix == ".html"), key=sizes.get)
    info = {"pages": [f"{s}.html" for s, _ in pages], "equations": equations, "seconds": seconds,
            "megabytes": sum(sizes.values()) / 1e6, "largest_page": (largest.name, sizes[largest] / 1e6)}
    log(f"site written to {out} ({len(pages)} notebooks + index.html) in {seconds:.1f} s: "
        f"{info['megabytes']:.1f} MB, largest page {largest.name} {sizes[largest] / 1e6:.1f} MB")
    return info


def _render(exporter, nb, title: str, nav: str, pages, current: int | None) -> str:
    """One page of the site: ``nb`` exported with the course's template, nothing fetched from the internet, the
    sidebar with this page's outline, no pilcrows in search results."""
    resources = {"metadata": {"name": title}, "language_code": "en", "scoregen_css": _CSS, "scoregen_nav": nav,
                 "scoregen_sidebar": "<!--scoregen-sidebar-->", "scoregen_mathjax_config": MATHJAX_CONFIG,
                 "scoregen_mathjax_url": _MATHJAX_URL, "scoregen_search_js": _SEARCH_JS}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = re.sub(r'<link[^>]*href="https?://[^"]*"[^>]*>', "", body)
    body = body.replace("<!--scoregen-sidebar-->", _sidebar(pages, current, _outline(body)), 1)
    return body.replace('<a class="anchor-link"', '<a data-pagefind-ignore class="anchor-link"')


def _notation_page(out: Path, exporter, pages) -> int:
    """``notation.html``: the notation sheet (``sg.notation``), typeset like the notebook pages; returns its
    number of equations."""
    import nbformat

    from .notation import abbreviations_table, markdown_table

    text = ("# Notation\n\nOne meaning per symbol across the notebooks, the package and the widgets. The course "
            "notes' equations (1)-(8) keep their symbols; where a paper writes a symbol differently, the last column "
            "says so.\n\n## Symbols\n\n" + markdown_table() + "\n## Abbreviations\n\n" + abbreviations_table())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    nav = ('<nav class="sg-nav" aria-label="Previous and next"><a href="index.html">&larr; the course</a>'
           f'<a href="{pages[0][0]}.html">{html.escape(pages[0][1])} &rarr;</a></nav>')
    (out / "notation.html").write_text(_render(exporter, nb, "Notation", nav, pages, None), encoding="utf-8")
    return count_equations(text)


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


def _home(out: Path, pages, nb_map: dict, minutes: dict) -> None:
    rows = []
    for stem, title in pages:
        info = nb_map.get(stem, {})
        m = minutes.get(stem, {})
        full = f"{max(1, round(m['full'] / 60))} min" if "full" in m else "n/a"
        quick = f"{m['quick']:.0f} s" if "quick" in m else "n/a"
        rows.append(f'<tr><td><a href="{stem}.html">{html.escape(title)}</a></td>'
                    f'<td>{html.escape(info.get("topic", ""))}</td><td>{html.escape(info.get("equations", ""))}</td>'
                    f'<td>{html.escape(info.get("runs_on", ""))}</td><td class="min">{full} (quick mode {quick})</td></tr>')
    device = html.escape(minutes.get("_device", ""))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>scoregen-lite: score-based generative modelling, a notebook course</title><link rel="icon" href="data:,"><style>{_HOME_CSS}</style>
<link rel="stylesheet" href="pagefind/pagefind-ui.css"><script src="pagefind/pagefind-ui.js"></script></head>
<body>
<main>
<h1>scoregen-lite</h1>
<p>An interactive notebook course on score-based generative modelling in PyTorch: scores and Langevin dynamics,
score matching, noise-conditional networks, SDEs, MNIST, fast samplers and controllable generation. Every notebook
runs on a laptop CPU; these pages show them as last executed (full mode), with their figures.</p>
<div id="sg-search" role="search"></div>
<table><thead><tr><th>notebook</th><th>topic</th><th>equations</th><th>runs on</th><th>time</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Every symbol means one thing throughout: see the <a href="notation.html">notation sheet</a>.</p>
<p class="note">Time: measured wall time per notebook in full mode (and quick mode, <code>SCOREGEN_QUICK=1</code>)
on {device or "the course machine"}. To run the notebooks yourself (widgets need a live kernel): install the course
with <code>pip install -e ".[notebooks]"</code> and start <code>jupyter lab notebooks/</code>; each page links to its
notebook file.</p>
<p class="note">Licences: the code is MIT-licensed (<code>LICENSE</code>); the notebooks' text and figures are
CC BY 4.0 (<code>LICENSE-CONTENT</code>). To cite the course, see <code>CITATION.cff</code>.</p>
</main>
{_SEARCH_JS}
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
