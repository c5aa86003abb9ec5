"""The course as a static website, built from the committed, executed notebooks (nothing is re-executed):
``python -m scoregen_lite.course site [--out site/]``.

One HTML page per notebook (nbconvert's HTML exporter with its "lab" template: figures embedded,
animations kept, code and outputs as stored) with previous / next navigation, a link to the notebook
file and how to run it; a home page with the README's notebook map and the measured minutes per
notebook (``benchmarks/results/course_timings.json``). Everything is local: no script or style is
fetched from the internet, so the site builds and reads offline and can be copied to any static host.
Equations stay as their TeX source (MathJax is not available offline; Jupyter renders them). Widgets
need a running kernel: where a notebook had one, the page says so. Introduced for issue 14; see the
README, "The course as a website".
"""
from __future__ import annotations

import html
import json
import re
import shutil
import time
from pathlib import Path

__all__ = ["build_site", "notebook_title", "notebook_map"]

_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<link rel="icon" href="data:,"><style>{{ resources.scoregen_css }}</style>{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
{{ resources.scoregen_nav }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.scoregen_nav }}
{{ super() }}
{% endblock body_footer %}
"""

_CSS = """
.sg-nav { display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; padding: 0.7em 1em; margin: 0 0 1em 0;
  background: #f4f0ff; border: 1px solid #ddd3fb; border-radius: 6px; font: 14px system-ui, sans-serif; }
.sg-nav a { color: #5b21b6; text-decoration: none; } .sg-nav a:hover { text-decoration: underline; }
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
"""

_HOME_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { color: #4c1d95; } a { color: #5b21b6; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 0.45em 0.6em; vertical-align: top; text-align: left; }
th { background: #f4f0ff; } td.min { white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.25em; border-radius: 3px; }
.note { color: #555; font-size: 14px; }
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


def _nav(i: int, pages: list) -> str:
    stem = pages[i][0]
    prev = f'<a href="{pages[i - 1][0]}.html">&larr; {html.escape(pages[i - 1][1])}</a>' if i > 0 else ""
    nxt = f'<a href="{pages[i + 1][0]}.html">{html.escape(pages[i + 1][1])} &rarr;</a>' if i + 1 < len(pages) else ""
    return (f'<nav class="sg-nav"><a href="index.html">scoregen-lite: all notebooks</a>{prev}{nxt}'
            f'<a href="notebooks/{stem}.ipynb" download>download {stem}.ipynb</a>'
            f'<span class="sg-run">Run it interactively (widgets need a live kernel): '
            f'<code>pip install -e ".[notebooks]"</code> in the course folder, then '
            f'<code>jupyter lab notebooks/{stem}.ipynb</code>. Equations are shown as TeX source here; '
            f'Jupyter renders them.</span></nav>')


def _minutes(timings_file) -> dict:
    if not Path(timings_file).exists():
        return {}
    data = json.loads(Path(timings_file).read_text())
    out: dict = {}
    for row in data["rows"]:
        out.setdefault(row["notebook"], {})[row["mode"]] = row["seconds"]
    out["_device"] = data.get("device", "")
    return out


def build_site(out="site", *, course=None, log=print) -> dict:
    """Write the website into ``out`` (replaced if it exists): ``index.html``, one ``NN_name.html`` per
    notebook in ``course/notebooks`` and a copy of each notebook under ``notebooks/``. Returns
    {"pages": [...], "seconds": build time}. Needs nbconvert (``pip install -e ".[site]"``)."""
    try:
        import jinja2
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(f"building the site needs nbconvert ({err}); pip install -e \".[site]\"") from err

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
    pages = [(p.stem, notebook_title(p)) for p in notebooks]
    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"scoregen.html.j2": _TEMPLATE})],
                            template_file="scoregen.html.j2")
    for i, path in enumerate(notebooks):
        nb = nbformat.read(path, as_version=4)
        n_widgets = 0
        for cell in nb.cells:
            if cell.cell_type == "markdown":   # links to sibling notebooks go to their pages
                cell.source = re.sub(r"\]\((\d\d_\w+)\.ipynb\)", r"](\1.html)", cell.source)
            if cell.cell_type != "code":
                continue
            # a committed notebook stores no widget view (nbclean drops them): the explorer cell's output is empty
            if re.search(r"sg\.widgets\.\w+_explorer\(", cell.source):
                cell.outputs = list(cell.outputs) + [nbformat.v4.new_output("display_data", data={
                    "text/html": _WIDGET_NOTE.format(nb=f"notebooks/{path.name}"), "text/plain": "widget"})]
                n_widgets += 1
        title = pages[i][1]
        body, _ = exporter.from_notebook_node(nb, resources={
            "metadata": {"name": title}, "scoregen_css": _CSS, "scoregen_nav": _nav(i, pages)})
        body = re.sub(r'<link[^>]*href="https?://[^"]*"[^>]*>', "", body)   # nothing is fetched from the internet
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        shutil.copy(path, out / "notebooks" / path.name)
        log(f"{path.stem}.html ({len(body) / 1e6:.1f} MB{f', {n_widgets} widget note(s)' if n_widgets else ''})")
    _home(out, pages, notebook_map(course / "README.md"), _minutes(course / "benchmarks" / "results" /
                                                                    "course_timings.json"))
    seconds = time.perf_counter() - start
    log(f"site written to {out} ({len(pages)} notebooks + index.html) in {seconds:.1f} s")
    return {"pages": [f"{s}.html" for s, _ in pages], "seconds": seconds}


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
<title>scoregen-lite: score-based generative modelling, a notebook course</title><link rel="icon" href="data:,"><style>{_HOME_CSS}</style></head>
<body>
<h1>scoregen-lite</h1>
<p>An interactive notebook course on score-based generative modelling in PyTorch: scores and Langevin dynamics,
score matching, noise-conditional networks, SDEs, MNIST, fast samplers and controllable generation. Every notebook
runs on a laptop CPU; these pages show them as last executed (full mode), with their figures.</p>
<table><thead><tr><th>notebook</th><th>topic</th><th>equations</th><th>runs on</th><th>time</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p class="note">Time: measured wall time per notebook in full mode (and quick mode, <code>SCOREGEN_QUICK=1</code>)
on {device or "the course machine"}. To run the notebooks yourself (widgets need a live kernel): install the course
with <code>pip install -e ".[notebooks]"</code> and start <code>jupyter lab notebooks/</code>; each page links to its
notebook file.</p>
<p class="note">Licences: the code is MIT-licensed (<code>LICENSE</code>); the notebooks' text and figures are
CC BY 4.0 (<code>LICENSE-CONTENT</code>). To cite the course, see <code>CITATION.cff</code>.</p>
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
