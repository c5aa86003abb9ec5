"""Command line: ``python -m scoregen_lite train-mnist | sample | evaluate | inpaint | ship`` (also ``scoregen-lite ...``).

Headless runs on a remote GPU write a checkpoint, PNG grids, .npy samples and JSON metrics that the
notebook (07) loads. Quick mode (``--quick`` or ``SCOREGEN_QUICK=1``) trains the tiny CPU model.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..core.recipes import RECIPES
from ..core.registry import SAMPLERS
from .checkpoints import SHIPPED


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoregen_lite", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-mnist", help="train a ScoreUNet on MNIST (resumes an existing checkpoint)")
    t.add_argument("--out", default="runs/mnist", help="folder for checkpoint.pt and train.json")
    t.add_argument("--quick", action="store_true", help="the tiny CPU model (also with SCOREGEN_QUICK=1)")
    t.add_argument("--cpu", action="store_true", help="the CPU recipe: recognisable digits in 10 minutes on a laptop")
    t.add_argument("--conditional", action="store_true",
                   help="class-conditional network (label dropout 0.1, for classifier-free guidance)")
    t.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], help="default: chosen by the device")
    t.add_argument("--recipe", choices=sorted(RECIPES),
                   help="training recipe of sg.recipes.RECIPES (notebook 10); default: the config's own")
    t.add_argument("--steps", type=int, help="number of training steps")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="default: 1e-4 * sqrt(batch_size / 32)")
    t.add_argument("--time-budget", type=float, help="stop after this many seconds")
    t.add_argument("--no-compile", action="store_true", help="train eagerly (no torch.compile)")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    t.add_argument("--init-from", help="fine-tune: start from this checkpoint's EMA weights (e.g. "
                                       "checkpoints/mnist_ve.pt), with a fresh optimizer")
    t.add_argument("--ema-decay", type=float, help="decay of the weight EMA (default: the config's, 0.999)")
    t.add_argument("--sigma-data", type=float,
                   help="EDM's sigma_data, the data's std that the preconditioning assumes (default: the config's, 0.5, "
                        "EDM's value for images in [-1, 1]; benchmarks/sigma_data_cpu.py)")
    t.add_argument("--p-mean", type=float,
                   help="mean of ln sigma for log-normal noise levels (default: the config's, -1.2, EDM's value for "
                        "images in [-1, 1]; benchmarks/sigma_data_cpu.py)")
    t.add_argument("--limit", type=int, help="use only the first N training digits")
    t.add_argument("--root", help="folder with the MNIST IDX files (default $SCOREGEN_DATA/mnist)")
    t.add_argument("--device")

    for name, helptext in (("sample", "draw samples from a checkpoint"), ("evaluate", "sample and measure")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--checkpoint", default="runs/mnist/checkpoint.pt")
        s.add_argument("--out", default="runs/mnist", help="folder for samples.npy, samples.png (and metrics.json)")
        s.add_argument("--n", type=int, default=64 if name == "sample" else 10_000)
        s.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                       help="default: the checkpoint's own (flow-heun for the flow recipe, else em); "
                            + "; ".join(f"{k}: {v.summary}" for k, v in SAMPLERS.items()))
        s.add_argument("--steps", type=int, help="default: " + ", ".join(
            f"{v.default_steps} ({k}: {v.evaluations()} evaluations)" for k, v in SAMPLERS.items()
            if v.default_steps is not None))
        s.add_argument("--rho", type=float, default=7.0, help="edm/dpm: the Karras schedule's rho")
        s.add_argument("--churn", type=float, default=0.0, help="edm: EDM's S_churn (0: deterministic)")
        s.add_argument("--batch-size", type=int)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device")
        s.add_argument("--label", type=int, help="the digit to draw (class-conditional checkpoints)")
        s.add_argument("--guidance", type=float, default=1.0,
                       help="classifier-free guidance scale with --label (1: conditional, >1: guided)")
        if name == "evaluate":
            s.add_argument("--root", help="folder with the MNIST IDX files")
            s.add_argument("--n-likelihood", type=int, default=64)
    ip = sub.add_parser("inpaint", help="complete held-out digits from part of them (replacement or RePaint)")
    ip.add_argument("--checkpoint", help="default: the shipped mnist_ve (or your run, see find_checkpoint)")
    ip.add_argument("--mask", choices=["top", "bottom", "left", "right", "centre", "random"], default="top",
                    help="the part of each digit that is shown")
    ip.add_argument("--n", type=int, default=16, help="held-out digits to complete")
    ip.add_argument("--steps", type=int, default=100)
    ip.add_argument("--sampler", choices=[k for k, v in SAMPLERS.items() if v.stepwise], default="em",
                    help="the reverse-SDE sampler that takes one step at a time (sg.samplers.reverse_step)")
    ip.add_argument("--resample", type=int, default=1, help="RePaint resamplings per step (1: plain replacement)")
    ip.add_argument("--seed", type=int, default=0)
    ip.add_argument("--out", default="runs/inpaint", help="folder for inpainted.npy and inpainted.png")
    ip.add_argument("--root", help="folder with the MNIST IDX files")
    ip.add_argument("--device")
    sh = sub.add_parser("ship", help="store a run's EMA weights in checkpoints/NAME.pt (float16) and evaluate it "
                                     "into checkpoints/NAME.json")
    sh.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt")
    sh.add_argument("--name", required=True,
                    help="one of sg.mnist.SHIPPED: " + ", ".join(SHIPPED))
    sh.add_argument("--n", type=int, default=2000, help="samples for the Frechet distance")
    sh.add_argument("--steps", type=int, help="steps of the checkpoint's own sampler (default: Euler-Maruyama 500; "
                                               "a flow-matching model: the flow's Heun, 10 steps = 19 evaluations)")
    sh.add_argument("--root", help="folder with the MNIST IDX files")
    sh.add_argument("--device")
    sh.add_argument("--note", help="how the run went, in words, stored in the manifest")
    sc = sub.add_parser("ship-classifier", help="train notebook 09's noisy classifier and ship it in "
                                               "checkpoints/noisy_classifier.pt with its manifest")
    sc.add_argument("--steps", type=int, default=2000, help="training steps (notebook 09 asks for 2,000)")
    sc.add_argument("--root", help="folder with the MNIST IDX files")
    sc.add_argument("--device")
    return p


def _with_default_sampler(args):
    """The checkpoint of ``sample``/``evaluate`` loaded once (``ScoreModel``), with ``args.sampler`` and
    ``args.steps`` filled in from it when not given: the flow's ODE (flow-heun, 10 steps: 19 evaluations) for a
    model trained with the "flow" recipe (notebook 11), else Euler-Maruyama; steps: the sampler's default."""
    from .checkpoints import ScoreModel, default_sampler

    model = ScoreModel.load(args.checkpoint, device=args.device)
    args.sampler = args.sampler or default_sampler(model.config)
    if args.steps is None:
        args.steps = SAMPLERS[args.sampler].default_steps
    return model


def main(argv=None) -> int:
    """Entry point of ``python -m scoregen_lite`` and the ``scoregen-lite`` console script."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(raw)
    from ..runtime import QUICK
    from . import mnist
    from .data import MNISTNotFound

    try:
        if args.command == "train-mnist":
            if args.sigma_data is not None and not (math.isfinite(args.sigma_data) and args.sigma_data > 0):
                raise ValueError(f"--sigma-data {args.sigma_data} is invalid: expected the data's std, a positive "
                                 f"number (0.5 is EDM's for images in [-1, 1]; the course's digits in [0, 1]: about 0.31).")
            if args.p_mean is not None and not math.isfinite(args.p_mean):
                raise ValueError(f"--p-mean {args.p_mean} is invalid: expected a finite mean of ln sigma (e.g. -1.2).")
            config = mnist.config_for(args.quick or QUICK, cpu=args.cpu, conditional=args.conditional,
                                      n_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                      time_budget_s=args.time_budget, compile=False if args.no_compile else None,
                                      precision=args.precision, ema_decay=args.ema_decay,
                                      sigma_data=args.sigma_data, p_mean=args.p_mean)
            if args.recipe:
                config = config.with_recipe(args.recipe)
            command = "python -m scoregen_lite " + " ".join(raw)
            _, _, info = mnist.train_model(args.out, config, root=args.root, device=args.device,
                                           resume=not args.no_resume, limit=args.limit, command=command,
                                           init=args.init_from)
            print(f"trained {info['steps']} steps in {info['seconds']:.1f} s ({info['images_per_s']:,.0f} images/s); "
                  f"checkpoint: {Path(args.out) / 'checkpoint.pt'}")
        elif args.command == "sample":
            model = _with_default_sampler(args)
            x, nfe, seconds = mnist.sample_model(model, args.n, sampler=args.sampler, n_steps=args.steps,
                                                 batch_size=args.batch_size, seed=args.seed, device=args.device,
                                                 out_dir=args.out, label=args.label, rho=args.rho, churn=args.churn,
                                                 guidance=args.guidance)
            print(f"{len(x)} samples ({args.sampler}, {nfe} evaluations) in {seconds:.1f} s -> {Path(args.out) / 'samples.png'}")
        elif args.command == "inpaint":
            model = mnist.pretrained("mnist_ve", device=args.device) if args.checkpoint is None else args.checkpoint
            r = mnist.inpaint_model(model, args.mask, n=args.n, n_steps=args.steps, sampler=args.sampler,
                                    resample=args.resample, seed=args.seed, root=args.root, device=args.device,
                                    out_dir=args.out)
            method = "replacement" if args.resample == 1 else f"RePaint x{args.resample}"
            print(f"{r['n']} held-out digits, {args.mask} shown, {method} ({r['nfe']} evaluations) in {r['seconds']:.1f} s: "
                  f"{r['accuracy_as_original']:.0%} classified as the original digit -> {Path(args.out) / 'inpainted.png'}")
        elif args.command == "ship-classifier":
            from .guidance import ship_noisy_classifier

            info = ship_noisy_classifier(n_steps=args.steps, root=args.root, device=args.device,
                                         command="python -m scoregen_lite " + " ".join(raw))
            print(json.dumps(info, indent=2))
        elif args.command == "ship":
            info = mnist.ship(args.checkpoint, args.name, n=args.n, n_steps=args.steps, root=args.root,
                              device=args.device, note=args.note)
            print(json.dumps({k: v for k, v in info.items() if k != "metrics"}, indent=2))
            print(json.dumps({k: v for k, v in info["metrics"].items() if "histogram" not in k or k == "histogram_ok"},
                             indent=2))
        else:
            model = _with_default_sampler(args)
            result = mnist.evaluate_model(model, n=args.n, sampler=args.sampler, n_steps=args.steps,
                                          root=args.root, device=args.device, batch_size=args.batch_size,
                                          n_likelihood=args.n_likelihood, out_dir=args.out, seed=args.seed,
                                          label=args.label, rho=args.rho, churn=args.churn, guidance=args.guidance)
            print(json.dumps({k: v for k, v in result.items() if "histogram" not in k or k == "histogram_ok"}, indent=2))
    except (MNISTNotFound, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
