"""The ground floor: where code runs and how (device, precision, quick mode, seeds, progress bars, noise).

Nothing here imports from the rest of the package; every other module may import from here.
``sg.quick``, ``sg.device``, ``sg.precision``, ``sg.seed_everything`` are re-exported by the package root.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__version__ = "0.1.0"


def _quick_from_env() -> bool:
    value = os.environ.get("SCOREGEN_QUICK", "0").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"SCOREGEN_QUICK={value!r} is not understood; set it to 1 (quick mode) or 0 (full mode)."
    )


#: True when the environment variable ``SCOREGEN_QUICK=1`` is set: every training
#: and sampling loop in the notebooks shrinks so the course runs in minutes on a CPU.
QUICK: bool = _quick_from_env()


def quick(quick_value, full_value):
    """Return ``quick_value`` in quick mode (``SCOREGEN_QUICK=1``), else ``full_value``.

    Used in notebooks as ``n_steps = sg.quick(200, 10_000)`` so the two sizes sit
    side by side in one visible line.
    """
    return quick_value if QUICK else full_value


def device() -> torch.device:
    """The GPU when one is present (CUDA, then Apple MPS), else the CPU.

    Code that uses ``sg.device()`` runs unchanged on a laptop and on a GPU box.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device=None) -> str:
    """The device in words, for manifests and result files: the GPU's name, or the CPU with its cores
    and torch threads (the numbers a CPU timing depends on)."""
    dev = torch.device(device) if device is not None else globals()["device"]()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "cpu":
        return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return str(dev)


def precision(device=None, requested: str = "auto") -> tuple[torch.dtype, str]:
    """The compute precision for training and sampling on ``device``: (dtype, a sentence saying why).

    ``requested="auto"`` picks by capability: bfloat16 autocast on CUDA GPUs that support it
    (Ampere and newer), float16 autocast with a gradient scaler on older CUDA GPUs (a T4 in a hosted
    notebook), float32 on Apple MPS and on the CPU (where reduced precision is slower, not faster).
    ``"bf16"``, ``"fp16"`` or ``"fp32"`` force a choice (float16 is refused on the CPU before any work).
    Introduced in notebooks/07_mnist_score_sde.ipynb; used by ``sg.image_training.train_images`` and
    ``sg.samplers.sample_batched``.
    """
    choices = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if requested not in choices:
        raise ValueError(f"precision={requested!r} is not one of {sorted(choices)}; use 'auto' to choose by device.")
    dev = torch.device(device) if device is not None else globals()["device"]()
    if requested != "auto":
        if requested == "fp16" and dev.type == "cpu":
            raise ValueError("precision='fp16' is not supported on the CPU; use 'auto', 'fp32' or 'bf16'.")
        return choices[requested], f"{requested} (requested)"
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        if major >= 8 and torch.cuda.is_bf16_supported():
            return torch.bfloat16, f"bf16 autocast (CUDA compute capability {major}.{minor} supports bfloat16)"
        return torch.float16, (f"fp16 autocast with a gradient scaler (CUDA compute capability {major}.{minor} has "
                               f"no fast bfloat16)")
    if dev.type == "mps":
        return torch.float32, "fp32 (Apple MPS: autocast is not used)"
    return torch.float32, "fp32 (CPU)"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python ``random``, numpy and torch (CPU and CUDA); return a seeded CPU generator.

    Every notebook calls this once in its setup cell so its numbers are reproducible.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed={seed!r} must be an int, e.g. seed_everything(0).")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def progress_steps(n_steps: int, progress: bool, desc: str):
    """range(n_steps), with a tqdm bar when ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(range(n_steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)


def randn_like(x, generator):
    """Standard normal noise of x's shape, device and dtype, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
