"""The guide's pages on the website: the markdown of ``docs/*.md`` and ``CONTRIBUTING.md`` as committed (their result
tables rendered into them by ``python -m scoregen_lite.courseware.results readme``), which pages they are, their
titles, their links turned into links between the site's pages, and the navigation bar of a reference page. Used by
``scoregen_lite.courseware.site.build_site``; see CONTRIBUTING.md, "The website".
"""
from __future__ import annotations

import html
import posixpath
import re
from pathlib import Path

from ..artifacts import course_dir

__all__ = ["GUIDES_FIRST", "CODE_SPAN", "guide_sources", "guide_page", "markdown_title", "site_links", "page_nav"]

#: The guide's pages first in the sidebar, in this order; any other ``docs/*.md`` follows by name, then
#: ``CONTRIBUTING.md``.
GUIDES_FIRST = ("docs/teaching.md", "docs/running.md", "docs/benchmarks.md")

#: Markdown code: fenced blocks and code spans (MathJax does not look inside them, and links there are text).
CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`", flags=re.S)


def guide_sources(course=None) -> list:
    """The guide's markdown pages in the course folder, as paths relative to it, in the sidebar's order:
    ``GUIDES_FIRST``, any other ``docs/*.md`` by name, then ``CONTRIBUTING.md`` (those that exist)."""
    course = Path(course) if course else course_dir()
    docs = [f"docs/{p.name}" for p in sorted((course / "docs").glob("*.md"))]
    ordered = [d for d in GUIDES_FIRST if d in docs] + [d for d in docs if d not in GUIDES_FIRST]
    return ordered + (["CONTRIBUTING.md"] if (course / "CONTRIBUTING.md").exists() else [])


def guide_page(source: str) -> str:
    """The site's page of a guide page: ``docs/NAME.md`` -> ``NAME.html``, ``CONTRIBUTING.md`` ->
    ``contributing.html``."""
    name = posixpath.basename(source)
    if not name.endswith(".md"):
        raise ValueError(f"source={source!r} is not a markdown page (docs/NAME.md or CONTRIBUTING.md).")
    return name[:-3].lower() + ".html"


def markdown_title(text: str, source: str) -> str:
    """A guide page's title: its level-1 heading (``# Title``); ``source`` names the page in the error."""
    m = re.search(r"^# (.+)$", text, flags=re.M)
    if not m:
        raise ValueError(f"{source} has no title: its first heading must be '# Title' (a level-1 heading).")
    return m.group(1).strip()


def _site_target(path: str, fragment: str, source: str, target: str):
    """The site's page for a repository path (see ``site_links``), or None when the site has none."""
    m = re.fullmatch(r"notebooks/(\d\d_\w+)\.ipynb", path)
    if m:
        return f"{m.group(1)}.html"
    if path == "README.md":
        return "notation.html" if fragment == "notation" else "index.html"
    if path == "CONTRIBUTING.md" or (path.startswith("docs/") and path.endswith(".md") and path.count("/") == 1):
        return guide_page(path)
    return None


def site_links(markdown: str, source: str) -> str:
    """``markdown`` (the page ``source``, a path relative to the course folder such as ``docs/teaching.md``) with
    its relative links turned into links to the site's pages: a notebook to its page, ``README.md`` to
    ``index.html`` (``README.md#notation`` to ``notation.html``), ``docs/NAME.md`` to ``NAME.html`` and
    ``CONTRIBUTING.md`` to ``contributing.html``. Web links, links within the page (``#...``) and code are left
    alone. A link to any other file, or to a section of another page (GitHub's section ids are not the site's),
    is an error naming the page and the link: the site does not carry the file."""
    base = posixpath.dirname(source)

    def fix(m):
        target = m.group(2)
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, fragment = target.partition("#")
        page = _site_target(posixpath.normpath(posixpath.join(base, path)), fragment, source, target)
        if page is None:
            raise ValueError(f"{source}: the link ({target}) points to a file the website does not carry; link a "
                             f"notebook, README.md, CONTRIBUTING.md or a docs/ page, or name the file in `code`.")
        if fragment and page != "notation.html":
            raise ValueError(f"{source}: the link ({target}) points to a section of another page; section ids differ "
                             f"between GitHub and the website, so link the page ({path}) and name the section.")
        return f"{m.group(1)}{page}{m.group(3)}"

    parts = re.split(f"({CODE_SPAN.pattern})", markdown, flags=re.S)
    return "".join(part if k % 2 else re.sub(r"(\]\()([^)\s]+)(\))", fix, part) for k, part in enumerate(parts))


def page_nav(sequence: list, href: str) -> str:
    """The navigation bar of a reference page (the notation sheet, a guide page, an API page): previous / next
    within ``sequence`` ([(href, title)]), the course's home before the first."""
    i = [h for h, _ in sequence].index(href)
    prev = (f'<a href="{sequence[i - 1][0]}">&larr; {html.escape(sequence[i - 1][1])}</a>' if i > 0 else
            '<a href="index.html">&larr; the course</a>')
    nxt = f'<a href="{sequence[i + 1][0]}">{html.escape(sequence[i + 1][1])} &rarr;</a>' if i + 1 < len(sequence) else ""
    return f'<nav class="sg-nav" aria-label="Previous and next">{prev}{nxt}</nav>'
