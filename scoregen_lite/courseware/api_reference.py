"""The API reference of the website, generated from the package's docstrings when the site is built (nothing typed by
hand): ``api_index()`` is ``api.html`` (the pages and the names on ``sg``), and ``api_markdown(name)`` one page per
module or subpackage of ``scoregen_lite`` (``api_pages``), listing each public function and class (a module's
``__all__``) with its signature and the first paragraph of its docstring. Used by
``scoregen_lite.courseware.site.build_site``; see CONTRIBUTING.md, "The package".
"""
from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re

from .guide import CODE_SPAN

__all__ = ["API_ORDER", "api_pages", "entry_points", "api_markdown", "api_index", "first_paragraph",
           "docstring_markdown"]

#: The API reference's pages after ``api.html``, in this order: the package's modules and subpackages by name
#: (``api_NAME.html``). A module or subpackage of ``scoregen_lite`` that is not listed here gets its page after
#: these, so none is left out; names starting with ``_`` and ``__main__`` are not public.
API_ORDER = ("runtime", "artifacts", "validate", "core", "images", "widgets", "exercises", "courseware")


def first_paragraph(obj) -> str:
    """The first paragraph of ``obj``'s own docstring (a class's, not one inherited from its base), its lines
    joined; "" when it has none."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return ""
    return " ".join(re.split(r"\n\s*\n", inspect.cleandoc(doc).strip())[0].split())


def _code(text: str) -> str:
    """``text`` as a markdown code span (longer backtick fences when it holds backticks)."""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if fence != "`" or text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def docstring_markdown(text: str) -> str:
    """A docstring's reStructuredText-ish paragraph as markdown that renders as written: ````x```` becomes a code
    span; outside code, words holding a dollar sign or a backslash become code too (so MathJax typesets nothing
    of a docstring), HTML's special characters are escaped and ``*`` and ``_`` cannot start emphasis."""
    text = re.sub(r"``(.+?)``", lambda m: _code(m.group(1)), text)
    out = []
    for k, part in enumerate(re.split(f"({CODE_SPAN.pattern})", text, flags=re.S)):
        if k % 2:
            out.append(part)
            continue
        words = [_code(w) if ("$" in w or "\\" in w) else
                 html.escape(w, quote=False).replace("*", "\\*").replace("_", "\\_") for w in part.split(" ")]
        out.append(" ".join(words))
    result = "".join(out)
    return ("\\" + result) if re.match(r"[#>+\-]|\d+\.", result) else result


class _Written:
    """An annotation kept as the text the source wrote (``from __future__ import annotations``), shown unquoted."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _signature(obj, name: str) -> str:
    """``name(params) -> return`` as the source wrote it (annotations unquoted, no memory addresses)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    unquote = lambda a: _Written(a) if isinstance(a, str) else a  # noqa: E731
    sig = sig.replace(parameters=[p.replace(annotation=unquote(p.annotation)) for p in sig.parameters.values()],
                      return_annotation=unquote(sig.return_annotation))
    return name + re.sub(r" at 0x[0-9a-f]+", "", str(sig))


def _public(module) -> list:
    """A module's public names: its ``__all__``, or else the functions and classes it defines whose names do
    not start with ``_``."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, obj in vars(module).items() if not n.startswith("_") and
            (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__]


def _defined_elsewhere(obj, module) -> str | None:
    """The public module of the package that documents ``obj`` when it is not ``module`` (a re-export), else None."""
    home = getattr(obj, "__module__", None)
    if not home or home == module.__name__ or not home.startswith("scoregen_lite.") or \
            any(part.startswith("_") for part in home.split(".")):
        return None
    try:
        owner = importlib.import_module(home)
    except ImportError:
        return None
    return home if getattr(obj, "__name__", None) in _public(owner) else None


def _methods(cls) -> list:
    """The public methods and properties a class defines itself: [(signature, first paragraph)]."""
    out = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            out.append((name, first_paragraph(attr.fget) if attr.fget else ""))
        elif isinstance(attr, (staticmethod, classmethod)) or inspect.isfunction(attr):
            func = getattr(cls, name)
            sig = _signature(func, name)
            if inspect.isfunction(attr):          # drop self
                sig = re.sub(r"^(\w+)\(self(, )?", r"\1(", sig)
            out.append((sig, first_paragraph(func)))
    return out


def _entries(module, heading: str) -> list:
    """Markdown lines for the public names of ``module``, each under a heading of level ``heading`` (e.g. "###")."""
    short = module.__name__.rsplit(".", 1)[-1]
    lines, constants, elsewhere, modules = [], [], [], []
    for name in _public(module):
        if not hasattr(module, name):
            raise AttributeError(f"{module.__name__}.__all__ names {name!r}, which the module does not define.")
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            modules.append(f"{_code(name)} is {_code(obj.__name__)}")
            continue
        home = _defined_elsewhere(obj, module)
        if home:
            elsewhere.append(f"{_code(name)} ({_code(home)})")
            continue
        if not callable(obj):
            constants.append(f"{_code(name)} ({type(obj).__name__})")
            continue
        kind = "class" if inspect.isclass(obj) else "function"
        lines += [f"{heading} {short}.{name}", "", f"{_code(_signature(obj, name))} ({kind})", ""]
        text = first_paragraph(obj)
        lines += [docstring_markdown(text) if text else "No docstring.", ""]
        if inspect.isclass(obj):
            methods = _methods(obj)
            if methods:
                lines += [f"- {_code(sig)}" + (f": {docstring_markdown(doc)}" if doc else "") for sig, doc in methods]
                lines.append("")
    tail = []
    if modules:
        tail.append("Modules: " + "; ".join(modules) + ".")
    if constants:
        tail.append("Constants: " + ", ".join(constants) + ".")
    if elsewhere:
        tail.append("Also here, documented where they are defined: " + ", ".join(elsewhere) + ".")
    return lines + [line for t in tail for line in (t, "")]


def _top_modules(package: str) -> list:
    """The public modules and subpackages right below ``package``, ``API_ORDER`` first, as dotted names."""
    root = importlib.import_module(package)
    found = sorted(name for _, name, _ in pkgutil.iter_modules(root.__path__)
                   if not name.startswith("_") and name != "__main__")
    return [f"{package}.{n}" for n in [n for n in API_ORDER if n in found] + [n for n in found if n not in API_ORDER]]


def _is_entry_point(name: str) -> bool:
    """A module with no public name of its own and no submodule: a door for ``python -m`` (``entry_points``)."""
    module = _import(name)
    return not _public(module) and not hasattr(module, "__path__")


def api_pages(package: str = "scoregen_lite") -> list:
    """The API reference's pages after ``api.html`` as [(page, module name)], ``API_ORDER`` first: one per
    public module or subpackage of ``package`` that has public names (the others are ``entry_points``)."""
    return [(f"api_{name.rsplit('.', 1)[-1]}.html", name) for name in _top_modules(package)
            if not _is_entry_point(name)]


def entry_points(package: str = "scoregen_lite") -> list:
    """The modules right below ``package`` that define nothing public, only run a command with ``python -m``
    (e.g. ``scoregen_lite.nbclean``, the short name of ``scoregen_lite.courseware.nbclean``); ``api.html``
    lists them with their docstrings' first paragraphs."""
    return [name for name in _top_modules(package) if _is_entry_point(name)]


def _submodules(package) -> list:
    """The public modules below a subpackage, depth first, by name."""
    if not hasattr(package, "__path__"):
        return []
    names = sorted(name for _, name, _ in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                   if not any(part.startswith("_") for part in name.split(".")))
    return names


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"the API reference imports every module of the package; {name} failed ({err}). "
                          f"Install the course with its notebooks extra (pip install -e \".[notebooks]\").") from err


def api_markdown(module_name: str) -> str:
    """One page of the API reference as markdown: the module or subpackage ``module_name``, its docstring's first
    paragraph, then (for a subpackage, under a level-2 heading per module) each public function and class with its
    signature and the first paragraph of its docstring, each class's own methods, and the names it re-exports
    from the module that documents them. Introduced for issue 33 (the README no longer lists the API by hand)."""
    module = _import(module_name)
    lines = [f"# {module_name}", ""]
    intro = first_paragraph(module)
    lines += [docstring_markdown(intro) if intro else "No docstring.", ""]
    subs = _submodules(module)
    if not subs:
        return "\n".join(lines + _entries(module, "##")).rstrip() + "\n"
    own = _entries(module, "###")
    if own:
        lines += [f"## {module_name}", "", *own]
    for name in subs:
        sub = _import(name)
        intro = first_paragraph(sub)
        lines += [f"## {name}", "", docstring_markdown(intro) if intro else "No docstring.", "", *_entries(sub, "###")]
    return "\n".join(lines).rstrip() + "\n"


def api_index(package: str = "scoregen_lite") -> str:
    """``api.html``'s markdown: what the reference is, its pages with each module's first paragraph, and the
    names the facade ``sg`` offers (its ``__all__``: the modules notebooks write as ``sg.NAME`` and its own
    functions)."""
    root = importlib.import_module(package)
    lines = ["# API reference", "",
             f"Generated from the docstrings of the package `{package}` (`import {package} as sg`) when the site was "
             f"built: one page per module or subpackage, each public function and class with its signature and the "
             f"first paragraph of its docstring. For a whole docstring, `help(...)` in a notebook.", "",
             "## The pages", "", "| page | what |", "| --- | --- |"]
    for page, name in api_pages(package):
        intro = docstring_markdown(first_paragraph(_import(name))).replace("|", "\\|")
        lines.append(f"| [{name}]({page}) | {intro} |")
    entries = entry_points(package)
    if entries:
        lines += ["", "## Entry points", "", "Modules that only run a command (`python -m NAME`):", ""]
        lines += [f"- `{name}`: {docstring_markdown(first_paragraph(_import(name)))}" for name in entries]
    lines += ["", "## Names on sg", ""]
    lines += _entries(root, "###")
    return "\n".join(lines).rstrip() + "\n"
