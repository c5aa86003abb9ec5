"""The ground floor for files: the course folder, the cache, sha256, atomic saves, commit ids.

Every module that writes or checks a file (checkpoints, manifests, cached networks, benchmark results)
uses these, so each is written once. Nothing here imports from the rest of the package.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import torch


class ChecksumMismatch(ValueError):
    """A shipped checkpoint's sha256 differs from its manifest (a truncated or replaced file)."""


def course_dir() -> Path:
    """The course folder (the repository: ``notebooks/``, ``checkpoints/``, ``runs/``)."""
    return Path(__file__).resolve().parents[1]


def checkpoints_dir() -> Path:
    """Where the shipped checkpoints and their manifests live (``checkpoints/`` in the course folder)."""
    return course_dir() / "checkpoints"


def commit_id() -> str:
    """``git describe --always --dirty`` of the course folder (what manifests record; "-dirty" when files were
    changed since the last commit), or "unknown"."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=course_dir(),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sha256(path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def results_dir() -> Path:
    """``benchmarks/results`` in the course folder (the committed benchmark runs)."""
    return course_dir() / "benchmarks" / "results"


def atomic_save(obj, path) -> Path:
    """``torch.save(obj)`` atomically: write a temporary file beside ``path``, then rename it, so an
    interrupted run (Ctrl-C, a killed job) never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def verify_sha256(path, want: str, *, fix: str = "") -> Path:
    """``path`` if its sha256 equals ``want`` (checked before the file is loaded), else ``ChecksumMismatch``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; restore it (git checkout {path.name}).")
    got = sha256(path)
    if got != want:
        raise ChecksumMismatch(f"{path} has sha256 {got[:16]}..., its manifest says {want[:16]}...: the file is "
                               f"damaged or was replaced. {fix or 'Restore it with git checkout.'}")
    return path


def cache_dir() -> Path:
    """Where trained helper networks are cached: ``$SCOREGEN_CACHE``, else ``~/.cache/scoregen-lite``."""
    return Path(os.environ.get("SCOREGEN_CACHE", Path.home() / ".cache" / "scoregen-lite")).expanduser()


def cache_path(name: str, images: torch.Tensor, labels: torch.Tensor, settings: str) -> Path:
    """``cache_dir() / f"{name}_{key}.pt"`` with a key hashing every image and label and the ``settings``
    string: two datasets that differ in one digit, or two settings, never share a cache file. Used by
    ``mnist_classifier`` and ``sg.image_guidance.noisy_classifier``."""
    h = hashlib.sha1()
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().contiguous().numpy().tobytes())
    h.update(f"{tuple(images.shape)}-{settings}".encode())
    return cache_dir() / f"{name}_{h.hexdigest()[:16]}.pt"


def save_to_cache(net: torch.nn.Module, path: Path) -> None:
    """Write ``net``'s weights to ``path`` atomically (``atomic_save``): a run killed half-way never leaves a
    truncated cache file."""
    atomic_save(net.state_dict(), path)
