"""The MNIST pipeline of notebook 07 on, shared by the notebooks, the command line and the benchmarks:
train a ``ScoreUNet`` with eq. (8), sample it with the reverse SDE, measure it on held-out digits, and
ship small checkpoints with a manifest. Sampling, evaluation and inpainting take a ``ScoreModel``
(``sg.checkpoints``; a checkpoint path is loaded once) and read its trained noise range from it.

Data: ``sg.data.mnist_split`` (official IDX files; 60,000 training digits and the test files online,
the 10,000-digit offline subset, whose last 500 digits are held out, in CI). Images are
x = pixel / 255 in [0, 1].

Checkpoints a notebook loads, in order (``find_checkpoint``, ``pretrained``; they live in ``sg.checkpoints`` and
are reachable here too): ``$SCOREGEN_RUNS/NAME/checkpoint.pt``, the student's own ``runs/NAME/checkpoint.pt``
(in the course folder), then the shipped ``checkpoints/NAME.pt`` (sha256-checked against ``checkpoints/NAME.json``
before it is loaded).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from .. import artifacts
from ..core import plot, registry, samplers
from ..runtime import device_name
from . import data as data_mod
from . import evaluation
from . import training as image_training
from .checkpoints import (
    SHIPPED,
    ImageConfig,
    ScoreModel,
    default_sampler,
    find_checkpoint,
    load_checkpoint,
    manifest,
    pretrained,
    store_shipped,
)
from .training import CPU, FAST, QUICK_CPU

__all__ = ["train_model", "sample_model", "evaluate_model", "bits_per_dim", "config_for", "SHIPPED",
           "find_checkpoint", "pretrained", "manifest", "ship", "HeldoutError", "inpaint_model", "SHIP_SAMPLERS",
           "SHIP_GUIDED", "GUIDANCE_SCALE", "guided_metrics", "check_heldout", "sample_digits"]


class HeldoutError(ValueError):
    """Evaluation was asked to report held-out metrics on digits the model trained on."""


def config_for(quick: bool, *, cpu: bool = False, conditional: bool = False, **overrides) -> ImageConfig:
    """``QUICK_CPU`` in quick mode, else ``CPU`` (the 10-minute laptop recipe) when ``cpu``, else ``FAST``
    (the GPU recipe); ``conditional`` makes it class-conditional (10 labels + the null label); keyword
    overrides (None values are ignored)."""
    base = QUICK_CPU if quick else (CPU if cpu else FAST)
    if conditional:
        base = replace(base, n_classes=10)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def train_model(out_dir, config: ImageConfig, *, root=None, device=None, resume: bool = True, progress: bool = True,
                log=print, limit: int | None = None, command: str | None = None, init=None):
    """Train on the training digits of ``sg.data.mnist_split`` (never the held-out ones) and write
    ``out_dir/checkpoint.pt`` and ``out_dir/train.json`` (command, commit, device, steps, batch, time).

    ``limit`` uses only the first ``limit`` training digits (quick mode). ``init``: fine-tune from that
    checkpoint's EMA weights (``sg.image_training.train_images``); its sha256, command, commit and steps are
    recorded as ``init_from`` (from its manifest beside it when there is one), so the chain of commands
    reproduces the result. Returns (net, ema, info)."""
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = data_mod.mnist_split(root=root)
    x, y = split.x_train, split.y_train
    if limit:
        x, y = x[:limit], y[:limit]
    meta = {"heldout": split.heldout, "n_train": len(x), "command": command, "commit": artifacts.commit_id(),
            "device": device_name(device)}
    if init is not None:
        init = Path(init)
        if not init.exists():
            raise FileNotFoundError(f"init={str(init)!r} does not exist; pass a checkpoint to start from "
                                    f"(e.g. checkpoints/mnist_ve.pt).")
        origin = {"path": str(init), "sha256": artifacts.sha256(init)}
        beside = init.with_suffix(".json")
        if beside.exists():
            m = json.loads(beside.read_text())
            origin.update({k: m.get(k) for k in ("command", "commit", "steps", "init_from") if m.get(k) is not None})
        meta["init_from"] = origin
    log(f"training on {len(x):,} digits; held out: {split.heldout} ({len(split.x_held):,} digits)")
    net, ema, info = image_training.train_images(x, config, labels=y if config.n_classes else None,
                                        checkpoint=out / "checkpoint.pt", resume=resume, device=device,
                                        progress=progress, log=log, meta=meta, init=init)
    summary = {k: v for k, v in info.items() if k not in ("losses", "config")}
    summary.update(meta, batch_size=config.batch_size, final_loss=sum(info["losses"][-100:]) / max(1, len(info["losses"][-100:])),
                   parameters=sum(p.numel() for p in net.parameters()))
    (out / "train.json").write_text(json.dumps(summary, indent=2))
    return net, ema, info


def sample_model(model, n: int, *, sampler: str = "em", n_steps: int | None = None, batch_size: int | None = None,
                 seed: int = 0, device=None, use_ema: bool = True, out_dir=None, progress: bool = False,
                 compile: bool = False, timings: dict | None = None, label: int | None = None, rho: float = 7.0,
                 churn: float = 0.0, guidance: float = 1.0, log=print):
    """Draw ``n`` samples of a model (a ``ScoreModel``, or a checkpoint loaded once with ``use_ema``) in its trained
    noise range (``label``: a class-conditional model's digit) with a sampler of ``sg.samplers.SAMPLERS`` (``n_steps``
    None: its default steps; ``rho``, ``churn``: the "edm"/"dpm" schedule and EDM's S_churn, capped at
    sqrt(2) - 1 per level;
    ``guidance``: the classifier-free guidance scale for ``label``, ``sg.guidance.classifier_free_net``);
    with ``out_dir`` write samples.npy and samples.png. ``compile`` compiles the network first on
    CUDA (time reported in ``timings``). Returns (samples in [0, 1] (clamped), nfe, seconds)."""
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    model = model if isinstance(model, ScoreModel) else ScoreModel.load(model, device, use_ema=use_ema)
    return sample_digits(model, n, sampler=sampler, n_steps=n_steps, batch_size=batch_size, seed=seed, device=device,
                         out_dir=out_dir, progress=progress, compile=compile, timings=timings, label=label, rho=rho,
                         churn=churn, guidance=guidance, log=log)


def sample_digits(model: ScoreModel, n: int, *, sampler: str = "em", n_steps: int | None = None,
                  batch_size: int | None = None, seed: int = 0, device=None, out_dir=None, progress: bool = False,
                  compile: bool = False, timings=None, label: int | None = None, rho: float = 7.0, churn: float = 0.0,
                  guidance: float = 1.0, log=None):
    """Sample a loaded ``ScoreModel`` in its trained noise range, with classifier-free guidance for ``label``
    (shared by ``sample_model``, ``evaluate_model`` and ``guided_metrics``). Returns (samples clamped to [0, 1],
    nfe, seconds)."""
    device = torch.device(device) if device is not None else model.device
    gen = torch.Generator(device=device).manual_seed(seed)
    score_fn = model.net   # a class-conditional net called as net(x, t) uses its null label: the unconditional score
    if model.n_classes:
        if label is not None and not 0 <= int(label) < model.n_classes:
            raise ValueError(f"label={label!r} is invalid: expected a digit 0..{model.n_classes - 1}.")
        if label is not None:
            from ..core.guidance import classifier_free_net

            score_fn = classifier_free_net(model.net, int(label), guidance)
    elif label is not None:
        raise ValueError(f"label={label!r} needs a class-conditional checkpoint (e.g. pretrained('mnist_cond')).")
    if guidance != 1.0 and label is None:
        raise ValueError(f"guidance={guidance!r} needs a label (and a class-conditional checkpoint): "
                         f"e.g. --label 7 --guidance 2.0.")
    x, nfe, seconds = samplers.sample_batched(score_fn, model.sde, n, sampler=sampler, n_steps=n_steps,
                                              t_min=model.t_min, rho=rho, churn=churn, batch_size=batch_size,
                                              generator=gen, device=device, progress=progress, compile=compile,
                                              timings=timings, log=log)
    x = x.clamp(0, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        import numpy as np

        np.save(out / "samples.npy", x.numpy())
        plot.save_image_grid(x[:100], out / "samples.png")
    return x, nfe, seconds


def bits_per_dim(model: ScoreModel, images: torch.Tensor, *, generator=None, rtol: float = 1e-5, atol: float = 1e-5,
                 device=None) -> float:
    """Average bits/dim of 8-bit images under the model, through the probability-flow ODE from the model's
    ``t_min`` (the bottom of its trained noise range, where its density is defined).

    Uniform dequantisation: pixels k in {0..255} become x = (k + u) / 256 with u ~ U(0, 1), a density
    on [0, 1)^D; the discrete likelihood is at least p(x) / 256^D, so bits/dim = -log2 p(x) / D + 8
    (the documented offset, log2 256). A model no better than uniform noise on [0, 1)^D scores 8.
    The divergence uses one Hutchinson probe. Use held-out digits (``sg.data.mnist_split``).
    Introduced in notebooks/07_mnist_score_sde.ipynb.
    """
    from ..runtime import device as default_device

    model = ScoreModel.of(model)
    device = torch.device(device) if device is not None else default_device()
    pixels = (images.clamp(0, 1) * 255).round()
    u = torch.rand(pixels.shape, generator=generator)
    x = ((pixels + u) / 256).to(device)
    ll = samplers.log_likelihood(model.sde, model.net, x, rtol=rtol, atol=atol, eps=model.t_min,
                                 divergence="hutchinson", generator=torch.Generator(device=device).manual_seed(0))
    return samplers.bits_per_dim(ll, x[0].numel(), offset=math.log2(256)).mean().item()


def inpaint_model(model, mask: str = "top", *, n: int = 16, n_steps: int = 100, sampler: str = "em",
                  resample: int = 1, seed: int = 0, root=None, device=None, out_dir=None, log=print) -> dict:
    """Complete ``n`` held-out digits of which only the ``mask`` part is shown (``sg.guidance.make_mask``),
    with the replacement method (``resample=1``) or RePaint (``resample`` > 1) down to the end of the model's
    trained noise range (``sg.samplers.end_time``), and say how often the package's classifier reads each
    completion as the original digit. ``model``: a ``ScoreModel`` or a checkpoint (loaded once). With ``out_dir``
    writes inpainted.npy and inpainted.png (rows: originals, what was shown, completions). Returns a dict with
    ``accuracy_as_original``, ``nfe``, ``seconds`` and the ``samples``. The command line's ``inpaint``.
    Introduced in notebooks/09_controllable_generation.ipynb."""
    from ..core import guidance
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    split = data_mod.mnist_split(root=root)
    model = ScoreModel.of(model, device)   # model.net(x, t): unconditional either way
    known, labels = split.x_held[:n].to(device), split.y_held[:n]
    m = guidance.make_mask(mask, generator=torch.Generator().manual_seed(seed)).to(device)
    start = time.perf_counter()
    with torch.no_grad():
        x, nfe = guidance.inpaint(model.sde, model.net, known, m, n_steps, sampler=sampler, resample=resample,
                                  eps=registry.end_time(model.t_min), generator=torch.Generator(device).manual_seed(seed))
    seconds = time.perf_counter() - start
    x = x.clamp(0, 1).cpu()
    classifier = evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    result = {"mask": mask, "n": n, "n_steps": n_steps, "sampler": sampler, "resample": resample, "nfe": nfe,
              "seconds": seconds, "accuracy_as_original": evaluation.accuracy(classifier, x, labels), "samples": x}
    if out_dir is not None:
        import numpy as np

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "inpainted.npy", x.numpy())
        shown = guidance.masked_view(known, m).cpu()
        plot.save_image_grid(torch.cat([known.cpu(), shown, x]), out / "inpainted.png", nrow=n)
    return result


#: The samplers a shipped checkpoint's manifest also reports (Frechet distance to the held-out digits), by their
#: registry labels: "Heun-18" and "Heun-18 churn 40".
SHIP_SAMPLERS = {registry.sampler_label(**kw): kw for kw in (dict(sampler="edm", n_steps=18),
                                                             dict(sampler="edm", n_steps=18, churn=40.0))}
#: What a flow-matching model's manifest measures beside its default Heun-10 (notebook 11): Euler at the same
#: 20 evaluations, and Heun-25 (49 evaluations, near the flow's ODE solution).
SHIP_FLOW_SAMPLERS = {registry.sampler_label(**kw): kw for kw in (dict(sampler="flow-euler", n_steps=20),
                                                                  dict(sampler="flow-heun", n_steps=25))}
#: Notebook 09's classifier-free guidance scale for the shipped conditional model: the smallest scale of
#: ``benchmarks/guidance_cpu.py``'s sweep at which >= 98 % of the digits read as asked (larger scales read
#: even better but look less like real digits: their Frechet distance grows; the table in notebook 09).
GUIDANCE_SCALE = 1.5
#: How a class-conditional checkpoint's manifest measures guidance: notebook 09's scale and sampler, the same
#: number of digits asked for of every class (``guided_metrics``).
SHIP_GUIDED = dict(scale=GUIDANCE_SCALE, sampler="edm", n_steps=18, churn=40.0)


def guided_metrics(model: ScoreModel, classifier, x_held: torch.Tensor, guided: dict, *, n: int = 2000,
                   seed: int = 0, batch_size: int | None = None, device=None) -> dict:
    """How well classifier-free guidance asks a class-conditional ``ScoreModel`` for a digit (notebook 09; the
    manifests' and ``benchmarks/guidance_cpu.py``'s protocol): ``n // 10`` digits asked of each class, digit k
    drawn with seed ``seed + k`` at the guidance scale ``guided["scale"]`` and the sampler keywords beside it
    (e.g. ``SHIP_GUIDED``), in the model's trained noise range. Returns {"guided": {**guided, "n"},
    "guided_accuracy": the share read as asked by ``classifier``, "guided_frechet_heldout": their Frechet distance
    to ``x_held`` on its features, "guided_seconds"}."""
    model = ScoreModel.of(model)
    if not model.n_classes:
        raise ValueError("guided_metrics needs a class-conditional network (trained with --conditional).")
    if "scale" not in guided:
        raise ValueError(f"guided={guided!r} has no 'scale'; pass e.g. sg.mnist.SHIP_GUIDED.")
    device = torch.device(device) if device is not None else model.device
    kw = {k: v for k, v in guided.items() if k != "scale"}
    per = max(1, n // model.n_classes)
    xs, asked, start = [], [], time.perf_counter()
    for label in range(model.n_classes):
        x_k, _, _ = sample_digits(model, per, batch_size=batch_size, seed=seed + label, device=device, label=label,
                                  guidance=float(guided["scale"]), **kw)
        xs.append(x_k)
        asked.append(torch.full((per,), label, dtype=torch.long))
    x_g, y_g = torch.cat(xs), torch.cat(asked)
    return {"guided": {**guided, "n": len(x_g)}, "guided_accuracy": evaluation.accuracy(classifier, x_g, y_g),
            "guided_frechet_heldout": evaluation.evaluate_images(x_g, x_held, classifier)["frechet"],
            "guided_seconds": time.perf_counter() - start}


def check_heldout(checkpoint_meta: dict, split) -> None:
    """Raise ``HeldoutError`` unless the checkpoint was trained with the same held-out digits as ``split``
    (so the held-out metrics are on digits the model never saw)."""
    trained = (checkpoint_meta or {}).get("heldout")
    if trained != split.heldout:
        raise HeldoutError(
            f"the checkpoint was trained with held-out digits {trained!r}, but the data here hold out "
            f"{split.heldout!r}: its training data may contain the digits evaluation would call held-out. "
            f"Evaluate where the same MNIST files are (the offline subset holds out train[-500:], the official "
            f"files hold out the test set), or retrain with python -m scoregen_lite train-mnist.")


def evaluate_model(model, *, n: int = 10_000, sampler: str = "em", n_steps: int | None = None, root=None,
                   device=None, batch_size: int | None = None, n_likelihood: int = 64, out_dir=None, seed: int = 0,
                   classifier_epochs: int = 5, label: int | None = None, last_weights=None, rho: float = 7.0,
                   churn: float = 0.0, guidance: float = 1.0, fast_samplers: dict | None = None,
                   guided: dict | None = None) -> dict:
    """Sample ``n`` digits and measure them on the package's classifier: Frechet distance of the samples
    to training digits, the real-vs-real scale (held-out digits vs training digits), the class histogram,
    the classifier's held-out accuracy, sampling time, and bits/dim of ``n_likelihood`` held-out digits.

    ``model``: a ``ScoreModel`` or a checkpoint, loaded once; every sampler and the likelihood read its trained
    noise range from it. Refuses (``HeldoutError``) a model whose training data may contain the held-out digits.
    ``last_weights``: a run's checkpoint (or its ``ScoreModel`` with the last weights) whose last (non-EMA) weights
    are sampled with the same noise and scored as ``frechet_last_weights`` (what the EMA changes).
    ``frechet_heldout``: the same samples against the held-out digits. ``fast_samplers``: name -> sampler keywords
    (e.g. ``SHIP_SAMPLERS``) also measured against the held-out digits, under ``fast``. ``sigma_t_min``: the noise
    std at the model's t_min; ``bits_floor``: what that smallest noise level alone costs (``sg.recipes.bits_floor``,
    notebook 10). ``memorised_fraction``: the share of the samples that are copies of a digit the model trained on
    (``sg.evaluation.memorised_fraction``, notebook 10). ``guided`` (a class-conditional model; e.g. ``SHIP_GUIDED``):
    ``n // 10`` digits asked of each class with classifier-free guidance at ``guided["scale"]`` and the sampler
    keywords beside it, measured as ``guided_accuracy`` (read as asked by the package's classifier) and
    ``guided_frechet_heldout``. Writes ``metrics.json`` (and the samples) to ``out_dir``.
    Introduced in notebooks/07_mnist_score_sde.ipynb."""
    from ..core.recipes import bits_floor
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    split = data_mod.mnist_split(root=root)
    model = ScoreModel.of(model, device)
    check_heldout(model.meta, split)
    if guided is not None and not model.n_classes:   # before any sampling
        raise ValueError("guided=... needs a class-conditional checkpoint (trained with --conditional).")
    classifier = evaluation.mnist_classifier(split.x_train, split.y_train, epochs=classifier_epochs, device=device)
    samples, nfe, seconds = sample_digits(model, n, sampler=sampler, n_steps=n_steps, batch_size=batch_size,
                                          seed=seed, device=device, out_dir=out_dir, label=label, rho=rho,
                                          churn=churn, guidance=guidance)
    reference = split.x_train[: max(n, 1000)]
    result = evaluation.evaluate_images(samples, reference, classifier)
    result["frechet_heldout"] = evaluation.evaluate_images(samples, split.x_held, classifier)["frechet"]
    n_seen = int(model.meta.get("n_train") or len(split.x_train))
    result["memorised_fraction"] = evaluation.memorised_fraction(samples, split.x_train[:n_seen])
    result["n_train_seen"] = n_seen
    real = evaluation.evaluate_images(split.x_held, reference, classifier)
    if last_weights is not None:
        raw = last_weights if isinstance(last_weights, ScoreModel) else \
            ScoreModel.load(last_weights, device, use_ema=False)
        raw_samples, _, _ = sample_digits(raw.to(device), n, sampler=sampler, n_steps=n_steps, batch_size=batch_size,
                                          seed=seed, device=device, label=label, rho=rho, churn=churn)
        result["frechet_last_weights"] = evaluation.evaluate_images(raw_samples, reference, classifier)["frechet"]
    start = time.perf_counter()
    likelihood = bits_per_dim(model, split.x_held[:n_likelihood], device=device,
                              generator=torch.Generator().manual_seed(seed))
    for name, kw in (fast_samplers or {}).items():   # the same network with other samplers, against held-out digits
        x_fast, nfe_fast, sec_fast = sample_digits(model, n, batch_size=batch_size, seed=seed, device=device,
                                                   label=label, guidance=guidance, **kw)
        result.setdefault("fast", {})[name] = {
            "frechet_heldout": evaluation.evaluate_images(x_fast, split.x_held, classifier)["frechet"], "nfe": nfe_fast,
            "seconds": sec_fast, **kw}
    if guided is not None:
        result.update(guided_metrics(model, classifier, split.x_held, guided, n=n, seed=seed,
                                     batch_size=batch_size, device=device))
    result.update(t_min=model.t_min, sigma_t_min=model.sigma_t_min, bits_floor=bits_floor(model.sigma_t_min))
    result.update(sampler=sampler, nfe=nfe, sampling_seconds=seconds, heldout=split.heldout,
                  frechet_real_heldout=real["frechet"], n_heldout=len(split.x_held),
                  classifier_heldout_accuracy=evaluation.accuracy(classifier, split.x_held, split.y_held),
                  bits_per_dim=likelihood, likelihood_seconds=time.perf_counter() - start,
                  n_likelihood=min(n_likelihood, len(split.x_held)), device=device_name(device))
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------------------
# Shipping a run: the shipped store is sg.checkpoints (SHIPPED, manifest, find_checkpoint, pretrained)
# ---------------------------------------------------------------------------


def ship(checkpoint, name: str, *, n: int = 2000, n_steps: int | None = None, n_likelihood: int = 64, root=None,
         device=None, out_dir=None, note: str | None = None) -> dict:
    """Turn a training run into a shipped checkpoint: EMA weights only, in float16, to
    ``checkpoints/NAME.pt`` (at most 3 MB), then evaluate it on held-out digits with the checkpoint's own sampler
    (``default_sampler``: Euler-Maruyama, ``n_steps`` default 500; a flow-matching model, notebook 11: the flow's
    Heun, ``n_steps`` default 10, i.e. 19 evaluations, with ``SHIP_FLOW_SAMPLERS`` beside it), and
    the run's last (non-EMA) weights on the same noise, and write ``checkpoints/NAME.json``: the training
    command, commit, device, steps, batch, wall time, sha256, the metrics and ``note`` (how the run went,
    in words, e.g. that it was resumed). A run started ``--init-from`` a shipped checkpoint counts that
    checkpoint's steps in ``steps`` (its own in ``steps_this_run``; the chain in ``init_from``). Returns the
    manifest."""
    from ..runtime import device as default_device

    if name not in SHIPPED:
        raise ValueError(f"name={name!r} is not in SHIPPED {sorted(SHIPPED)}; add it there with one line saying what it is.")
    device = torch.device(device) if device is not None else default_device()
    state = load_checkpoint(checkpoint)                 # the run, read once
    target, small = store_shipped(state, name)
    size_mb = target.stat().st_size / 2**20
    shipped = ScoreModel.from_state(small, device, source=target)   # what the file holds, evaluated in memory
    last = ScoreModel.from_state(state, device, use_ema=False, source=checkpoint) if state.get("ema") else None
    run_info = {}
    run_json = Path(checkpoint).with_name("train.json")
    if run_json.exists():
        run_info = json.loads(run_json.read_text())
    sampler = default_sampler(shipped.config)
    flow = sampler != "em"
    if n_steps is None:
        n_steps = registry.SAMPLERS[sampler].default_steps if flow else 500
    result = evaluate_model(shipped, n=n, sampler=sampler, n_steps=n_steps, n_likelihood=n_likelihood, root=root,
                            device=device, out_dir=out_dir, last_weights=last,
                            fast_samplers=SHIP_FLOW_SAMPLERS if flow else SHIP_SAMPLERS,
                            guided=SHIP_GUIDED if state["config"].get("n_classes") else None)
    info = {"name": name, "what": SHIPPED[name], "command": small["meta"].get("command"),
            "commit": small["meta"].get("commit"), "device": small["meta"].get("device"),
            "steps": state["step"] + int((small["meta"].get("init_from") or {}).get("steps") or 0),
            **({"steps_this_run": state["step"]} if small["meta"].get("init_from") else {}),
            "batch_size": state["config"]["batch_size"],
            "seconds": run_info.get("seconds"), "images_per_s": run_info.get("images_per_s"),
            "precision": run_info.get("precision"), "heldout": small["meta"].get("heldout"),
            "n_train": small["meta"].get("n_train"), "stored": "EMA weights, float16", "size_mb": round(size_mb, 3),
            "sha256": artifacts.sha256(target), "note": note,
            **({"init_from": small["meta"]["init_from"]} if small["meta"].get("init_from") else {}),
            "metrics": {k: v for k, v in result.items()}}
    (artifacts.checkpoints_dir() / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
