"""MNIST on one GPU: the reference recipe vs ours, same data, same machine, one run.

Reference (Song's PyTorch tutorial, reimplemented from its published hyperparameters): the
~1.1M-parameter ScoreUNet, VE SDE with sigma = 25, batch 32, Adam 1e-4, 50 epochs, no EMA,
eager float32, Euler-Maruyama with 500 steps. Ours: the same network and SDE, batch 512 with
lr = 1e-4 * sqrt(batch / 32), warm-up, gradient clipping, EMA 0.999, torch.compile and bfloat16
autocast, trained for a wall-time budget (compilation included), sampled with the EMA weights.

Measured for each: training images/s and wall time; for 10,000 EM-500 samples: sampling time,
Frechet distance on the package's own MNIST classifier features (no downloaded weights) and the
class histogram; the same for notebook 08's fast samplers (EDM Heun with 18 levels, 35 NFE, deterministic and
with churn 40; DPM-Solver++(2M) with 20 levels); ODE sampling NFE; bits/dim (probability-flow ODE, uniform dequantisation,
+8 bits offset) on held-out digits. Prints a table and writes JSON after every stage, so a run
cut short still leaves its partial results.

    python benchmarks/mnist_gpu.py --out results/          # full run on a GPU (about 6-7 minutes)
    python benchmarks/mnist_gpu.py --tiny --out /tmp/b     # CPU smoke run at tiny size (about 1 minute)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import scoregen_lite as sg  # noqa: E402
from scoregen_lite import data as sg_data  # noqa: E402
from scoregen_lite import mnist as sg_mnist  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for a CPU smoke run")
    p.add_argument("--ref-epochs", type=float, default=50)
    p.add_argument("--budget", type=float, default=110.0, help="our training wall-time budget, seconds")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--n-likelihood", type=int, default=128)
    p.add_argument("--skip-reference", action="store_true")
    return p.parse_args()


def main():
    args = parse()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = sg.device()
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "args": vars(args), "stages": {}}

    def dump():
        (out / "mnist_gpu.json").write_text(json.dumps(results, indent=2, default=str))

    def stage(name, fn):
        t0 = time.perf_counter()
        try:
            value = fn()
            results["stages"][name] = {"ok": True, "seconds": time.perf_counter() - t0}
            return value
        except Exception as err:  # keep going: later stages may still work
            results["stages"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                       "traceback": traceback.format_exc()[-2000:]}
            print(f"[{name}] FAILED: {err}", flush=True)
            return None
        finally:
            dump()

    split = sg_data.mnist_split(root=args.root, download=False)   # training never sees the held-out digits
    x_train, y_train, x_hold, y_hold = split.x_train, split.y_train, split.x_held, split.y_held
    results["heldout"] = split.heldout
    if args.tiny:
        x_train, y_train = x_train[:2000], y_train[:2000]
    results["n_train"] = len(x_train)
    print(f"device {results['device']}, torch {torch.__version__}, {len(x_train)} training digits", flush=True)

    n_samples = 200 if args.tiny else args.n_samples
    em_steps = 20 if args.tiny else 500

    classifier = stage("classifier", lambda: sg.evaluation.mnist_classifier(x_train, y_train, epochs=1 if args.tiny else 5,
                                                                        device=device, cache=False))
    if classifier is not None:
        results["classifier_accuracy_heldout"] = stage("classifier_accuracy",
                                                       lambda: sg.evaluation.accuracy(classifier, x_hold, y_hold))
        results["frechet_real_vs_real"] = stage(
            "frechet_real_vs_real",
            lambda: sg.evaluation.evaluate_images(x_hold, x_train[:max(n_samples, 1000)], classifier)["frechet"])

    tiny = dict(channels=(8, 16, 32, 64), embed_dim=32) if args.tiny else {}
    ref_steps = max(1, int(args.ref_epochs * len(x_train) / 32))
    recipes = {
        "reference": replace(sg.image_training.REFERENCE, n_steps=20 if args.tiny else ref_steps, checkpoint_every=10**9, **tiny),
        "ours": replace(sg.image_training.FAST, batch_size=args.batch_size, n_steps=40 if args.tiny else 10**7,
                        time_budget_s=None if args.tiny else args.budget, checkpoint_every=10**9, **tiny),
    }
    if args.skip_reference:
        recipes.pop("reference")

    for name, config in recipes.items():
        rec = results.setdefault(name, {"config": {**asdict(config), "lr": config.learning_rate()}})
        ckpt = out / f"{name}.pt"

        def do_train(config=config, ckpt=ckpt):
            net, ema, info = sg.image_training.train_images(x_train, config, checkpoint=ckpt, resume=False, device=device,
                                                   progress=False)
            return {k: info[k] for k in ("steps", "seconds", "compile_seconds", "images_per_s", "compiled", "lr")} | {
                "final_loss": sum(info["losses"][-200:]) / max(1, len(info["losses"][-200:])),
                "epochs": info["steps"] * config.batch_size / len(x_train)}

        rec["train"] = stage(f"{name}_train", do_train)
        print(f"[{name}] train: {rec['train']}", flush=True)
        if rec["train"] is None:
            continue

        def do_sample(ckpt=ckpt, name=name):
            torch.cuda.empty_cache() if device.type == "cuda" else None
            timings = {}
            # the reference samples as its tutorial does (eager); ours compiles the network first
            samples, nfe, seconds = sg_mnist.sample_model(ckpt, n_samples, sampler="em", n_steps=em_steps,
                                                          device=device, out_dir=out / name,
                                                          compile=name == "ours", timings=timings)
            metrics = sg.evaluation.evaluate_images(samples, x_train[:max(n_samples, 1000)], classifier) \
                if classifier is not None else {}
            return {"em_steps": em_steps, "n": n_samples, "seconds": seconds,
                    "compile_seconds": timings.get("compile_seconds", 0.0), **metrics}

        rec["em"] = stage(f"{name}_sample_em", do_sample)
        print(f"[{name}] EM-{em_steps}: {rec['em'] and {k: v for k, v in rec['em'].items() if 'hist' not in k}}", flush=True)

        def do_ode(ckpt=ckpt):
            model = sg.checkpoints.ScoreModel.load(ckpt, device=device)
            gen = torch.Generator(device=device).manual_seed(1)
            x_ode, nfe, seconds = model.sample(64 if args.tiny else 1000, sampler="ode", rtol=1e-5, atol=1e-5,
                                               generator=gen, device=device)
            return {"nfe": nfe, "seconds": seconds, "n": len(x_ode)}

        rec["ode"] = stage(f"{name}_ode", do_ode)

        # notebook 08's fast samplers on the same network: EDM Heun (18 levels, 35 NFE), with churn, DPM-Solver++(2M)
        for key, sampler, steps, extra in (("edm", "edm", 18, {}), ("edm_churn", "edm", 18, {"churn": 40.0}),
                                           ("dpm", "dpm", 20, {})):
            def do_fast(ckpt=ckpt, name=name, sampler=sampler, steps=steps, extra=extra):
                timings = {}
                samples, nfe, seconds = sg_mnist.sample_model(ckpt, n_samples, sampler=sampler, n_steps=steps,
                                                              device=device, compile=name == "ours",
                                                              timings=timings, **extra)
                metrics = sg.evaluation.evaluate_images(samples, x_train[:max(n_samples, 1000)], classifier) \
                    if classifier is not None else {}
                return {"n_steps": steps, "nfe": nfe, "n": n_samples, "seconds": seconds, **extra,
                        "compile_seconds": timings.get("compile_seconds", 0.0), **metrics}

            rec[key] = stage(f"{name}_{key}", do_fast)
            print(f"[{name}] {key}: {rec[key] and {k: v for k, v in rec[key].items() if 'hist' not in k}}", flush=True)

        def do_bpd(ckpt=ckpt):
            model = sg.checkpoints.ScoreModel.load(ckpt, device=device)
            return sg_mnist.bits_per_dim(model, x_hold[:8] if args.tiny else x_hold[:args.n_likelihood], device=device,
                                         generator=torch.Generator().manual_seed(0))

        rec["bits_per_dim"] = stage(f"{name}_bits_per_dim", do_bpd)
        print(f"[{name}] ODE: {rec['ode']}, bits/dim: {rec['bits_per_dim']}", flush=True)

    # the table
    rows = [("training images/s", lambda r: f"{r['train']['images_per_s']:,.0f}"),
            ("training wall time, s (compile incl.)", lambda r: f"{r['train']['seconds']:.1f}"),
            ("steps x batch (epochs)",
             lambda r: f"{r['train']['steps']} x {r['config']['batch_size']} ({r['train']['epochs']:.0f})"),
            ("Frechet distance, 10k EM samples", lambda r: f"{r['em']['frechet']:.2f}"),
            ("class histogram within 10% +- 2 pts", lambda r: str(r["em"]["histogram_ok"])),
            ("max class-fraction gap", lambda r: f"{r['em']['max_histogram_gap']:.3f}"),
            (f"EM-{em_steps} sampling time, s", lambda r: f"{r['em']['seconds']:.1f}"),
            ("  + one-off sampler compile, s", lambda r: f"{r['em']['compile_seconds']:.1f}"),
            ("ODE NFE (rtol=atol=1e-5)", lambda r: str(r["ode"]["nfe"])),
            ("EDM Heun-18 (35 NFE) time, s", lambda r: f"{r['edm']['seconds']:.1f}"),
            ("EDM Heun-18 Frechet distance", lambda r: f"{r['edm']['frechet']:.2f}"),
            ("EDM Heun-18 + capped churn time, s", lambda r: f"{r['edm_churn']['seconds']:.1f}"),
            ("EDM Heun-18 + capped churn Frechet", lambda r: f"{r['edm_churn']['frechet']:.2f}"),
            ("DPM-Solver++(2M)-20 time, s", lambda r: f"{r['dpm']['seconds']:.1f}"),
            ("DPM-Solver++(2M)-20 Frechet", lambda r: f"{r['dpm']['frechet']:.2f}"),
            ("bits/dim (ODE, dequantised)", lambda r: f"{r['bits_per_dim']:.3f}")]
    names = [n for n in ("reference", "ours") if n in results]
    lines = [f"{'':<40}" + "".join(f"{n:>16}" for n in names)]
    for label, get in rows:
        cells = []
        for n in names:
            try:
                cells.append(get(results[n]))
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append(f"{label:<40}" + "".join(f"{c:>16}" for c in cells))
    if classifier is not None:
        lines.append(f"(scale: Frechet distance of {len(x_hold)} held-out digits ({split.heldout}) to training digits = "
                     f"{results.get('frechet_real_vs_real') or float('nan'):.2f}; "
                     f"classifier held-out accuracy {results.get('classifier_accuracy_heldout') or float('nan'):.3f})")
    try:
        ratio = results["ours"]["em"]["frechet"] / results["reference"]["em"]["frechet"]
        lines.append(f"Frechet ratio ours/reference = {ratio:.3f} (target <= 0.5)")
        results["frechet_ratio"] = ratio
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    for name in names:   # notebook 08's claim: a 35-NFE sampler at EM-500's quality in 1/8 of its time
        try:
            em = results[name]["em"]
            for key in ("edm", "edm_churn", "dpm"):
                fast = results[name][key]
                ratio = {"time": fast["seconds"] / em["seconds"], "frechet": fast["frechet"] / em["frechet"]}
                results[name][key]["vs_em"] = ratio
                lines.append(f"{name}: {key} / EM-{em_steps}: time {ratio['time']:.3f} (target <= 0.125), "
                             f"Frechet {ratio['frechet']:.2f} (target <= 1.1)")
        except (KeyError, TypeError, ZeroDivisionError):
            pass
    table = "\n".join(lines)
    results["table"] = table
    dump()
    (out / "mnist_gpu.txt").write_text(table + "\n")
    print(table, flush=True)
    failed = [k for k, v in results["stages"].items() if not v["ok"]]
    if failed:
        print(f"stages that failed: {failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
