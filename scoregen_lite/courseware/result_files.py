"""What every results table shares: reading the committed result files of ``benchmarks/results/`` in the order
they were made, and formatting a number that may be missing ("n/a"). Used by ``results``, ``sampling_tables`` and
``training_tables``."""
from __future__ import annotations

import re
from pathlib import Path

from .. import artifacts

__all__ = ["fmt_value", "get_key", "result_files"]


def fmt_value(value, spec: str) -> str:
    """``value`` formatted with ``spec``, or "n/a" when it is missing (None)."""
    if value is None:
        return "n/a"
    return format(value, spec)


def get_key(d, *keys):
    """``d[k1][k2]...`` for ``keys``, or None where a level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def result_files(folder, stem: str, what: str) -> list:
    """The committed ``STEM*.json`` files of ``folder`` (default ``results_dir()``) in the order they were made:
    by the run number that ends the name (run2 before run10), then by name; none is an error naming the
    script (``benchmarks/STEM.py``) that writes them."""
    folder = Path(folder) if folder else artifacts.results_dir()

    def made(path):
        number = re.search(r"\d+$", path.stem)
        return (int(number.group()) if number else -1, path.name)

    paths = sorted(folder.glob(f"{stem}*.json"), key=made)
    if not paths:
        raise FileNotFoundError(f"no {what} results ({stem}*.json) in {folder}; run benchmarks/{stem}.py.")
    return paths
