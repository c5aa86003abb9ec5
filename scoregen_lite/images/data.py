"""MNIST from the official IDX files, with checksum-verified download and a
clear message when the files are missing offline.

Where the files are looked for, in order: the ``root`` argument, then
``$SCOREGEN_DATA/mnist``, then ``~/.cache/scoregen-lite/mnist``. Each file may
be gzip-compressed (``.gz``) or raw. Missing files are downloaded (when
``download=True``) from the official mirrors into that folder and verified
against the official MD5 checksums; a mismatch deletes the file and raises.
Introduced in notebooks/07_mnist_score_sde.ipynb.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import validate

__all__ = ["MNIST_FILES", "MNIST_MIRRORS", "N_HELDOUT", "mnist_dir", "mnist", "mnist_split", "MNISTSplit", "read_idx",
           "MNISTNotFound", "ChecksumError"]

#: split -> (images file, labels file), with the official MD5 checksums of the .gz files.
MNIST_FILES = {
    "train": (("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c")),
}
#: Where the official files are served (tried in order).
MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]


class MNISTNotFound(FileNotFoundError):
    """The MNIST files are not on disk and could not be downloaded; the message says what to do."""


class ChecksumError(ValueError):
    """A downloaded file does not have the official checksum."""


def mnist_dir(root=None) -> Path:
    """The folder MNIST is read from: ``root``, else ``$SCOREGEN_DATA/mnist``, else the cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SCOREGEN_DATA")
    if env:
        return Path(env).expanduser() / "mnist"
    return Path.home() / ".cache" / "scoregen-lite" / "mnist"


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or .gz): magic 0x0803 (images, uint8 (n, rows, cols)) or 0x0801 (labels, uint8 (n,))."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise ValueError(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path} is not an MNIST IDX file (magic {raw[:4].hex()}; expected 00000801 or 00000803).")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {data.size} values; its header announces {dims} = {int(np.prod(dims))}.")
    return data.reshape(dims)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.exists():
            return candidate
    return None


def _download(folder: Path, name: str, md5: str, mirrors) -> Path:
    """Fetch ``name``.gz into ``folder`` (atomically), verify its MD5, return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in mirrors:
        url = f"{base}{name}.gz"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        try:
            with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
            got = _md5(Path(tmp))
            if got != md5:
                raise ChecksumError(f"{url} has MD5 {got}, expected the official {md5}; the file was discarded.")
            final = folder / f"{name}.gz"
            os.replace(tmp, final)
            return final
        except ChecksumError:
            os.unlink(tmp)
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            errors.append(f"{url}: {err}")
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise MNISTNotFound("\n  ".join(["could not download MNIST:"] + errors))


def _missing_message(folder: Path, names, split: str, reason: str) -> str:
    files = ", ".join(f"{n}.gz" for n in names)
    return (
        f"MNIST {split} files not found in {folder} ({reason}).\n"
        f"Place the official files {files} (gzip or unpacked) in that folder, or point SCOREGEN_DATA at a folder "
        f"whose mnist/ subfolder holds them (e.g. export SCOREGEN_DATA=/path/to/data), or run once with internet "
        f"access so they are downloaded from {MNIST_MIRRORS[0]} (MD5-verified)."
    )


def mnist(split: str = "train", root=None, download: bool = True, as_float: bool = True,
          device=None, mirrors=None):
    """MNIST digits and labels.

    Args:
        split: "train" (60,000 official digits; the offline subset in ``../shared/data/mnist``
            holds 10,000) or "test" (10,000).
        root: folder holding the IDX files; default ``$SCOREGEN_DATA/mnist`` or the cache.
        download: fetch missing files from the official mirrors (MD5-verified).
        as_float: return images as float32 of shape (n, 1, 28, 28) scaled to [0, 1]
            (x = pixel / 255); else the raw uint8 (n, 28, 28).
        device: where to put the tensors.

    Returns:
        (images, labels) with labels int64 of shape (n,).

    Raises:
        MNISTNotFound: files missing and not downloadable; the message names the files and the folder.
        ChecksumError: a downloaded file does not match the official checksum.
    """
    validate.choice("split", split, MNIST_FILES)
    folder = mnist_dir(root)
    (img_name, img_md5), (lab_name, lab_md5) = MNIST_FILES[split]
    paths = {}
    for name, md5 in ((img_name, img_md5), (lab_name, lab_md5)):
        found = _find(folder, name)
        if found is None:
            if not download:
                raise MNISTNotFound(_missing_message(folder, [img_name, lab_name], split, "download=False"))
            try:
                found = _download(folder, name, md5, mirrors or MNIST_MIRRORS)
            except MNISTNotFound as err:
                raise MNISTNotFound(_missing_message(folder, [img_name, lab_name], split, "offline?") + "\n" + str(err)) from None
        paths[name] = found
    images, labels = read_idx(paths[img_name]), read_idx(paths[lab_name])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{paths[img_name]} and {paths[lab_name]} do not match: images {images.shape}, labels {labels.shape}.")
    x = torch.from_numpy(images.copy())
    y = torch.from_numpy(labels.astype(np.int64))
    if as_float:
        x = (x.float() / 255.0)[:, None]
    return x.to(device) if device is not None else x, y.to(device) if device is not None else y


#: How many digits of the offline subset (no test files) are held out: its last ``N_HELDOUT``.
N_HELDOUT = 500


class MNISTSplit(NamedTuple):
    """Training digits and held-out digits that no model of the course ever trains on.

    ``heldout`` says which digits are held out: ``"test"`` (the official test files) or
    ``"train[-500:]"`` (the last 500 digits of a training set without test files, e.g. the offline
    subset); training uses ``x_train`` only, so held-out metrics are honest either way.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_held: torch.Tensor
    y_held: torch.Tensor
    heldout: str


def mnist_split(root=None, n_heldout: int = N_HELDOUT, download: bool = True) -> MNISTSplit:
    """The course's one train / held-out split of MNIST (notebook 07 on, the CLI, the benchmarks).

    The official test files are the held-out set when they are on disk, or when the full 60,000-digit
    training set is (then they are downloaded, MD5-checked, if missing). Otherwise (the offline
    subset) the last ``n_heldout`` training digits are held out and removed from the training set.
    Bits/dim, the real-vs-real Frechet scale and the classifier's accuracy are measured on
    ``x_held``; checkpoints record ``heldout`` so that evaluation can refuse to mix them up.
    """
    n_heldout = validate.count("n_heldout", n_heldout)
    x, y = mnist("train", root=root, download=download)
    try:
        xt, yt = mnist("test", root=root, download=download and len(x) == 60_000)
        return MNISTSplit(x, y, xt, yt, "test")
    except MNISTNotFound:
        pass
    if len(x) <= 2 * n_heldout:
        raise ValueError(f"only {len(x)} training digits and no test files: cannot hold out n_heldout={n_heldout} "
                         f"and still train; pass a smaller n_heldout or add the test files to {mnist_dir(root)}.")
    return MNISTSplit(x[:-n_heldout], y[:-n_heldout], x[-n_heldout:], y[-n_heldout:], f"train[-{n_heldout}:]")
