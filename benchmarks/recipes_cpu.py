"""Training recipes at equal CPU time (notebook 10): each recipe of ``sg.recipes.RECIPES`` trains the same
network (the CPU recipe's half-width U-Net, ``sg.image_training.CPU``) from the same seed for the same wall-clock
budget on this machine's CPU, then is measured on the held-out digits:

* Frechet distance (the package's classifier) of ``--n-samples`` (2,000) samples against the held-out
  digits, for Euler-Maruyama with 500 steps, EDM's Heun on 18 levels (35 evaluations) deterministic, and
  the same with churn 40 (Karras et al. 2022, Algorithm 2);
* bits/dim of ``--n-likelihood`` held-out digits through the probability-flow ODE, beside the floor that
  the smallest noise level allows (``sg.recipes.bits_floor``);
* training images/s and steps in the budget.

Prints a table and writes JSON (rendered by ``sg.results.recipes_table`` in the README and notebook 10).

    python benchmarks/recipes_cpu.py --out benchmarks/results/recipes_cpu_run1.json   # ~15 min per recipe
    python benchmarks/recipes_cpu.py --tiny --out /tmp/recipes.json                    # smoke run, a minute
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402
from scoregen_lite import mnist as sg_mnist  # noqa: E402

#: The samplers every recipe is measured with: name -> sample_batched keywords.
SAMPLERS = {
    "EM-500": dict(sampler="em", n_steps=500),
    "Heun-18": dict(sampler="edm", n_steps=18, churn=0.0),
    "Heun-18 churn 40": dict(sampler="edm", n_steps=18, churn=40.0),
}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/recipes_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--recipes", default=",".join(sg.recipes.RECIPES), help="comma-separated names of RECIPES")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per recipe")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--n-likelihood", type=int, default=64)
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for a smoke run (no claims)")
    return p.parse_args(argv)


def measure(model, split, classifier, n_samples, n_likelihood, tiny, log=print) -> dict:
    """Frechet distance per sampler against the held-out digits, and held-out bits/dim with its floor at the noise
    std of the model's t_min (stored as "sigma_min", the key the committed results use)."""
    out = {}
    for name, kw in SAMPLERS.items():
        if tiny:
            kw = {**kw, "n_steps": min(kw["n_steps"], 5)}
        x, nfe, seconds = model.sample(n_samples, batch_size=500, device="cpu",
                                       generator=torch.Generator().manual_seed(0), **kw)
        q = sg.evaluation.evaluate_images(x.clamp(0, 1), split.x_held, classifier)
        out[name] = {"frechet": q["frechet"], "nfe": nfe, "seconds": seconds, "histogram": q["histogram"],
                     "max_histogram_gap": q["max_histogram_gap"]}
        log(f"  {name:<18} FD {q['frechet']:7.2f}  ({nfe} NFE, {seconds:.0f} s)")
    start = time.perf_counter()
    out["bits_per_dim"] = sg_mnist.bits_per_dim(model, split.x_held[:n_likelihood], device="cpu",
                                                generator=torch.Generator().manual_seed(0),
                                                rtol=1e-3 if tiny else 1e-5, atol=1e-3 if tiny else 1e-5)
    out["likelihood_seconds"] = time.perf_counter() - start
    out["bits_floor"] = sg.recipes.bits_floor(model.sigma_t_min)
    out["sigma_min"] = model.sigma_t_min
    log(f"  bits/dim {out['bits_per_dim']:.2f} (floor at sigma_t_min {model.sigma_t_min:.4f}: {out['bits_floor']:.2f})")
    return out


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    split = sg.data.mnist_split(root=args.root, download=False)
    names = [r.strip() for r in args.recipes.split(",") if r.strip()]
    for r in names:
        if r not in sg.recipes.RECIPES:
            raise SystemExit(f"error: recipe {r!r} is unknown; expected some of {sorted(sg.recipes.RECIPES)}")
    base = replace(sg.image_training.CPU, time_budget_s=args.budget)
    n_samples, n_like = args.n_samples, args.n_likelihood
    if args.tiny:
        base = replace(base, channels=(8, 16, 32, 64), embed_dim=32, n_steps=20, time_budget_s=None)
        n_samples, n_like = 64, 4
    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device="cpu")
    res = {"device": f"{sg.device_name(torch.device('cpu'))}, torch {torch.__version__}",
           "command": "python benchmarks/recipes_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "heldout": split.heldout, "n_train": len(split.x_train), "n_heldout": len(split.x_held),
           "n_samples": n_samples, "budget_s": base.time_budget_s, "tiny": args.tiny,
           "frechet_train_vs_heldout": sg.evaluation.evaluate_images(split.x_train[:2000], split.x_held,
                                                                  classifier)["frechet"],
           "recipes": {}}
    for name in names:
        config = base.with_recipe(name)
        print(f"{name}: {sg.recipes.RECIPES[name]}, {config.time_budget_s} s of training", flush=True)
        net, ema, info = sg.image_training.train_images(split.x_train, config, device="cpu", progress=False, log=print)
        if ema is not None:
            ema.copy_to(net)
        net.eval().requires_grad_(False)
        row = {"recipe": dict(zip(("precond", "noise", "weighting"), sg.recipes.RECIPES[name])),
               "config": {**asdict(config), "lr": config.learning_rate()},
               "train": {"steps": info["steps"], "seconds": info["seconds"], "images_per_s": info["images_per_s"],
                         "final_loss": sum(info["losses"][-200:]) / max(1, len(info["losses"][-200:]))}}
        model = sg.checkpoints.ScoreModel(net, sg.image_training.make_sde(config), config)   # with its trained range
        row.update(measure(model, split, classifier, n_samples, n_like, args.tiny))
        res["recipes"][name] = row
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")   # after every recipe: a partial run still has its rows
    print()
    print(sg.results.recipes_table(res))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
