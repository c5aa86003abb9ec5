"""Fast sampling on a laptop CPU (notebook 08): samplers of the course on the shipped checkpoint
``mnist_ve``, the same number of samples each, scored on held-out digits.

For each sampler: score evaluations per sample (NFE), wall time for ``--n-samples`` digits (batches of
``--batch-size``) and per 1,000, and the Frechet distance of the samples to the held-out digits on the
package's classifier features (the same for every row, so rows compare; the held-out digits were never
trained on).

Two plans. ``--plan classic`` (runs 1-3): every sampler of the course once; the reference row is
Euler-Maruyama with 500 steps, the sampler of notebook 07, and the claim checked is that EDM's Heun sampler
with churn capped at every level (S_churn = 40 on 18 levels: gamma = sqrt(2) - 1 at every step) is within
10 % of its Frechet distance (or better). ``--plan nfe`` (run 4): Frechet distance against NFE for
Euler-Maruyama at ``--em-steps`` steps, beside Heun on 5 and 18 levels, deterministic, with the course's capped
churn at every level, and with EDM's windowed churn (S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003:
the ImageNet-64 setting of Karras et al. 2022, table 5, and of NVlabs/edm's README); each row also records
precision and recall on classifier features (Kynkaenniemi et al. 2019, k = 3), the features' spread and the
digits' total variation, for notebook 08's reading of Heun-5 against Heun-18. The speed-up against the
cheapest EM that reaches a sampler's quality is computed from the rows by ``sg.results.em_speedup``.
``--plan window`` (run 5): run 4's "windowed" row keeps S_churn = 40 on 18 levels, so eta sits at the cap inside
the window too and differs from capped churn only on the last level (sigma_17 = 0.032 < S_tmin) and in S_noise;
run 5 measures EDM's per-level amount instead (S_churn = 40 * 18 / 256 = 2.81: eta = 0.156 as with 40 on 256
levels) on the same window with S_noise 1.003, beside capped churn, deterministic Heun-18 and EM-100 on the same
seeds, with the same measures as run 4.
Prints a table and writes JSON (after every row, so a stopped run keeps its rows).

    python benchmarks/fast_sampling_cpu.py --out benchmarks/results/fast_sampling_cpu_run1.json   # ~6 min, 2 cores
    OMP_NUM_THREADS=2 python benchmarks/fast_sampling_cpu.py --plan nfe --n-samples 1000 \
        --out benchmarks/results/fast_sampling_cpu_run4.json                                      # ~10-20 min
    OMP_NUM_THREADS=2 python benchmarks/fast_sampling_cpu.py --plan window --n-samples 1000 \
        --out benchmarks/results/fast_sampling_cpu_run5.json                                      # ~3-10 min
    python benchmarks/fast_sampling_cpu.py --tiny --out /tmp/fast.json                            # smoke run
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

#: "Windowed" churn of run 4: the ImageNet-64 numbers of Karras et al. (2022), table 5, as NVlabs/edm's README runs
#: them on 256 levels; on 18 levels S_churn = 40 keeps eta at its cap sqrt(2) - 1 inside the window, so on the MNIST
#: schedule it differs from capped churn on the last level alone (sigma_17 < S_tmin) and in S_noise: see EDM_PER_STEP
EDM_WINDOWED = dict(churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)

#: EDM's per-step churn kept on 18 levels: NVlabs/edm runs S_churn = 40 on 256 levels (eta = 40/256 = 0.156 per
#: level, below the cap sqrt(2) - 1); on 18 levels that per-level eta needs S_churn = 40 * 18 / 256 = 2.8125.
#: Same window and S_noise as EDM_WINDOWED. The plan of run 5.
EDM_PER_STEP = dict(churn=40.0 * 18 / 256, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)

#: (sampler name, sampler, n_steps, extra keyword arguments): the classic plan (runs 1-3)
SAMPLERS = [
    ("Euler-Maruyama", "em", 500, {}),
    ("Euler-Maruyama", "em", 100, {}),
    ("predictor-corrector", "pc", 250, {}),
    ("probability-flow ODE, RK45", "ode", 0, dict(rtol=1e-3, atol=1e-3)),
    ("EDM Heun", "edm", 18, {}),
    ("EDM Heun", "edm", 18, dict(churn=40.0)),
    ("DPM-Solver++(2M)", "dpm", 20, {}),
]




def nfe_plan(em_steps) -> list:
    """The plan of run 4: EM at each of ``em_steps``, Heun on 5 and 18 levels (deterministic), Heun-18 with churn
    capped at every level, and Heun-18 with EDM's windowed churn."""
    return [("EDM Heun", "edm", 18, dict(churn=40.0)), ("EDM Heun", "edm", 18, dict(EDM_WINDOWED)),
            ("EDM Heun", "edm", 18, {}), ("EDM Heun", "edm", 5, {}),
            *[("Euler-Maruyama", "em", n, {}) for n in sorted(em_steps)]]   # the costliest last


def window_plan() -> list:
    """The plan of run 5: Heun-18 with EDM's per-level churn (``EDM_PER_STEP``: eta = 0.156 on the window, below
    the cap), beside references measured on the same samples: Heun-18 with churn capped at every level, deterministic
    Heun-18, and EM-100 (the cheapest EM at EM-500's quality in runs 1-4)."""
    return [("EDM Heun", "edm", 18, dict(EDM_PER_STEP)), ("EDM Heun", "edm", 18, dict(churn=40.0)),
            ("EDM Heun", "edm", 18, {}), ("Euler-Maruyama", "em", 100, {})]


def label(name, sampler, n_steps, kwargs) -> str:
    """The row's name: sampler, steps or levels, and its options ("churn 40" alone is the churn capped at every
    level; a window and S_noise are named when set)."""
    what = {"em": f"{n_steps} steps", "pc": f"{n_steps} steps", "ode": f"rtol {kwargs.get('rtol')}",
            "edm": f"{n_steps} levels", "dpm": f"{n_steps} levels"}[sampler]
    extra = f", churn {kwargs['churn']:g}" if kwargs.get("churn") else (" (deterministic)" if sampler == "edm" else "")
    if kwargs.get("churn") and kwargs["churn"] != round(kwargs["churn"]):
        extra = f", churn {kwargs['churn']:.5g}"
    if "s_tmin" in kwargs:
        extra += f" on sigma in [{kwargs['s_tmin']:g}, {kwargs['s_tmax']:g}], S_noise {kwargs['s_noise']:g}"
    return f"{name}, {what}{extra}"


def knn_radii(feats: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Distance from each feature vector to its k-th nearest other one (the ball of Kynkaenniemi et al. 2019)."""
    d = torch.cdist(feats, feats)
    return d.kthvalue(k + 1, dim=1).values       # the 0 to itself is the first


def precision_recall(fake: torch.Tensor, real: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019, section 2): precision, the fraction of samples
    inside the union of the real points' k-NN balls (are the samples realistic?); recall, the fraction of real
    points inside the samples' balls (is the data's variety covered?)."""
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    d = torch.cdist(fake, real)                  # (n_fake, n_real)
    precision = (d <= r_real[None, :]).any(1).double().mean().item()
    recall = (d <= r_fake[:, None]).any(0).double().mean().item()
    return precision, recall


def image_measures(x: torch.Tensor, real_feats: torch.Tensor, classifier) -> dict:
    """Precision, recall, the features' spread (sqrt of the trace of their covariance, relative to the held-out
    digits') and the mean total variation of the digits (sum of absolute neighbour differences, per digit)."""
    x = x.clamp(0, 1)
    feats, _ = sg.evaluation.features_and_classes(classifier, x)
    precision, recall = precision_recall(feats, real_feats)
    spread = torch.cov(feats.T).trace().sqrt().item() / torch.cov(real_feats.T).trace().sqrt().item()
    return {"precision": precision, "recall": recall, "feature_spread_vs_heldout": spread,
            "total_variation": total_variation(x)}


def total_variation(x: torch.Tensor) -> float:
    """Mean over digits of the sum of |horizontal| and |vertical| neighbour differences (sharp strokes score high,
    blurred ones low)."""
    x = x.reshape(len(x), -1, x.shape[-2], x.shape[-1]).double()
    tv = (x[..., 1:, :] - x[..., :-1, :]).abs().sum((1, 2, 3)) + (x[..., :, 1:] - x[..., :, :-1]).abs().sum((1, 2, 3))
    return tv.mean().item()


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/fast_sampling_cpu.json")
    p.add_argument("--root", help="MNIST folder (default $SCOREGEN_DATA/mnist)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plan", choices=("classic", "nfe", "window"), default="classic",
                   help="classic: every sampler once (runs 1-3); nfe: EM at --em-steps and Heun-5/18 with and without "
                        "churn, capped and windowed (run 4); window: Heun-18 with EDM's per-level churn (S_churn "
                        "40 * 18/256 on [0.05, 50], S_noise 1.003) beside capped churn, deterministic Heun-18 and "
                        "EM-100 (run 5)")
    p.add_argument("--em-steps", default="50,100,200,500", help="EM step counts of the nfe plan, comma-separated")
    p.add_argument("--note", default="", help="a sentence recorded in the JSON (e.g. who else shared the CPU)")
    p.add_argument("--tiny", action="store_true", help="64 samples, EM and PC with a tenth of the steps: a smoke run "
                                                       "(no claims)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    device = sg.device()
    split = sg.data.mnist_split(root=args.root, download=False)
    classifier = sg.evaluation.mnist_classifier(split.x_train, split.y_train, device=device)
    checkpoint = sg.mnist.find_checkpoint("mnist_ve")
    model = sg.checkpoints.ScoreModel.load(checkpoint, device=device)   # network, SDE and trained range, read once
    n = 64 if args.tiny else args.n_samples
    plan = {"classic": SAMPLERS, "window": window_plan()}.get(args.plan) or \
        nfe_plan([int(v) for v in args.em_steps.split(",")])
    rows = []
    results = {"device": sg.device_name(device), "torch": torch.__version__, "checkpoint": checkpoint.name,
               "checkpoint_sha256": sg.artifacts.sha256(checkpoint), "plan": args.plan,
               "n_samples": n, "heldout": split.heldout, "n_heldout": len(split.x_held), "args": vars(args),
               "frechet_real": sg.evaluation.evaluate_images(split.x_train[:n], split.x_held, classifier)["frechet"],
               "note": args.note, "load_average_start": os.getloadavg(), "complete": False, "rows": rows}
    measures = args.plan in ("nfe", "window")
    if measures:
        real_feats, _ = sg.evaluation.features_and_classes(classifier, split.x_held)
        results["heldout_total_variation"] = total_variation(split.x_held.clamp(0, 1))
        results["train_measures"] = image_measures(split.x_train[:n], real_feats, classifier)
    start = time.perf_counter()
    for name, sampler, n_steps, kwargs in plan:
        if args.tiny and sampler in ("em", "pc"):
            n_steps = max(2, n_steps // 10)
        row_label = label(name, sampler, n_steps, kwargs)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        x, nfe, seconds = model.sample(n, sampler=sampler, n_steps=n_steps or 1, batch_size=args.batch_size,
                                       generator=gen, device=device, **kwargs)
        frechet = sg.evaluation.evaluate_images(x.clamp(0, 1), split.x_held, classifier)["frechet"]
        rows.append({"label": row_label, "sampler": sampler, "n_steps": n_steps, **kwargs, "nfe": nfe,
                     "seconds": seconds, "seconds_per_1000": 1000 * seconds / n, "frechet": frechet,
                     **(image_measures(x, real_feats, classifier) if measures else {})})
        print(f"{row_label:<44} NFE {nfe:5d}  {seconds:7.1f} s  Frechet {frechet:6.1f}", flush=True)
        results["wall_seconds"] = time.perf_counter() - start
        results["load_average_end"] = os.getloadavg()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    results["complete"] = True
    Path(args.out).write_text(json.dumps(results, indent=2))
    if args.plan != "classic":
        print(f"\n{n} samples on {results['device']} in {results['wall_seconds']:.0f} s; held-out digits vs training "
              f"digits: Frechet {results['frechet_real']:.1f}")
        return 0
    em = rows[0]
    edm = next(r for r in rows if r["sampler"] == "edm" and r.get("churn"))
    results["claim"] = {"frechet_ratio_edm_churn_to_em500": edm["frechet"] / em["frechet"],
                        "speedup_edm_churn_vs_em500": em["seconds"] / edm["seconds"],
                        "within_10_percent": edm["frechet"] <= 1.1 * em["frechet"] and edm["nfe"] <= 40}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{n} samples on {results['device']}; held-out digits vs training digits: Frechet "
          f"{results['frechet_real']:.1f}")
    print("EDM Heun + churn capped at every level (35 NFE) / EM-500: Frechet ratio "
          f"{results['claim']['frechet_ratio_edm_churn_to_em500']:.2f}, "
          f"{results['claim']['speedup_edm_churn_vs_em500']:.1f}x faster")
    return 0 if (args.tiny or results["claim"]["within_10_percent"]) else 1


if __name__ == "__main__":
    sys.exit(main())
