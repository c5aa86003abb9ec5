"""The widget-latency benchmark's arithmetic (benchmarks/widget_latency.py): the summary of a widget's moves
on known values, and the committed runs rendered with every target's verdict."""
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


def test_summary_of_known_moves(bench):
    """Ten moves of 100..1000 ms: median 550, nearest-rank 95th percentile the largest (index round(0.95 * 9)
    = 9); the kernel parts are subtracted from the total; a 2D widget misses 250 ms by 750."""
    moves = [{"first_ms": 10.0 * k, "total_ms": 100.0 * k, "view_ms": 60.0 * k, "render_ms": 20.0 * k}
             for k in range(1, 11)]
    s = bench.summarise("langevin_explorer", moves)
    assert s["kind"] == "2d" and s["n_moves"] == 10
    assert s["total_ms"] == {"median": 550.0, "p95": 1000.0}
    assert s["first_ms"] == {"median": 55.0, "p95": 100.0}
    assert s["rest_ms"]["median"] == pytest.approx(110.0) and s["rest_ms"]["p95"] == pytest.approx(200.0)
    assert s["targets"] == {"total_ms": {"p95_target": 250.0, "p95": 1000.0, "met": False}}
    mnist = bench.summarise("guidance_explorer", moves)
    assert mnist["targets"]["first_ms"]["met"] and mnist["targets"]["total_ms"]["met"]   # 100 <= 100, 1000 <= 1500
    # nearest rank: of 20 moves the 19th smallest; one slow move in 20 is above the 95th percentile, two are not
    assert bench._p95([5.0] * 19 + [100.0]) == 5.0 and bench._p95([5.0] * 18 + [100.0] * 2) == 100.0
    assert bench._p95([5.0] * 14 + [100.0]) == 100.0        # of 15 moves the 15th: ceil(0.95 * 15) = 15


def test_committed_latency_runs_are_rendered_with_their_verdicts():
    runs = sorted(sg.artifacts.results_dir().glob("widget_latency_run*.json"))
    assert runs, "no committed widget-latency run"
    table = sg.results.widget_latency_table()
    for path in runs:
        res = json.loads(path.read_text())
        assert res["mode"] == "full" and len(res["widgets"]) == 8
        for w in res["widgets"]:
            t = w["summary"]["total_ms"]
            assert f"`{w['widget']}`" in table and f"{t['median']:.0f} / {t['p95']:.0f}" in table
            for name, verdict in w["summary"]["targets"].items():
                assert verdict["met"] == (verdict["p95"] <= verdict["p95_target"])
