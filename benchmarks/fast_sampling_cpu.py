"""Fast sampling on a laptop CPU (notebook 08): every sampler of the course on the shipped checkpoint
``mnist_ve``, the same number of samples each, scored on held-out digits.

For each sampler: score evaluations per sample (NFE), wall time for ``--n-samples`` digits (batches of
``--batch-size``) and per 1,000, and the Frechet distance of the samples to the held-out digits on the
package's classifier features (the same for every row, so rows compare; the held-out digits were never
trained on). The reference row is Euler-Maruyama with 500 steps, the sampler of notebook 07; the
claim checked is that EDM's Heun sampler with churn at 18 levels (35 NFE) is within 10 % of its
Frechet distance (or better) in a fraction of its time. Prints a table and writes JSON.

    python benchmarks/fast_sampling_cpu.py --out benchmarks/results/fast_sampling_cpu_run1.json   # ~6 min, 2 cores
    python benchmarks/fast_sampling_cpu.py --tiny --out /tmp/fast.json                            # smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402

#: (sampler name, sampler, n_steps, extra keyword arguments)
SAMPLERS = [
    ("Euler-Maruyama", "em", 500, {}),
    ("Euler-Maruyama", "em", 100, {}),
    ("predictor-corrector", "pc", 250, {}),
    ("probability-flow ODE, RK45", "ode", 0, dict(rtol=1e-3, atol=1e-3)),
    ("EDM Heun", "edm", 18, {}),
    ("EDM Heun", "edm", 18, dict(churn=40.0)),
    ("DPM-Solver++(2M)", "dpm", 20, {}),
]


def label(name, sampler, n_steps, kwargs) -> str:
    """The row's name: sampler, steps or levels, and its options."""
    what = {"em": f"{n_steps} steps", "pc": f"{n_steps} steps", "ode": f"rtol {kwargs.get('rtol')}",
            "edm": f"{n_steps} levels", "dpm": f"{n_steps} levels"}[sampler]
    extra = f", churn {kwargs['churn']:g}" if kwargs.get("churn") else (" (deterministic)" if sampler == "edm" else "")
    return f"{name}, {what}{extra}"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/fast_sampling_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="64 samples, EM and PC with a tenth of the steps: a smoke run "
                                                       "(no claims)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    device = sg.device()
    split = sg.data.mnist_split(root=args.root, download=False)
    classifier = sg.metrics.mnist_classifier(split.x_train, split.y_train, device=device)
    checkpoint = sg.mnist.find_checkpoint("mnist_ve")
    net, sde, _ = sg.train.load_score_model(checkpoint, device=device)
    n = 64 if args.tiny else args.n_samples
    rows = []
    results = {"device": sg.device_name(device), "torch": torch.__version__, "checkpoint": checkpoint.name,
               "checkpoint_sha256": sg.mnist.sha256(checkpoint),
               "n_samples": n, "heldout": split.heldout, "n_heldout": len(split.x_held), "args": vars(args),
               "frechet_real": sg.metrics.evaluate_images(split.x_train[:n], split.x_held, classifier)["frechet"],
               "rows": rows}
    for name, sampler, n_steps, kwargs in SAMPLERS:
        if args.tiny and sampler in ("em", "pc"):
            n_steps = n_steps // 10
        row_label = label(name, sampler, n_steps, kwargs)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        x, nfe, seconds = sg.samplers.sample_batched(net, sde, n, sampler=sampler, n_steps=n_steps or 1,
                                                     batch_size=args.batch_size, generator=gen, device=device,
                                                     **kwargs)
        frechet = sg.metrics.evaluate_images(x.clamp(0, 1), split.x_held, classifier)["frechet"]
        rows.append({"label": row_label, "sampler": sampler, "n_steps": n_steps, **kwargs, "nfe": nfe,
                     "seconds": seconds, "seconds_per_1000": 1000 * seconds / n, "frechet": frechet})
        print(f"{row_label:<44} NFE {nfe:5d}  {seconds:7.1f} s  Frechet {frechet:6.1f}", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    em = rows[0]
    edm = next(r for r in rows if r["sampler"] == "edm" and r.get("churn"))
    results["claim"] = {"frechet_ratio_edm_churn_to_em500": edm["frechet"] / em["frechet"],
                        "speedup_edm_churn_vs_em500": em["seconds"] / edm["seconds"],
                        "within_10_percent": edm["frechet"] <= 1.1 * em["frechet"] and edm["nfe"] <= 40}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{n} samples on {results['device']}; held-out digits vs training digits: Frechet "
          f"{results['frechet_real']:.1f}")
    print(f"EDM Heun + churn (35 NFE) / EM-500: Frechet ratio {results['claim']['frechet_ratio_edm_churn_to_em500']:.2f}, "
          f"{results['claim']['speedup_edm_churn_vs_em500']:.1f}x faster")
    return 0 if (args.tiny or results["claim"]["within_10_percent"]) else 1


if __name__ == "__main__":
    sys.exit(main())
