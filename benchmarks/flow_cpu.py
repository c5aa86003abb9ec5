"""Flow matching on MNIST on a laptop CPU (notebook 11): Frechet distance against the number of score (velocity)
evaluations for the flow-matching U-Net ``mnist_flow`` (trained with ``sg.recipes``' "flow" recipe) and the VE
model ``mnist_ve`` sampled as a flow on the same straight path (``sg.flow.velocity_of_sde_model``), both with
Euler and Heun in u = sigma / (1 + sigma) (``sg.samplers``' "flow-euler" and "flow-heun"), beside each model's EDM
Heun-10 and Heun-18 (19 and 35 NFE), deterministic and with churn 40. Every row draws ``--n-samples`` digits from
the same seed and scores them on the package classifier's features against the held-out digits (never trained on);
``mnist_ve``'s Euler-Maruyama 500 steps is read from its manifest (the issue's target: a flow at <= 20 NFE no
worse than it).

Prints a table and writes JSON after every row (a stopped run keeps its rows).

    OMP_NUM_THREADS=2 python benchmarks/flow_cpu.py --out benchmarks/results/flow_cpu_run1.json   # ~11 min, 2 cores
    python benchmarks/flow_cpu.py --tiny --out /tmp/flow.json                                     # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import scoregen_lite as sg  # noqa: E402

#: Evaluations per sample of the plan: Euler N = NFE; Heun N = NFE // 2 steps, 2N - 1 evaluations (the last step Euler)
NFES = (4, 10, 20, 50, 100)


def plan(models, nfes) -> list:
    """(model, sampler, n_steps, kwargs): each model with Euler and Heun at each NFE, then each with EDM's Heun
    (notebook 08) at 10 and 18 levels (19 and 35 NFE), deterministic and with churn 40 (stochastic): which of a
    gap is the network's and which the sampler's."""
    rows = [(m, s, nfe if s == "flow-euler" else nfe // 2, {}) for m in models for s in ("flow-euler", "flow-heun")
            for nfe in nfes]
    return rows + [(m, "edm", n, kw) for m in models for kw in ({}, {"churn": 40.0}) for n in (10, 18)]


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/flow_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--models", default="mnist_flow,mnist_ve", help="shipped models, comma-separated")
    p.add_argument("--nfe", default=",".join(map(str, NFES)), help="evaluations per sample, comma-separated (even)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--note", default="", help="a sentence recorded in the JSON (e.g. who else shared the CPU)")
    p.add_argument("--tiny", action="store_true", help="32 samples at NFE 4: a smoke run (no claims)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    nfes = [4] if args.tiny else [int(v) for v in args.nfe.split(",")]
    bad = [v for v in nfes if v < 2 or v % 2]
    if bad:
        raise SystemExit(f"--nfe {args.nfe}: {bad} cannot be Heun's 2N evaluations; give even numbers >= 2.")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    device = sg.device()
    split = sg.data.mnist_split(root=args.root, download=False)
    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    n = 32 if args.tiny else args.n_samples
    loaded, info = {}, {}
    for name in models:
        path = sg.mnist.find_checkpoint(name)
        loaded[name] = sg.checkpoints.ScoreModel.load(path, device=device)
        man = sg.checkpoints.manifest(name) if path.parent.name == "checkpoints" else {}
        info[name] = {"checkpoint": path.name, "sha256": sg.artifacts.sha256(path), "steps": man.get("steps"),
                      "train_seconds": man.get("seconds"), "recipe": [loaded[name].config.precond,
                                                                      loaded[name].config.noise,
                                                                      loaded[name].config.weighting],
                      "manifest_frechet_heldout": (man.get("metrics") or {}).get("frechet_heldout"),
                      "manifest_sampler": (man.get("metrics") or {}).get("sampler"),
                      "manifest_nfe": (man.get("metrics") or {}).get("nfe")}
    rows = []
    results = {"device": sg.device_name(device), "torch": torch.__version__, "checkpoints": info, "n_samples": n,
               "heldout": split.heldout, "n_heldout": len(split.x_held), "args": vars(args),
               "frechet_real": sg.evaluation.evaluate_images(split.x_train[:n], split.x_held, classifier)["frechet"],
               "note": args.note, "load_average_start": os.getloadavg(), "complete": False, "rows": rows}
    start = time.perf_counter()
    for name, sampler, n_steps, kwargs in plan(models, nfes):
        if args.tiny and sampler == "edm":
            n_steps = 2
        gen = torch.Generator(device=device).manual_seed(args.seed)
        x, nfe, seconds = loaded[name].sample(n, sampler=sampler, n_steps=n_steps, batch_size=args.batch_size,
                                              generator=gen, device=device, **kwargs)
        frechet = sg.evaluation.evaluate_images(x.clamp(0, 1), split.x_held, classifier)["frechet"]
        label = sg.samplers.sampler_label(sampler, n_steps, **kwargs)
        rows.append({"model": name, "label": label, "sampler": sampler, **kwargs, "n_steps": n_steps, "nfe": nfe,
                     "seconds": seconds, "seconds_per_1000": 1000 * seconds / n, "frechet": frechet})
        print(f"{name:<11} {label:<14} NFE {nfe:4d}  {seconds:7.1f} s  Frechet {frechet:6.1f}", flush=True)
        results["wall_seconds"] = time.perf_counter() - start
        results["load_average_end"] = os.getloadavg()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    results["complete"] = True
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{n} samples on {results['device']} in {results['wall_seconds']:.0f} s; held-out digits vs training "
          f"digits: Frechet {results['frechet_real']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
