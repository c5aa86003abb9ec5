"""The MNIST score models as files and as one object (notebooks 07-10, the command line, the widgets, evaluation).

- ``ImageConfig``: every setting of a run, its noise range [t_min, 1] (``eps``) included, stored in its checkpoint
  as a plain dict; ``make_sde`` and ``make_unet`` build what it describes.
- ``save_checkpoint`` / ``load_checkpoint``: atomic writes of tensors and numbers only, read back with
  ``torch.load(weights_only=True)`` (no pickled objects, so loading a file runs no code).
- ``ScoreModel``: the network, its SDE, its config and where it came from, loaded once (``ScoreModel.load``) and
  handed to every sampler (``sg.samplers.sample_batched``), the widgets and the evaluation, which read its trained
  noise range from it: ``t_min`` and ``sigma_t_min``, the noise std at t_min.
- The shipped checkpoints (``SHIPPED``, ``checkpoints/NAME.pt`` with the manifest ``NAME.json``): ``manifest``,
  ``verified_path`` (sha256 checked before the file is loaded), ``find_checkpoint``, ``pretrained``.
Introduced in notebooks/07_mnist_score_sde.ipynb.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn

from .. import artifacts

__all__ = ["CheckpointError", "ImageConfig", "make_sde", "make_unet", "config_dict", "save_checkpoint",
           "load_checkpoint", "ScoreModel", "load_score_model", "SHIPPED", "manifest", "verified_path",
           "find_checkpoint", "pretrained", "store_shipped", "default_sampler"]


class CheckpointError(ValueError):
    """A file that is not a (complete) checkpoint of this course: the message says which and what to do."""


@dataclass(frozen=True)
class ImageConfig:
    """Everything that defines an image score-model run (saved in every checkpoint).

    ``lr=None`` applies the square-root scaling rule from the reference point (batch 32,
    lr 1e-4): lr = 1e-4 * sqrt(batch_size / 32). ``n_steps`` bounds the run; ``time_budget_s``
    (if set) stops it earlier, on wall time. ``compile`` applies on CUDA only. ``amp`` turns on
    reduced precision where the device has it, chosen by ``sg.precision`` (bfloat16 on Ampere and
    newer, float16 with a gradient scaler on older CUDA GPUs, float32 on MPS and the CPU);
    ``precision`` forces one ("bf16", "fp16", "fp32"). ``n_classes > 0`` trains a class-conditional
    network (labels required) whose labels are replaced by the null label with probability
    ``label_dropout`` (classifier-free guidance, Ho & Salimans 2022). ``eps``: t_min, the bottom of the
    noise range [t_min, 1] the network trains on (``t_min``). ``precond``, ``noise``,
    ``weighting``, ``sigma_data``, ``p_mean``, ``p_std``: the training recipe (``sg.recipes``, notebook 10;
    the defaults are eq. (8) as before: no preconditioning, t ~ U(eps, 1), lambda = std_t^2).
    """

    def with_recipe(self, name: str) -> "ImageConfig":
        """This config with a named recipe of ``sg.recipes.RECIPES`` (its precond, noise and weighting)."""
        from ..core.recipes import RECIPES

        if name not in RECIPES:
            raise ValueError(f"recipe={name!r} is unknown; expected one of {sorted(RECIPES)}.")
        precond, noise, weighting = RECIPES[name]
        return replace(self, precond=precond, noise=noise, weighting=weighting)

    sde_sigma: float = 25.0                 # VE SDE of Song's tutorial, dx = sigma^t dw
    channels: tuple = (32, 64, 128, 256)
    embed_dim: int = 256
    batch_size: int = 512
    lr: float | None = None
    warmup_steps: int = 100
    n_steps: int = 20_000
    time_budget_s: float | None = None
    ema_decay: float | None = 0.999
    grad_clip: float | None = 1.0
    eps: float = 1e-5
    compile: bool = True
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 1000
    n_classes: int = 0
    label_dropout: float = 0.1
    precision: str = "auto"
    # the training recipe (sg.recipes, notebook 10): preconditioning, noise levels, loss weighting
    precond: str = "none"
    noise: str = "uniform"
    weighting: str = "sigma2"
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 1e-4 * math.sqrt(self.batch_size / 32)

    @property
    def t_min(self) -> float:
        """The bottom of the noise range [t_min, 1] the network trains on (the field ``eps``)."""
        return self.eps

    @classmethod
    def from_dict(cls, d: dict) -> "ImageConfig":
        """The config a checkpoint stores (``config_dict``); a key this version does not know is an error."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise CheckpointError(f"the checkpoint's config has settings this version does not know: {unknown}; "
                                  f"update scoregen-lite, or retrain with this version.")
        return cls(**{**d, "channels": tuple(d.get("channels", cls.channels))})


def config_dict(config: ImageConfig) -> dict:
    """``config`` as a checkpoint stores it: a plain dict of numbers, strings and lists (``weights_only`` loads it)."""
    return {**asdict(config), "channels": list(config.channels)}


def make_sde(config: ImageConfig):
    """The VE SDE of a config (``VESDE.tutorial(config.sde_sigma)``)."""
    from ..core.sde import VESDE

    return VESDE.tutorial(config.sde_sigma)


def make_unet(config: ImageConfig, sde=None) -> nn.Module:
    """A fresh ``ScoreUNet`` for a config, seeded by ``config.seed``."""
    from .unet import ScoreUNet

    torch.manual_seed(config.seed)
    return ScoreUNet(sde or make_sde(config), channels=tuple(config.channels), embed_dim=config.embed_dim,
                     n_classes=config.n_classes, precond=config.precond, sigma_data=config.sigma_data)


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(value, where: str) -> None:
    """Raise TypeError unless ``value`` is tensors, numbers, strings, None, lists, tuples and dicts of them."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where} is a {type(value).__name__}: a checkpoint holds only tensors, numbers, strings and "
                        f"lists or dicts of them (torch.load(weights_only=True) refuses anything else); store it as "
                        f"a plain value (a config as config_dict(config)).")


def save_checkpoint(path, **state) -> Path:
    """torch.save ``state`` atomically (``sg.artifacts.atomic_save``: an interrupted run never leaves a half-written
    checkpoint). ``state`` must be tensors, numbers, strings, lists and dicts (TypeError otherwise, naming the key),
    so that ``load_checkpoint`` can read it with ``weights_only=True``."""
    _check_plain(state, "state")
    return artifacts.atomic_save(state, path)


def _shipped_name(path: Path) -> str | None:
    """NAME if ``path`` is the shipped ``checkpoints/NAME.pt`` of a ``SHIPPED`` model, else None."""
    if path.suffix == ".pt" and path.stem in SHIPPED and path.exists():
        if path.resolve().parent == artifacts.checkpoints_dir().resolve():
            return path.stem
    return None


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint`` (a dict) with ``torch.load(weights_only=True)``. A shipped
    ``checkpoints/NAME.pt`` is sha256-checked against its manifest first (``ChecksumMismatch``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; train first (python -m scoregen_lite "
                                f"train-mnist --out {path.parent}) or pass another path.")
    if _shipped_name(path):
        verified_path(path.stem)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:   # a text file, a truncated download, another program's file, a pickled object
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{str(path)!r} is not a complete checkpoint of this course ({type(err).__name__}: "
                              f"{first}). Pass a checkpoint.pt written by python -m scoregen_lite train-mnist, or "
                              f"checkpoints/NAME.pt; a truncated file must be copied or trained again.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{str(path)!r} is a torch file but not a checkpoint of this course (it has no model "
                              f"and config); pass a checkpoint.pt written by python -m scoregen_lite train-mnist.")
    return state


@dataclass(eq=False)
class ScoreModel:
    """A trained score model: ``net`` (a ``ScoreUNet``, eval mode, no gradients), the ``sde`` it was trained for,
    its ``config`` (``ImageConfig``, the noise range [t_min, 1] included), and where it came from: ``source`` (the
    file), ``meta`` (what training recorded: held-out digits, number of training digits, command, commit),
    ``step``, ``losses`` and ``info`` (the manifest of a shipped checkpoint, else {}).

    Hand it to the samplers (``sg.samplers.sample_batched(model, None, n)`` or ``model.sample(n)``), the widgets
    and the evaluation: they read its ``t_min`` and never take one by hand. It is also the score function
    ``model(x, t)`` (``model(x, t, y)`` for a class-conditional one). ``net, sde, config = model`` unpacks it.
    Load it once with ``ScoreModel.load(path)`` or ``sg.mnist.pretrained(name)``; build one around a network
    trained here with ``ScoreModel(net, sde, config)``. Introduced in notebooks/07_mnist_score_sde.ipynb."""

    net: nn.Module
    sde: object
    config: ImageConfig
    source: Path | None = None
    meta: dict = field(default_factory=dict)
    step: int | None = None
    losses: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.config, ImageConfig):
            raise TypeError(f"config is a {type(self.config).__name__}; expected an ImageConfig (its t_min is the "
                            f"network's trained noise range).")

    @property
    def t_min(self) -> float:
        """The bottom of the noise range [t_min, 1] the network was trained on (the config's ``eps``)."""
        return self.config.t_min

    @property
    def sigma_t_min(self) -> float:
        """The noise std at ``t_min``: the smallest level the network has seen (notebook 10's sigma_{t_min}; not the
        VE SDE's parameter sigma_min, nor a sampling schedule's last level)."""
        return float(self.sde.sigma_of_t(torch.tensor(self.t_min, dtype=torch.float64)))

    @property
    def n_classes(self) -> int:
        return int(getattr(self.net, "n_classes", 0) or 0)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def __call__(self, x, t, y=None):
        return self.net(x, t) if y is None else self.net(x, t, y)

    def __iter__(self):
        return iter((self.net, self.sde, self.config))

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return (f"ScoreModel({type(self.net).__name__}{where}, t_min={self.t_min:g}, "
                f"sigma_t_min={self.sigma_t_min:.4g}, n_classes={self.n_classes}, step={self.step})")

    def to(self, device) -> "ScoreModel":
        self.net = self.net.to(device)
        return self

    def sample(self, n: int, **kw):
        """``sg.samplers.sample_batched`` on this model (its SDE and noise range): (samples, nfe, seconds)."""
        from ..core.registry import sample_batched

        return sample_batched(self, None, n, **kw)

    @classmethod
    def from_state(cls, state: dict, device=None, *, use_ema: bool = True, source=None, info=None) -> "ScoreModel":
        """The model a loaded checkpoint ``state`` holds, with the EMA weights when present and ``use_ema``."""
        from ..core.train import EMA
        from ..runtime import device as default_device

        config = ImageConfig.from_dict(state["config"])
        sde = make_sde(config)
        net = make_unet(config, sde)
        net.load_state_dict(state["model"])
        if use_ema and state.get("ema") is not None:
            ema = EMA(net, state["ema"]["decay"])
            ema.load_state_dict(state["ema"])
            ema.copy_to(net)
        net = net.to(device or default_device()).eval().requires_grad_(False)
        return cls(net, sde, config, source=Path(source) if source is not None else None, meta=state.get("meta") or {},
                   step=state.get("step"), losses=list(state.get("losses") or []), info=dict(info or {}))

    @classmethod
    def load(cls, path, device=None, *, use_ema: bool = True) -> "ScoreModel":
        """The model of a checkpoint file, read once (``load_checkpoint``: weights only; a shipped file is
        sha256-checked first, and its manifest becomes ``info``)."""
        state = load_checkpoint(path)
        name = _shipped_name(Path(path))
        return cls.from_state(state, device, use_ema=use_ema, source=path, info=manifest(name) if name else None)

    @classmethod
    def of(cls, model_or_path, device=None) -> "ScoreModel":
        """``model_or_path`` itself if it is a ``ScoreModel`` (moved to ``device`` if given), else ``load`` it."""
        if isinstance(model_or_path, cls):
            return model_or_path.to(device) if device is not None else model_or_path
        if isinstance(model_or_path, nn.Module):
            raise TypeError("got a bare network: pass a ScoreModel, which carries the network's SDE and trained noise "
                            "range (sg.mnist.pretrained(name), ScoreModel.load(path) or ScoreModel(net, sde, config)).")
        return cls.load(model_or_path, device)


def load_score_model(path, device=None, use_ema: bool = True) -> ScoreModel:
    """``ScoreModel.load(path, device, use_ema=use_ema)`` (``net, sde, config = load_score_model(...)`` unpacks it)."""
    return ScoreModel.load(path, device, use_ema=use_ema)


# ---------------------------------------------------------------------------
# Shipped checkpoints: small (EMA weights in float16), with a manifest
# ---------------------------------------------------------------------------

#: The checkpoints that ship in ``checkpoints/``, and what each is.
SHIPPED = {
    "mnist_ve": "the notebook-07 model: unconditional ScoreUNet, VE SDE dx = 25^t dw",
    "mnist_cond": "class-conditional ScoreUNet (label embedding, null label, label dropout 0.1) for guidance",
    "mnist_likelihood": "unconditional ScoreUNet trained with the likelihood weighting and importance-sampled t "
                        "(notebook 10's likelihood recipe): the course's best held-out bits/dim",
    "mnist_tiny100": "unconditional ScoreUNet trained on the first 100 training digits only: notebook 10's "
                     "model that memorises its training set",
    "mnist_flow": "unconditional ScoreUNet trained with notebook 11's flow matching loss on the straight path "
                  "(the \"flow\" recipe), drawn with the flow's ODE (Heun, 19 evaluations)",
}


def default_sampler(config: ImageConfig) -> str:
    """The sampler a checkpoint is drawn with when none is named (``python -m scoregen_lite sample``): the flow's
    ODE, "flow-heun", for a model trained with the "flow" recipe (notebook 11), else Euler-Maruyama, "em"."""
    return "flow-heun" if config.weighting == "flow" else "em"


def _check_name(name: str, what: str = "a shipped checkpoint") -> None:
    if name not in SHIPPED:
        raise ValueError(f"name={name!r} is not {what}; expected one of {sorted(SHIPPED)}.")


def manifest(name: str) -> dict:
    """The manifest ``checkpoints/NAME.json`` of a shipped checkpoint (command, commit, device, steps,
    batch, wall time, sha256, held-out metrics). Manifests written before the noise std at t_min was called
    ``sigma_t_min`` have it as "sigma_min": it is read under the new name."""
    _check_name(name)
    path = artifacts.checkpoints_dir() / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the course folder has no shipped checkpoint {name!r}. Train one "
                                f"with python -m scoregen_lite train-mnist (see the README, 'For teachers').")
    info = json.loads(path.read_text())
    metrics = info.get("metrics") or {}
    if "sigma_min" in metrics and "sigma_t_min" not in metrics:
        metrics["sigma_t_min"] = metrics.pop("sigma_min")
    return info


def verified_path(name: str) -> Path:
    """``checkpoints/NAME.pt`` after checking its sha256 against its manifest (``ChecksumMismatch`` if it differs),
    before anything loads it."""
    path = artifacts.checkpoints_dir() / f"{name}.pt"
    return artifacts.verify_sha256(path, manifest(name)["sha256"],
                                   fix=f"Restore it with git checkout, or put your own run in runs/{name}/checkpoint.pt "
                                       f"instead.")


def find_checkpoint(name: str, *, log=print) -> Path:
    """The checkpoint a notebook uses for ``name``, in order: ``$SCOREGEN_RUNS/NAME/checkpoint.pt``, the
    student's own ``runs/NAME/checkpoint.pt`` in the course folder, then the shipped
    ``checkpoints/NAME.pt`` (sha256-checked). Says through ``log`` which one it picked."""
    _check_name(name, "a known model")
    candidates = []
    if os.environ.get("SCOREGEN_RUNS"):
        candidates.append(("$SCOREGEN_RUNS", Path(os.environ["SCOREGEN_RUNS"]).expanduser() / name / "checkpoint.pt"))
    candidates.append(("your own run", artifacts.course_dir() / "runs" / name / "checkpoint.pt"))
    for what, path in candidates:
        if path.exists():
            log(f"using {what}: {path}")
            return path
    path = verified_path(name)
    info = manifest(name)
    log(f"using the shipped checkpoint {path.name} ({info['steps']:,} steps on {info['device']}; sha256 verified)")
    return path


def pretrained(name: str, device=None, *, log=print) -> ScoreModel:
    """The ``ScoreModel`` of a model by name (``SHIPPED``), from the first checkpoint ``find_checkpoint``
    finds; the shipped one is sha256-checked before it is loaded (``ChecksumMismatch`` if it differs from its
    manifest) and carries its manifest as ``info``. Introduced in notebooks/07_mnist_score_sde.ipynb."""
    return ScoreModel.load(find_checkpoint(name, log=log), device=device)


def store_shipped(state: dict, name: str) -> tuple[Path, dict]:
    """Write a run's checkpoint ``state`` as the shipped ``checkpoints/NAME.pt``: its EMA weights (else its last
    ones) in float16, config, step, meta and every n-th loss (at most about 500), at most 3 MB. Returns (the path,
    the small state written), for ``sg.mnist.ship`` to evaluate and describe in the manifest."""
    _check_name(name, "in SHIPPED")
    weights = state["ema"]["shadow"] if state.get("ema") else state["model"]
    small = {"model": {k: v.half() if torch.is_floating_point(v) else v for k, v in weights.items()},
             "ema": None, "config": state["config"], "step": state["step"], "meta": state.get("meta", {}),
             "losses": state["losses"][:: max(1, len(state["losses"]) // 500)]}
    target = save_checkpoint(artifacts.checkpoints_dir() / f"{name}.pt", **small)
    size_mb = target.stat().st_size / 2**20
    if size_mb > 3:
        raise ValueError(f"{target} is {size_mb:.1f} MB; shipped checkpoints stay under 3 MB (use fewer channels).")
    return target, small
