"""Classifier-free guidance on the shipped class-conditional model: what each guidance scale buys and costs.

For every scale of ``--scales``, ``sg.mnist.guided_metrics`` (the manifests' protocol: ``--n`` // 10 digits asked
of each class, EDM Heun-18 with churn 40, the same seeds at every scale) measures the share of the digits that
the package's classifier reads as asked and their Frechet distance to the held-out digits. The course's targets
for the scale notebook 09 uses (``sg.mnist.GUIDANCE_SCALE``): >= 98 % read as asked with a Frechet distance
<= 20. ``--manifest`` also writes that scale's row into ``checkpoints/mnist_cond.json`` (its ``guided``
metrics, with this command), so the checkpoints table and the benchmark agree. Prints a table, writes JSON.

    python benchmarks/guidance_cpu.py --out benchmarks/results/guidance_cpu_run1.json --manifest   # ~10 min, 2 cores
    python benchmarks/guidance_cpu.py --tiny --checkpoint runs/tiny-cond/checkpoint.pt --out /tmp/g.json  # smoke
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402
from scoregen_lite import artifacts
from scoregen_lite import mnist as sg_mnist  # noqa: E402

#: The course's targets at notebook 09's guidance scale (issue 19).
TARGET_ACCURACY = 0.98
TARGET_FRECHET = 20.0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/guidance_cpu.json")
    p.add_argument("--checkpoint", help="a class-conditional checkpoint (default: the shipped mnist_cond.pt)")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25, 1.5, 1.75, 2.0, 3.0])
    p.add_argument("--n", type=int, default=2000, help="digits per scale (n // 10 of each class)")
    p.add_argument("--manifest", action="store_true",
                   help="write the row of sg.mnist.GUIDANCE_SCALE into checkpoints/mnist_cond.json")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: every core)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for a smoke run (no claims)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    split = sg.data.mnist_split(root=args.root, download=False)
    checkpoint = Path(args.checkpoint) if args.checkpoint else artifacts.checkpoints_dir() / "mnist_cond.pt"
    if args.manifest and (args.tiny or args.checkpoint):
        raise SystemExit("--manifest measures the shipped mnist_cond.pt at full size: drop --tiny and --checkpoint.")
    model = sg.checkpoints.ScoreModel.load(checkpoint, device=device)   # read once: network, SDE, range, meta
    sg_mnist.check_heldout(model.meta, split)
    guided = {k: v for k, v in sg_mnist.SHIP_GUIDED.items() if k != "scale"}
    n = args.n
    if args.tiny:
        n, guided = 20, dict(guided, n_steps=3)
    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    command = "python benchmarks/guidance_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res = {"device": f"{sg.device_name(device)}, torch {torch.__version__}",   # device_name counts the threads
           "command": command,
           "commit": artifacts.commit_id(), "checkpoint": str(checkpoint), "checkpoint_sha256": artifacts.sha256(checkpoint),
           "heldout": split.heldout, "n_heldout": len(split.x_held), "sampler": guided, "n": n,
           "chosen_scale": sg_mnist.GUIDANCE_SCALE, "target_accuracy": TARGET_ACCURACY,
           "target_frechet": TARGET_FRECHET,
           "frechet_real_heldout": sg.evaluation.evaluate_images(split.x_train[:max(n, 1000)], split.x_held,
                                                              classifier)["frechet"],
           "rows": []}
    print(f"{res['device']}; {checkpoint}; {n} digits per scale", flush=True)
    for scale in args.scales:
        r = sg_mnist.guided_metrics(model, classifier, split.x_held, dict(guided, scale=scale), n=n, device=device)
        row = {"scale": scale, "accuracy": r["guided_accuracy"], "frechet": r["guided_frechet_heldout"],
               "seconds": r["guided_seconds"], "n": r["guided"]["n"]}
        res["rows"].append(row)
        print(f"scale {scale:5.2f}: {row['accuracy']:6.1%} read as asked, Frechet distance {row['frechet']:6.1f} "
              f"({row['seconds']:.0f} s)", flush=True)
    chosen = next((r for r in res["rows"] if r["scale"] == sg_mnist.GUIDANCE_SCALE), None)
    res["meets_target"] = None if chosen is None else bool(chosen["accuracy"] >= TARGET_ACCURACY
                                                           and chosen["frechet"] <= TARGET_FRECHET)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    if args.manifest:
        if chosen is None:
            raise SystemExit(f"--manifest needs GUIDANCE_SCALE={sg_mnist.GUIDANCE_SCALE} among --scales.")
        path = artifacts.checkpoints_dir() / "mnist_cond.json"
        manifest = json.loads(path.read_text())
        if manifest["sha256"] != res["checkpoint_sha256"]:
            raise SystemExit(f"{path} describes another file (sha256 {manifest['sha256'][:12]}...); ship it first.")
        manifest["metrics"].update(guided={**sg_mnist.SHIP_GUIDED, "n": chosen["n"]},
                                   guided_accuracy=chosen["accuracy"], guided_frechet_heldout=chosen["frechet"],
                                   guided_seconds=chosen["seconds"], guided_command=command,
                                   guided_commit=res["commit"])
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote scale {chosen['scale']:g} into {path}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
