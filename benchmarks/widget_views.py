"""What a slider move costs the kernel in each 2D explorer (issue 35), without a browser: the view (compute and
artists, updated in place) and ``sg.widgets.live.render_png``, timed separately, at full detail and at a
preview's detail. The moves go right, left, right, ... around the explorers' defaults, one slider after another,
as ``benchmarks/widget_latency.py`` moves them in the browser (where messaging, decoding and painting add about
60 ms), in full mode (the notebooks' sizes: 1,000 Langevin chains, 2,000 annealed chains and SDE samples).
Prints a table (median and 95th percentile, nearest rank, per view) and writes JSON; take it with nothing else
running, on the threads a kernel gets (``OMP_NUM_THREADS``):

    OMP_NUM_THREADS=2 python benchmarks/widget_views.py --out benchmarks/results/widget_views_run2.json
    python benchmarks/widget_views.py --reps 4 --views langevin sde --out /tmp/views.json      # smoke run

Another copy of the package (e.g. ``git archive <commit> scoregen_lite | tar -x -C /tmp/before``) is timed with
``PYTHONPATH=/tmp/before``; run 1 is the package before issue 35's 2D work (commit 477ad6b), run 2 after it.

``--details 1.0 0.25`` (the default) times each view at both; a package without ``detail`` (before issue 35)
is timed at 1.0 only. The DSM explorer's networks are trained here for 50 steps each: its timing needs networks,
not good ones.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO))  # run from a checkout without installing; PYTHONPATH=<copy> times another copy


def _alternate(v0, v1, n: int = 5) -> list:
    """A slider moved right, left, right, ...: v1, v0, v1, ..."""
    return [v1 if i % 2 == 0 else v0 for i in range(n)]


def cases(sg) -> dict:
    """view name -> (view, fixed settings, [(setting, values moved through)]), the explorers' defaults."""
    import torch

    w = sg.widgets
    p = sg.densities.ring()
    data = p.sample(2000, generator=torch.Generator().manual_seed(0))
    nets = {}
    for s in (0.1, 0.3, 1.0):
        torch.manual_seed(0)
        net = sg.nets.MLPScore(2, hidden=64, n_layers=3)
        sg.train.fit(net, lambda n, x, s=s: sg.losses.denoising_score_matching(n, x, s), data, n_steps=50,
                     batch_size=128, lr=3e-3, progress=False, device="cpu")
        nets[s] = net.requires_grad_(False)
    ladder = [("sigma_max", _alternate(10.0, 10**1.05)), ("sigma_min", _alternate(0.1, 10**-0.95)),
              ("n_levels", _alternate(10, 11)), ("step_size", _alternate(5e-3, 5e-3 * 10**0.1))]
    return {
        "langevin": (w.langevin_view, {"n_chains": 1000},
                     [("step_size", _alternate(0.1, 10**-0.9)), ("n_steps", _alternate(300, 350))]),
        "dsm": (w.dsm_view, {"nets": nets, "density": p, "sigma": 0.1}, [("sigma", [0.3, 1.0, 0.3, 0.1, 0.3])]),
        "schedule": (w.schedule_view, {}, ladder),
        "annealed": (w.annealed_view, {"n_chains": 2000}, ladder + [("n_steps_each", _alternate(100, 110))]),
        "sde": (w.sde_view, {"n_samples": 2000}, [("n_steps", _alternate(100, 102))]),
        "flow": (w.flow_view, {}, [("t", _alternate(0.5, 0.55)), ("n_steps", _alternate(4, 5))]),
    }


def p95(values) -> float:
    """The 95th percentile by nearest rank (as benchmarks/widget_latency.py)."""
    v = sorted(values)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)]


def time_view(sg, view, fixed: dict, moves: list, reps: int, detail: float) -> dict:
    """``reps`` moves of one view, drawn in place into the figure of the move before; the first figure is drawn
    (and rendered) untimed, as the notebook cell draws it before any move. Settings accumulate within one pass
    over the moves and start again from the defaults after it."""
    import matplotlib.pyplot as plt

    kw = dict(fixed, **({"detail": detail} if detail != 1.0 else {}))
    fig, _ = view(**kw)
    sg.widgets.live.render_png(fig)
    sequence = [(name, v) for name, values in moves for v in values]
    settings, view_ms, render_ms = {}, [], []
    for i in range(reps):
        name, value = sequence[i % len(sequence)]
        if i % len(sequence) == 0:
            settings = {}
        settings[name] = value
        start = time.perf_counter()
        fig, _ = view(**{**kw, **settings}, fig=fig)
        viewed = time.perf_counter()
        sg.widgets.live.render_png(fig)
        view_ms.append(1000 * (viewed - start))
        render_ms.append(1000 * (time.perf_counter() - viewed))
    plt.close("all")
    total = [a + b for a, b in zip(view_ms, render_ms)]
    return {key: {"median": round(statistics.median(v), 1), "p95": round(p95(v), 1)}
            for key, v in (("view_ms", view_ms), ("render_ms", render_ms), ("total_ms", total))}


def _cpu() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="moves timed per view and detail")
    ap.add_argument("--details", type=float, nargs="+", default=[1.0, 0.25])
    ap.add_argument("--views", nargs="*", help="a subset of: langevin dsm schedule annealed sde flow")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--note", default="", help="what was timed, written to the JSON (e.g. the commit of a copy)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import torch

    import scoregen_lite as sg

    sg.plot.use_style()
    rows = []
    print(f"{'view':10s} {'detail':>6s} | {'view ms':>15s} | {'render ms':>15s} | {'total ms':>15s}   (median / p95)")
    for name, (view, fixed, moves) in cases(sg).items():
        if args.views and name not in args.views:
            continue
        for detail in args.details:
            if detail != 1.0 and "detail" not in inspect.signature(view).parameters:
                continue
            r = time_view(sg, view, fixed, moves, args.reps, detail)
            rows.append({"view": name, "detail": detail, **r})
            cells = " | ".join(f"{r[k]['median']:6.1f} / {r[k]['p95']:6.1f}" for k in ("view_ms", "render_ms", "total_ms"))
            print(f"{name:10s} {detail:6.2f} | {cells}", flush=True)
    if args.out:
        out = {"command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "package": str(Path(sg.__file__).parent), "torch_threads": torch.get_num_threads(),
               "device": _cpu(),
               "mode": "quick" if sg.QUICK else "full", "reps": args.reps, "note": args.note, "rows": rows}
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
