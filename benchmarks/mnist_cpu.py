"""MNIST on a laptop CPU: the CPU recipe (``train-mnist --cpu``) trained for its 10-minute budget, then
measured, and the time to draw 64 digits from the shipped checkpoint.

Measured: training images/s and steps in the budget; on ``--n-samples`` (2,000) Euler-Maruyama-500
samples, the Frechet distance on the package's classifier (features of a CNN trained on the training
digits, accuracy checked on held-out digits) to the held-out digits the model never trained on, and the
class histogram (within 10 % +- 3 points of the real one). The target, ``TARGET_FRECHET``, is the course's
own (the 10-minute recipe at a Frechet distance <= 20 to the held-out digits); the reference recipe's
distance after its full 50 epochs on a GPU (``h200_run2.json``) is recorded beside it. Prints a table and
writes JSON.

    python benchmarks/mnist_cpu.py --out benchmarks/results/mnist_cpu.json      # about 20 minutes, 2 cores
    python benchmarks/mnist_cpu.py --tiny --out /tmp/cpu.json                   # smoke run, under a minute
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402
from scoregen_lite import mnist as sg_mnist  # noqa: E402

#: The 10-minute CPU recipe's target: Frechet distance to the held-out digits on the package's classifier.
TARGET_FRECHET = 20.0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/mnist_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the CPU recipe's, 600)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--steps", type=int, default=500, help="Euler-Maruyama steps")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for a smoke run (no claims)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cpu")
    split = sg.data.mnist_split(root=args.root, download=False)
    config = sg_mnist.config_for(False, cpu=True)
    if args.budget is not None:
        config = replace(config, time_budget_s=args.budget)
    n_samples, em_steps = args.n_samples, args.steps
    if args.tiny:
        config = replace(config, channels=(8, 16, 32, 64), embed_dim=32, n_steps=20, time_budget_s=None)
        n_samples, em_steps = 64, 10
    gpu = sg.artifacts.results_dir() / "h200_run2.json"
    reference = json.loads(gpu.read_text())["reference"]["em"]["frechet"] if gpu.exists() else None
    target = TARGET_FRECHET
    res = {"device": f"{sg.device_name(device)}, torch {torch.__version__}",
           "command": "python benchmarks/mnist_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "config": {**asdict(config), "lr": config.learning_rate()}, "heldout": split.heldout,
           "n_train": len(split.x_train), "target_frechet": target,
           "target_source": "the course's target for the 10-minute CPU recipe, against the held-out digits",
           "reference_frechet": reference,
           "reference_source": "reference recipe, 50 epochs, H200 (benchmarks/results/h200_run2.json)"}
    print(f"{res['device']}; training the CPU recipe for {config.time_budget_s} s on {len(split.x_train):,} digits",
          flush=True)
    net, ema, info = sg.image_training.train_images(split.x_train, config, device=device, progress=True, log=print)
    res["train"] = {k: info[k] for k in ("steps", "seconds", "images_per_s", "precision")}
    res["train"]["final_loss"] = sum(info["losses"][-200:]) / max(1, len(info["losses"][-200:]))
    if ema is not None:
        ema.copy_to(net)
    net.eval().requires_grad_(False)

    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    res["classifier_heldout_accuracy"] = sg.evaluation.accuracy(classifier, split.x_held, split.y_held)
    gen = torch.Generator().manual_seed(0)
    model = sg.checkpoints.ScoreModel(net, sg.image_training.make_sde(config), config)   # the run, with its range
    samples, nfe, seconds = model.sample(n_samples, sampler="em", n_steps=em_steps, batch_size=500, generator=gen,
                                         device=device, progress=True)
    quality = sg.evaluation.evaluate_images(samples.clamp(0, 1), split.x_held, classifier)
    quality["reference_digits"] = f"held-out {split.heldout} ({len(split.x_held)} digits)"
    hist, ref = torch.tensor(quality["histogram"]), torch.tensor(quality["real_histogram"])
    quality["histogram_ok_3pts"] = sg.evaluation.histogram_ok(hist, ref, rel=0.10, abs_points=0.03)
    quality.update(sampler=f"EM-{nfe}", sampling_seconds=seconds)
    res["quality"] = quality
    # the scale: training digits the model saw against the same held-out digits
    res["frechet_real_heldout"] = sg.evaluation.evaluate_images(split.x_train[:max(n_samples, 1000)], split.x_held,
                                                             classifier)["frechet"]
    if not args.tiny:
        shipped = sg_mnist.pretrained("mnist_ve", device=device, log=print)
        _, nfe64, sec64 = shipped.sample(64, sampler="em", n_steps=em_steps, generator=torch.Generator().manual_seed(0),
                                         device=device)
        res["shipped_64"] = {"seconds": sec64, "sampler": f"EM-{nfe64}", "checkpoint": "checkpoints/mnist_ve.pt"}
    res["meets_target"] = bool(quality["frechet"] <= target and quality["histogram_ok_3pts"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\n{'training images/s':<40}{res['train']['images_per_s']:>12,.0f}")
    print(f"{'steps in the budget':<40}{res['train']['steps']:>12,} ({res['train']['seconds']:.0f} s)")
    print(f"{'Frechet distance, ' + str(n_samples) + ' EM samples':<40}{quality['frechet']:>12.2f}  "
          f"(to held-out digits; target <= {target})")
    print(f"{'histogram within 10 % +- 3 pts':<40}{str(quality['histogram_ok_3pts']):>12}  "
          f"(gap {quality['max_histogram_gap']:.3f})")
    print(f"{'training digits vs held-out digits':<40}{res['frechet_real_heldout']:>12.2f}")
    if "shipped_64" in res:
        print(f"{'64 digits from the shipped checkpoint':<40}{res['shipped_64']['seconds']:>11.1f}s")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
