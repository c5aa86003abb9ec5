"""EDM's sigma_data and P_mean for the course's data scale, at equal training cost (issue 32, notebook 10).

The CPU recipe (``train-mnist --cpu``, ``sg.image_training.CPU``) trains with EDM's preconditioning, log-normal noise
levels and weighting (Karras et al. 2022, "Elucidating the design space...", section 5 and table 1) with EDM's
constants sigma_data = 0.5 and ln sigma ~ N(P_mean = -1.2, P_std = 1.2^2). Those constants are EDM's for images
in [-1, 1]; the course's MNIST lies in [0, 1]. This benchmark trains the CPU recipe twice, with the same seed,
the same batches and the same number of steps (sigma_data and P_mean change no compute, so equal steps is equal
CPU time; both wall times are recorded), once with EDM's constants and once with the data-scaled ones:

* sigma_data = the standard deviation of the training digits (measured here), the quantity EDM's c_skip, c_out
  and c_in assume (EDM, appendix B.6: sigma_data is the data's standard deviation);
* P_mean = -1.2 + ln(1/2): x01 = (x + 1) / 2 maps [-1, 1] images to [0, 1], and x01 + sigma n carries the same
  information as x + 2 sigma n, so noise level sigma on [0, 1] data is noise level 2 sigma on [-1, 1] data; EDM's
  ln sigma ~ N(-1.2, 1.2^2) for [-1, 1] images is therefore ln sigma ~ N(-1.2 + ln(1/2), 1.2^2) for the same
  images in [0, 1] (P_std is a width in ln sigma and does not change).

Each model is scored with the package's protocol (``sg.metrics``: Frechet distance on the features of the
package's classifier, trained on the training digits, to the held-out digits the models never saw) for
Euler-Maruyama with ``--em-steps`` steps and EDM's deterministic Heun sampler on 18 levels (35 evaluations), each
on ``--n-samples`` samples drawn with ``--sample-seeds`` seeds (their spread is the sampling noise). The noise
floor beside it: training digits against the held-out digits, for as many disjoint sets of training digits as
sample seeds. Prints a table and writes JSON (rendered by ``sg.results.sigma_data_table``).

    python benchmarks/sigma_data_cpu.py --budget 600 --out benchmarks/results/sigma_data_cpu_run1.json  # ~35 min, 1 core
    python benchmarks/sigma_data_cpu.py --tiny --out /tmp/sigma_data.json          # smoke run, about a minute
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402
from scoregen_lite import artifacts
from scoregen_lite import mnist as sg_mnist  # noqa: E402

#: EDM's constants (Karras et al. 2022, table 1), for images in [-1, 1]; the course's defaults (sg.image_training.CPU).
EDM_SIGMA_DATA, EDM_P_MEAN, EDM_P_STD = 0.5, -1.2, 1.2

NOTE = ("Derivation. x01 = (x + 1)/2 maps EDM's [-1, 1] images to the course's [0, 1]; x01 + sigma*n = (x + 2*sigma*n + 1)/2, "
        "so noise level sigma on [0, 1] data is noise level 2*sigma on [-1, 1] data, and rescaling the data by k is "
        "rescaling every sigma by k. EDM's ln sigma ~ N(-1.2, 1.2^2) for [-1, 1] images is thus ln sigma ~ "
        "N(-1.2 + ln(1/2), 1.2^2) = N(-1.893, 1.2^2) for the same images in [0, 1]; P_std, a width in ln sigma, is "
        "unchanged. sigma_data is the data's standard deviation in EDM's preconditioning (c_skip, c_out, c_in; EDM "
        "appendix B.6); EDM's 0.5 is its value for [-1, 1] images, so the data-matched value is the measured std of "
        "the training digits in [0, 1] (about 0.31). An alternative reading keeps EDM's ratio of P_mean to sigma_data "
        "(P_mean = -1.2 + ln(std/0.5) = -1.68); it differs from the one used by 0.21 in ln sigma, 0.18 P_std.")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/sigma_data_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--steps", type=int, default=8000, help="training steps per setting (the same for both)")
    p.add_argument("--budget", type=float, default=None,
                   help="train the first setting for this many seconds instead, and the second for as many steps as "
                        "the first reached (equal steps either way)")
    p.add_argument("--seed", type=int, default=0, help="training seed (the same for both)")
    p.add_argument("--n-samples", type=int, default=1000, help="samples per sampler and sample seed")
    p.add_argument("--sample-seeds", type=int, default=2, help="sampling seeds per sampler (their spread is noise)")
    p.add_argument("--em-steps", type=int, default=100, help="Euler-Maruyama steps")
    p.add_argument("--heun-levels", type=int, default=18, help="levels of EDM's deterministic Heun sampler")
    p.add_argument("--batch-size", type=int, default=500, help="sampling batch size")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS or 1)")
    p.add_argument("--tiny", action="store_true", help="tiny network, steps and samples: a smoke run (no claims)")
    return p.parse_args(argv)


def settings(data_std: float) -> dict:
    """The two settings compared: EDM's constants and the data-scaled ones (see NOTE)."""
    return {"edm_default": {"sigma_data": EDM_SIGMA_DATA, "p_mean": EDM_P_MEAN, "p_std": EDM_P_STD},
            "data_scaled": {"sigma_data": round(data_std, 4), "p_mean": round(EDM_P_MEAN + math.log(0.5), 4),
                            "p_std": EDM_P_STD}}


def _mean_sd(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def main(argv=None) -> int:
    args = parse(argv)
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    split = sg.data.mnist_split(root=args.root, download=False)
    data_std = split.x_train.float().std().item()
    base = replace(sg_mnist.config_for(False, cpu=True), n_steps=args.steps, time_budget_s=None, seed=args.seed)
    n, em_steps, heun_levels, seeds = args.n_samples, args.em_steps, args.heun_levels, args.sample_seeds
    if args.tiny:
        base = replace(base, channels=(8, 16, 32, 64), embed_dim=32, n_steps=min(args.steps, 30))
        n, em_steps = min(n, 64), min(em_steps, 10)
    samplers = {f"EM-{em_steps}": dict(sampler="em", n_steps=em_steps),
                f"Heun-{heun_levels}": dict(sampler="edm", n_steps=heun_levels)}
    res = {"device": f"CPU, {os.cpu_count()} cores, shared with other sessions' jobs; {threads} torch threads; "
                     f"torch {torch.__version__}",
           "command": "python benchmarks/sigma_data_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "commit": artifacts.commit_id(), "tiny": args.tiny, "note": NOTE,
           "data": {"heldout": split.heldout, "n_train": len(split.x_train), "n_heldout": len(split.x_held),
                    "train_mean": split.x_train.float().mean().item(), "train_std": data_std},
           "recipe": {**asdict(base), "lr": base.learning_rate()},
           "steps": base.n_steps, "n_samples": n, "sample_seeds": seeds, "samplers": samplers,
           "settings": settings(data_std), "runs": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write():
        out.write_text(json.dumps(res, indent=2) + "\n")

    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    res["classifier_heldout_accuracy"] = sg.evaluation.accuracy(classifier, split.x_held, split.y_held)
    # the noise floor: disjoint sets of n training digits against the held-out digits
    floor = [sg.evaluation.evaluate_images(split.x_train[i * n:(i + 1) * n], split.x_held, classifier)["frechet"]
             for i in range(seeds)]
    res["floor"] = {"what": f"{seeds} disjoint sets of {n} training digits vs the held-out digits",
                    "frechet": floor, "mean": _mean_sd(floor)[0], "sd": _mean_sd(floor)[1]}
    print(f"{res['device']}; training digits: std {data_std:.4f}; floor FD {floor}", flush=True)
    write()

    for i, (name, s) in enumerate(res["settings"].items()):
        config = replace(base, sigma_data=s["sigma_data"], p_mean=s["p_mean"], p_std=s["p_std"])
        if args.budget is not None:
            config = (replace(config, n_steps=100_000, time_budget_s=args.budget) if i == 0
                      else replace(config, n_steps=res["steps"]))
        print(f"\n{name}: sigma_data {config.sigma_data}, P_mean {config.p_mean}, P_std {config.p_std}; "
              f"{config.n_steps} steps", flush=True)
        net, ema, info = sg.image_training.train_images(split.x_train, config, device=device, progress=True, log=print)
        run = {"setting": s, "train": {k: info[k] for k in ("steps", "seconds", "images_per_s", "precision")}}
        run["train"]["final_loss"] = statistics.fmean(info["losses"][-200:])
        if i == 0:
            res["steps"] = info["steps"]
            res["recipe"]["n_steps"] = info["steps"]
            if args.budget is not None:
                res["steps_from"] = f"the steps the first setting reached in its {args.budget:g} s budget"
        elif info["steps"] != res["steps"]:
            raise RuntimeError(f"{name} trained {info['steps']} steps, not {res['steps']}: the costs differ.")
        if ema is not None:
            ema.copy_to(net)
        net.eval().requires_grad_(False)
        model = sg.checkpoints.ScoreModel(net, sg.image_training.make_sde(config), config)   # with its trained range
        run["samplers"] = {}
        for label, kw in samplers.items():
            fds, secs = [], []
            for seed in range(seeds):
                gen = torch.Generator().manual_seed(1000 + seed)
                x, nfe, seconds = model.sample(n, batch_size=args.batch_size, generator=gen, device=device,
                                               progress=False, **kw)
                q = sg.evaluation.evaluate_images(x.clamp(0, 1), split.x_held, classifier)
                fds.append(q["frechet"])
                secs.append(seconds)
            mean, sd = _mean_sd(fds)
            run["samplers"][label] = {"nfe": nfe, "frechet": fds, "mean": mean, "sd": sd, "seconds": secs,
                                      "histogram_ok": q["histogram_ok"], "max_histogram_gap": q["max_histogram_gap"]}
            print(f"  {label:<10} NFE {nfe:4d}  FD {', '.join(f'{f:.2f}' for f in fds)}  ({sum(secs):.0f} s)", flush=True)
        em, heun = (run["samplers"][k]["mean"] for k in samplers)
        run["heun_over_em"] = heun / em
        res["runs"][name] = run
        write()

    a, b = res["runs"]["edm_default"], res["runs"]["data_scaled"]
    res["difference"] = {label: b["samplers"][label]["mean"] - a["samplers"][label]["mean"] for label in samplers}
    write()
    print()
    print(sg.results.sigma_data_table(res))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
