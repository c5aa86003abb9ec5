"""How fast every widget of the course answers a slider: JupyterLab and Chromium (Playwright, the system's
Chromium, as ``tests/browser``), the notebooks executed top to bottom in full mode, then every enabled
slider of every explorer moved ``--moves`` times with the keyboard (right, left, right, ...: the values stay
near the defaults a student starts from).

Per move, measured in the page (the ``performance.now()`` clock of the key event):
- ``first_ms``: key press to the status line under the figure saying "computing..." (the first visible
  response: the kernel has the new value and says so before any work);
- ``total_ms``: key press to the new figure decoded and painted (two animation frames after its ``src``
  changed);
- ``view_ms`` and ``render_ms``: what the kernel spent in the view (compute and artists) and in the PNG
  render, reported by ``sg.widgets.live.LiveView`` in the status line; the rest of ``total_ms`` is messaging,
  transfer, decoding and painting.

Per widget: median and 95th percentile of each, against issue 23's targets (2D widgets: 95th percentile
of ``total_ms`` <= 250 ms; MNIST widgets: ``first_ms`` <= 100 ms and ``total_ms`` <= 1,500 ms at the 95th
percentile). Prints a table and writes JSON; take it with nothing else running.

    python benchmarks/widget_latency.py --out benchmarks/results/widget_latency_run1.json   # ~15 min, 2 cores
    python benchmarks/widget_latency.py --quick --moves 2 --out /tmp/latency.json          # smoke run, quick mode
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

TOKEN = "scoregen-latency-token"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

#: notebook -> its explorers, in the order they appear
WIDGETS = {"01_scores_and_langevin.ipynb": ["langevin_explorer"],
           "03_denoising_score_matching.ipynb": ["dsm_explorer"],
           "05_annealed_langevin.ipynb": ["schedule_explorer", "annealed_explorer"],
           "06_sdes.ipynb": ["sde_explorer"],
           "08_fast_sampling.ipynb": ["fast_sampling_explorer"],
           "09_controllable_generation.ipynb": ["guidance_explorer", "inpainting_explorer"]}
MNIST = {"fast_sampling_explorer", "guidance_explorer", "inpainting_explorer"}
#: issue 23's targets, milliseconds at the 95th percentile
TARGETS = {"2d": {"total_ms": 250.0}, "mnist": {"first_ms": 100.0, "total_ms": 1500.0}}

# Installed before each key press: records the key event's time, the first "computing..." status, the time the
# new image is painted and the kernel's own timings from the status line that follows it.
ARM = """(root) => {
  const img = root.querySelector('img');
  const status = root.querySelector('.sg-status');
  const rec = {t0: null, first: null, painted: null, view_ms: null, render_ms: null, done: false};
  const oldSrc = img.src;
  window.__sgLatency = rec;
  document.addEventListener('keydown', e => { if (rec.t0 === null) rec.t0 = e.timeStamp; }, {capture: true, once: true});
  const readStatus = () => {
    const s = status.querySelector('[data-state]');
    if (!s) return;
    if (s.dataset.state === 'computing' && rec.first === null) rec.first = performance.now();
    if (s.dataset.state === 'done' && rec.painted !== null) {
      rec.view_ms = parseFloat(s.dataset.viewMs); rec.render_ms = parseFloat(s.dataset.renderMs); rec.done = true;
    }
    if (s.dataset.state === 'error') rec.error = s.textContent;
  };
  const so = new MutationObserver(readStatus);
  so.observe(status, {childList: true, subtree: true, characterData: true, attributes: true});
  const io = new MutationObserver(() => {
    if (img.src !== oldSrc && rec.painted === null) {
      img.decode().catch(() => null).then(() => requestAnimationFrame(() => requestAnimationFrame(() => {
        rec.painted = performance.now(); readStatus(); })));
    }
  });
  io.observe(img, {attributes: true, attributeFilter: ['src']});
  rec.stop = () => { so.disconnect(); io.disconnect(); };
}"""


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/widget_latency_run1.json")
    p.add_argument("--moves", type=int, default=5, help="moves per slider")
    p.add_argument("--quick", action="store_true", help="SCOREGEN_QUICK=1 notebooks (a smoke run: no claims)")
    p.add_argument("--notebooks", nargs="*", default=list(WIDGETS), help="a subset of the notebooks")
    p.add_argument("--resummarise", metavar="JSON", help="recompute the summaries of a results file from its "
                   "recorded moves (after a change to the summary), print its table and rewrite it; measures nothing")
    return p.parse_args(argv)


# The JupyterLab driver below is shared with tests/browser/test_widgets_browser.py (which imports this file).

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, env: dict, token: str = TOKEN, wait_s: float = 120):
    """JupyterLab on 127.0.0.1 serving ``root`` with ``token`` and environment ``env``, its own process group;
    returns (process, url, log file) once its API answers (a RuntimeError after ``wait_s`` or if it exits)."""
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--allow-root", "--ServerApp.open_browser=False"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(int(wait_s / 0.5)):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            return proc, url, log
        except OSError:
            if proc.poll() is not None:
                log.close()
                raise RuntimeError("jupyter lab exited: " + (root / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    stop_lab(proc, log)
    raise RuntimeError(f"jupyter lab did not start in {wait_s:.0f} s")


def stop_lab(proc, log):
    """Stop the server and its kernels (the whole process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def run_all(page, url, name, token: str = TOKEN, timeout_s: float = 1800) -> float:
    """Open notebook ``name`` in a fresh workspace, run all cells and wait until no prompt shows [*] and the
    kernel is idle; returns the seconds that took."""
    page.goto(f"{url}/lab/tree/{name}?token={token}&reset")   # a fresh workspace: only this notebook open
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Cell')",
                           timeout=120_000)
    page.wait_for_function("""() => { const p = window.jupyterapp.shell.currentWidget;
        return p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel &&
               p.sessionContext.session.kernel.status === 'idle'; }""", timeout=120_000)
    start = time.perf_counter()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_timeout(1000)
    page.wait_for_function("""() => { const prompts = [...document.querySelectorAll('""" + PANEL + """ .jp-InputPrompt')];
        const busy = prompts.some(p => p.textContent.includes('*'));
        const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        return !busy && k.status === 'idle'; }""", timeout=int(timeout_s * 1000), polling=1000)
    return time.perf_counter() - start


def error_outputs(page) -> list[str]:
    """The error outputs (tracebacks) of the notebook in front."""
    texts = page.locator(f'{PANEL} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    return [t for t in texts if "Traceback" in t or "Error" in t]


def enabled_sliders(interact) -> list[int]:
    """Indices of a widget's sliders that are not disabled."""
    handles = interact.locator(".noUi-handle")
    return [i for i in range(handles.count())
            if not handles.nth(i).evaluate("h => !!h.closest('[disabled]') || !!h.closest('.mod-disabled')")]


def _slider_name(interact, index) -> str:
    return interact.locator(".widget-slider").nth(index).locator(".widget-label").inner_text().strip()


def _move(page, interact, index, direction) -> dict:
    """One key press on slider ``index``; returns the page's record once the new figure is painted."""
    handle = interact.locator(".noUi-handle").nth(index)
    handle.scroll_into_view_if_needed()
    interact.locator("img").first.scroll_into_view_if_needed()
    handle.focus()
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    at_min = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemin")
    key = "ArrowLeft" if (direction < 0 and not at_min) or at_max else "ArrowRight"
    interact.evaluate(ARM)
    page.wait_for_timeout(50)
    handle.press(key)
    page.wait_for_function("() => window.__sgLatency.done || window.__sgLatency.error", timeout=120_000, polling=10)
    rec = page.evaluate("""() => { const r = window.__sgLatency; r.stop();
        return {t0: r.t0, first: r.first, painted: r.painted, view_ms: r.view_ms, render_ms: r.render_ms,
                error: r.error || null}; }""")
    if rec["error"]:
        raise RuntimeError(f"the widget reported an error after moving slider {index}:\n"
                           + "\n".join(interact.locator(".jp-OutputArea-output").all_inner_texts())[-3000:])
    return {"key": key, "first_ms": rec["first"] - rec["t0"] if rec["first"] is not None else None,
            "total_ms": rec["painted"] - rec["t0"], "view_ms": rec["view_ms"], "render_ms": rec["render_ms"]}


def _p95(values):
    """The 95th percentile by nearest rank: the smallest value with at least 95 % of the values at or below it."""
    v = sorted(values)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)]


def summarise(widget: str, moves: list[dict]) -> dict:
    """Median and 95th percentile (nearest rank) of each timing over every move of a widget, and the targets."""
    kind = "mnist" if widget in MNIST else "2d"
    out = {"kind": kind, "n_moves": len(moves)}
    for key in ("first_ms", "total_ms", "view_ms", "render_ms"):
        vals = [m[key] for m in moves if m[key] is not None]
        out[key] = {"median": statistics.median(vals), "p95": _p95(vals)} if vals else None
    rest = [m["total_ms"] - m["view_ms"] - m["render_ms"] for m in moves]
    out["rest_ms"] = {"median": statistics.median(rest), "p95": _p95(rest)}
    out["targets"] = {k: {"p95_target": t, "p95": out[k]["p95"], "met": out[k]["p95"] <= t}
                      for k, t in TARGETS[kind].items()}
    return out


def _commit() -> str:
    """The commit measured (``-dirty`` when the working tree has changes)."""
    from scoregen_lite.artifacts import commit_id

    return commit_id()


def _cpu() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "CPU"
    return f"{model}, {os.cpu_count()} cores"


def table(res: dict) -> str:
    from scoregen_lite.courseware.results import latency_rows

    return "\n".join([f"Widget latency, {res['mode']} mode, {res['device']}, {res['browser']} ({res['date']}); "
                      f"{res['moves_per_slider']} moves per slider, milliseconds, median / 95th percentile:", "",
                      "| widget | notebook | moves | first response | new figure painted | kernel: view | kernel: PNG | "
                      "messaging + paint | target (95th pct.) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
                      *latency_rows(res)]) + "\n"


def main(argv=None) -> int:
    args = parse(argv)
    if args.resummarise:
        path = Path(args.resummarise)
        res = json.loads(path.read_text())
        for w in res["widgets"]:
            w["summary"] = summarise(w["widget"], w["moves"])
        print(table(res))
        path.write_text(json.dumps(res, indent=1) + "\n")
        print(f"rewrote the summaries of {path}")
        return 0
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("error: Chromium is not installed (apt-get install chromium)")
    unknown = [n for n in args.notebooks if n not in WIDGETS]
    if unknown:
        raise SystemExit(f"error: --notebooks {unknown} unknown; choose from {list(WIDGETS)}")
    root = Path(tempfile.mkdtemp(prefix="sg-latency-"))
    for name in args.notebooks:
        shutil.copy(REPO / "notebooks" / name, root / name)
    res = {"command": "python benchmarks/widget_latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "device": _cpu(), "mode": "quick" if args.quick else "full", "date": time.strftime("%Y-%m-%d"),
           "commit": _commit(),
           "moves_per_slider": args.moves, "targets": TARGETS, "widgets": [], "notebook_seconds": {}}
    env = {k: v for k, v in os.environ.items() if k != "SCOREGEN_QUICK"}
    if args.quick:
        env["SCOREGEN_QUICK"] = "1"
    proc, url, log = start_lab(root, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROME_ARGS)
            res["browser"] = f"Chromium {browser.version}"
            for name in args.notebooks:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                res["notebook_seconds"][name] = run_all(page, url, name)
                errors = error_outputs(page)
                if errors:
                    raise RuntimeError(f"{name}: error output after running all cells:\n{errors[0][-2000:]}")
                print(f"{name}: ran in {res['notebook_seconds'][name]:.0f} s", flush=True)
                interacts = page.locator(f"{PANEL} .widget-interact")
                page.wait_for_function(f"() => document.querySelectorAll('{PANEL} .widget-interact img').length >= "
                                       f"{len(WIDGETS[name])}", timeout=120_000)
                for i, widget in enumerate(WIDGETS[name]):
                    w = interacts.nth(i)
                    w.scroll_into_view_if_needed()
                    moves = []
                    for k in enabled_sliders(w):
                        slider = _slider_name(w, k)
                        for j in range(args.moves):
                            m = _move(page, w, k, +1 if j % 2 == 0 else -1)
                            moves.append({"slider": slider, **m})
                            print(f"  {widget} {slider:10s} {m['key']:10s} first {m['first_ms'] or 0:6.0f} ms, "
                                  f"painted {m['total_ms']:6.0f} ms (view {m['view_ms']:.0f}, png {m['render_ms']:.0f})",
                                  flush=True)
                    res["widgets"].append({"widget": widget, "notebook": name, "moves": moves,
                                           "summary": summarise(widget, moves)})
                page.close()
            browser.close()
    finally:
        stop_lab(proc, log)
        shutil.rmtree(root, ignore_errors=True)
    print(table(res))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
