"""The package's layout is part of what the course teaches, so it is checked like the maths.

The folders are floors: the ground floor (runtime, artifacts, validate) imports nothing of the package; core/
(the science, on 2D mixtures) imports only the ground floor; images/ (MNIST) imports core and the ground floor;
widgets/ and exercises/ import those below; courseware/ (teacher and website tools) may import anything below it.
No import climbs a floor, none crosses between widgets/ and exercises/, there is no import circle, no module
imports a private (``_name``) helper of another, every module is documented and none is past ~450 lines.
"""
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import scoregen_lite

PKG = Path(scoregen_lite.__file__).resolve().parent
FLOORS = {"runtime": 0, "artifacts": 0, "validate": 0, "core": 1, "images": 2, "widgets": 3, "exercises": 3,
          "courseware": 4}
ENTRY = {"scoregen_lite", "scoregen_lite.__main__", "scoregen_lite.nbclean"}   # doors at the top, import downwards
MAX_LINES = 460


def modules():
    """(dotted name, path) of every module of the package."""
    out = []
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, f))
    return out


def imports_of(name, path):
    """Every package module ``name`` imports (top-level and function-local), with the names it takes."""
    is_pkg = path.name == "__init__.py"
    pkg = name if is_pkg else name.rpartition(".")[0]
    known = {n for n, _ in modules()}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("scoregen_lite"):
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None) if sub in known else (target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("scoregen_lite")]
    return found


def floor(name):
    parts = name.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_the_floors_cover_every_module():
    for name, _ in modules():
        assert name in ENTRY or floor(name) is not None, f"{name} is on no floor: add it to FLOORS or move it"


def test_no_import_climbs_a_floor_or_crosses_sideways():
    bad = []
    for name, path in modules():
        if name in ENTRY:
            continue
        here = floor(name)
        for target, what in imports_of(name, path):
            if target == "scoregen_lite":
                bad.append(f"{name} imports {what} from the package root; import it from its module "
                           f"(e.g. from ..runtime import device)")
                continue
            there = floor(target)
            top_here, top_there = name.split(".")[1], target.split(".")[1]
            if there is None or there > here or (there == here and top_here != top_there):
                bad.append(f"{name} (floor {here}) imports {target} (floor {there})")
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    graph = {name: {t for t, _ in imports_of(name, path) if t != name} for name, path in modules()}
    for name in graph:       # a package's __init__ importing its own modules is not a circle of rooms
        if any(m.startswith(name + ".") for m in graph):
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if not state.get(node):
            visit(node)


def test_no_private_helper_is_imported_across_modules():
    bad = [f"{name} imports {what} from {target}" for name, path in modules() for target, what in imports_of(name, path)
           if what and what.startswith("_") and not what.startswith("__")]
    assert not bad, "\n".join(bad)


def test_no_module_is_past_the_size_of_one_room():
    long = {name: n for name, path in modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (one family each): {long}"


@pytest.mark.parametrize("name", [n for n, _ in modules()])
def test_every_module_documented(name):
    mod = importlib.import_module(name)
    assert mod.__doc__ and len(mod.__doc__.strip()) > 40, f"{name} needs a docstring saying what it holds"
    for attr in getattr(mod, "__all__", []):
        obj = getattr(mod, attr)
        if callable(obj) and getattr(obj, "__module__", name) == name:
            assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_the_notebooks_names_resolve():
    """Every ``sg.<module>.<name>`` a notebook, test or benchmark writes exists (a moved name fails here,
    not in a student's notebook)."""
    import re

    repo = PKG.parent
    files = sorted(repo.glob("notebooks/*.ipynb")) + sorted(repo.glob("benchmarks/*.py"))
    missing = set()
    for f in files:
        text = f.read_text()
        for mod, attr in set(re.findall(r"\bsg\.([a-z_]+)\.([A-Za-z_]\w*)", text)):
            m = getattr(scoregen_lite, mod, None)
            if m is None or not hasattr(m, attr):
                missing.add(f"{f.name}: sg.{mod}.{attr}")
        for mod, names in set(re.findall(r"from (scoregen_lite[\w.]*) import ([\w, ]+)", text)):
            try:
                m = importlib.import_module(mod)
            except ImportError:
                missing.add(f"{f.name}: from {mod} import ...")
                continue
            wanted = [n.split(" as ")[0].strip() for n in names.split(",")]
            missing |= {f"{f.name}: from {mod} import {n}" for n in wanted if n and not hasattr(m, n)}
    assert not missing, sorted(missing)


def test_pkgutil_sees_the_same_modules():
    walked = {m.name for m in pkgutil.walk_packages(scoregen_lite.__path__, "scoregen_lite.")}
    assert walked | {"scoregen_lite"} == {n for n, _ in modules()}
