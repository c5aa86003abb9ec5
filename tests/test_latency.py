"""The widget-latency benchmark's arithmetic (benchmarks/widget_latency.py): one move's timings from the page's
record, the summary of a widget's moves on known values (issue 35's targets and the comparison with run 1), and
the committed runs rendered with every target's verdict (runs before issue 35 have no preview)."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest

import scoregen_lite as sg

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("widget_latency", REPO / "benchmarks" / "widget_latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _moves(k_max=10, preview=True):
    """Ten moves of 100..1000 ms (the final figure), the preview painted at a fifth of that."""
    return [{"first_ms": 10.0 * k, "preview_ms": 20.0 * k if preview else 100.0 * k, "total_ms": 100.0 * k,
             "view_ms": 50.0 * k, "render_ms": 10.0 * k, "preview_view_ms": 8.0 * k if preview else None,
             "preview_render_ms": 2.0 * k if preview else None,
             "states": ["computing", "preview", "done"] if preview else ["computing", "done"]}
            for k in range(1, k_max + 1)]


def test_summary_of_known_moves(bench):
    """Ten moves: median 550 and nearest-rank 95th percentile the largest (ceil(0.95 * 10) = 10th); the kernel's
    parts (preview and full) are subtracted from the total; a 2D widget's first figure (200) meets 250 and its
    final figure (1000) meets 1000; an MNIST widget's targets are issue 23's."""
    s = bench.summarise("langevin_explorer", _moves())
    assert s["kind"] == "2d" and s["n_moves"] == 10 and s["previews"] == 10
    assert s["total_ms"] == {"median": 550.0, "p95": 1000.0}
    assert s["preview_ms"] == {"median": 110.0, "p95": 200.0}
    assert s["first_ms"] == {"median": 55.0, "p95": 100.0}
    assert s["rest_ms"]["median"] == pytest.approx(165.0) and s["rest_ms"]["p95"] == pytest.approx(300.0)
    assert s["targets"] == {"preview_ms": {"p95_target": 250.0, "p95": 200.0, "met": True},
                            "total_ms": {"p95_target": 1000.0, "p95": 1000.0, "met": True}}
    slow = bench.summarise("annealed_explorer", [{**m, "preview_ms": 3 * m["preview_ms"]} for m in _moves()])
    assert slow["targets"]["preview_ms"] == {"p95_target": 250.0, "p95": 600.0, "met": False}
    mnist = bench.summarise("guidance_explorer", _moves(preview=False))
    assert mnist["kind"] == "mnist" and mnist["previews"] == 0 and mnist["preview_view_ms"] is None
    assert mnist["targets"]["first_ms"]["met"] and mnist["targets"]["total_ms"]["met"]   # 100 <= 100, 1000 <= 1500
    assert set(mnist["targets"]) == {"first_ms", "total_ms"} and "baseline" not in mnist
    old = [{k: v for k, v in m.items() if not k.startswith("preview")} for m in _moves()]    # a run before issue 35
    assert bench.summarise("sde_explorer", old)["preview_ms"] == {"median": 550.0, "p95": 1000.0}   # its only figure
    # nearest rank: of 20 moves the 19th smallest; one slow move in 20 is above the 95th percentile, two are not
    assert bench._p95([5.0] * 19 + [100.0]) == 5.0 and bench._p95([5.0] * 18 + [100.0] * 2) == 100.0
    assert bench._p95([5.0] * 14 + [100.0]) == 100.0        # of 15 moves the 15th: ceil(0.95 * 15) = 15


def test_mnist_explorers_are_compared_with_the_baseline_run(bench):
    """No worse than run 1: each target's 95th percentile at most NO_WORSE (1.1) times run 1's for that widget."""
    base = {"widgets": [{"widget": "guidance_explorer",
                         "summary": {"first_ms": {"p95": 100.0}, "total_ms": {"p95": 900.0}}}]}
    s = bench.summarise("guidance_explorer", _moves(preview=False), base)  # p95: first 100, total 1000
    assert s["baseline"] == {"first_ms": {"baseline_p95": 100.0, "p95": 100.0, "met": True},
                             "total_ms": {"baseline_p95": 900.0, "p95": 1000.0, "met": False}}   # 1000 > 990
    base["widgets"][0]["summary"]["total_ms"]["p95"] = 910.0
    assert bench.summarise("guidance_explorer", _moves(preview=False), base)["baseline"]["total_ms"]["met"]  # <= 1001
    assert "baseline" not in bench.summarise("langevin_explorer", _moves(), base)    # 2D: absolute targets only
    run1 = json.loads((REPO / "benchmarks" / "results" / "widget_latency_run1.json").read_text())
    assert bench.load_baseline(str(bench.BASELINE)) == ("widget_latency_run1.json", run1)
    assert bench.load_baseline("none") == (None, None)


def test_one_move_from_the_page_record(bench):
    """The page records the key event (t0), the status line's first change, when each new image was painted (an
    image replaced before it was painted has none) and which image was on its way when the status said done."""
    rec = {"t0": 1000.0, "first": 1040.0, "states": ["computing", "preview", "done"], "srcs": 3,
           "paints": {"2": 1230.0, "3": 1800.0}, "doneSrc": 3, "view_ms": 500.0, "render_ms": 40.0,
           "preview_view_ms": 120.0, "preview_render_ms": 30.0}
    m = bench.move_record("ArrowRight", rec)
    assert (m["first_ms"], m["preview_ms"], m["total_ms"]) == (40.0, 230.0, 800.0)
    assert m["states"] == ["computing", "preview", "done"] and m["figures"] == 3 and m["preview_view_ms"] == 120.0
    one = bench.move_record("ArrowLeft", {**rec, "paints": {"1": 1500.0}, "doneSrc": 1, "srcs": 1, "first": None,
                                          "preview_view_ms": None, "preview_render_ms": None})
    assert one["preview_ms"] == one["total_ms"] == 500.0 and one["first_ms"] is None


def test_the_flow_explorer_is_measured_as_a_2d_explorer(bench):
    assert bench.WIDGETS["11_flow_matching.ipynb"] == ["flow_explorer"] and "flow_explorer" not in bench.MNIST
    assert bench.summarise("flow_explorer", _moves())["kind"] == "2d"
    assert bench.next_run(REPO / "benchmarks" / "results").name != "widget_latency_run1.json"


def _new_run(bench, run1: dict) -> dict:
    """A run in the format of issue 35 from run 1's moves (every 2D move given a preview at a third of its time)."""
    res = copy.deepcopy(run1)
    res.update(targets=bench.TARGETS, baseline="widget_latency_run1.json", no_worse=bench.NO_WORSE, date="2027-01-01")
    for w in res["widgets"]:
        for m in w["moves"]:
            two_d = w["widget"] not in bench.MNIST
            m.update(preview_ms=m["total_ms"] / 3 if two_d else m["total_ms"], preview_view_ms=10.0 if two_d else None,
                     preview_render_ms=5.0 if two_d else None)
        w["summary"] = bench.summarise(w["widget"], w["moves"], run1)
    return res


def test_old_and_new_runs_are_rendered_with_their_verdicts(bench, tmp_path):
    """Run 1 (no preview: its only figure is both the first and the final) and a run of issue 35's format side by
    side, in the order made (run2 before run10), the newest's verdicts on top."""
    run1 = json.loads((REPO / "benchmarks" / "results" / "widget_latency_run1.json").read_text())
    (tmp_path / "widget_latency_run1.json").write_text(json.dumps(run1))
    new = _new_run(bench, run1)
    (tmp_path / "widget_latency_run10.json").write_text(json.dumps(new))
    (tmp_path / "widget_latency_run2.json").write_text(json.dumps(run1))
    table = sg.results.widget_latency_table(tmp_path)
    assert table.index("`widget_latency_run1.json`: full") < table.index("`widget_latency_run2.json`: full") \
        < table.index("`widget_latency_run10.json`: full")
    assert table.startswith("Newest run, `widget_latency_run10.json`")
    lang = next(line for line in table.splitlines() if line.startswith("| `langevin_explorer`"))
    assert "| 333 / 440 | 333 / 440 | n/a |" in lang and "final figure <= 250: missed by 190" in lang     # run 1
    s = next(w["summary"] for w in new["widgets"] if w["widget"] == "annealed_explorer")
    row = [line for line in table.splitlines() if line.startswith("| `annealed_explorer`")][-1]
    p, t = s["preview_ms"], s["total_ms"]
    assert f"| {p['median']:.0f} / {p['p95']:.0f} | {t['median']:.0f} / {t['p95']:.0f} | 10 / 10 + 5 / 5 |" in row
    assert "first figure <= 250: missed by 145" in row and "final figure <= 1000: missed by 185" in row   # 395, 1185
    assert "`annealed_explorer` (first figure <= 250: missed by 145" in table.splitlines()[0]
    guid = [line for line in table.splitlines() if line.startswith("| `guidance_explorer`")][-1]
    assert "no worse than the baseline: first response 51 vs 51 met, final figure 1001 vs 1001 met" in guid
    assert "compared with `widget_latency_run1.json` (no worse: 95th percentile at most 1.1 times its)" in table


def test_committed_latency_runs_are_rendered_with_their_verdicts():
    runs = sorted(sg.artifacts.results_dir().glob("widget_latency_run*.json"))
    assert runs, "no committed widget-latency run"
    table = sg.results.widget_latency_table()
    run1 = {"langevin_explorer", "dsm_explorer", "schedule_explorer", "annealed_explorer", "sde_explorer",
            "fast_sampling_explorer", "guidance_explorer", "inpainting_explorer"}
    for path in runs:
        res = json.loads(path.read_text())
        assert res["mode"] == "full" and {w["widget"] for w in res["widgets"]} >= run1
        assert f"`{path.name}`: full mode, {res['device']}" in table
        for w in res["widgets"]:
            t = w["summary"]["total_ms"]
            assert f"`{w['widget']}`" in table and f"{t['median']:.0f} / {t['p95']:.0f}" in table
            for name, verdict in w["summary"]["targets"].items():
                assert verdict["met"] == (verdict["p95"] <= verdict["p95_target"])
