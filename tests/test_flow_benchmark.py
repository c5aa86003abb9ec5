"""benchmarks/flow_cpu.py's own code path at toy size (no claims): the JSON notebook 11 renders, one row per
model, sampler and NFE, with NFE as the registry counts it and the manifest's EM-500 reference recorded."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_flow_benchmark_runs_tiny(tmp_path, shared_mnist, classifier_cache):
    env = dict(os.environ, SCOREGEN_DATA=str(shared_mnist.parent), SCOREGEN_CACHE=str(classifier_cache))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "flow_cpu.py"
    out = tmp_path / "flow_cpu_run1.json"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--models", "mnist_ve", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["complete"] and res["n_samples"] == 32 and res["heldout"] == "train[-500:]"
    got = [(row["model"], row["sampler"], row["n_steps"], row["nfe"]) for row in res["rows"]]
    assert got == [("mnist_ve", "flow-euler", 4, 4), ("mnist_ve", "flow-heun", 2, 3), ("mnist_ve", "edm", 2, 3),
                   ("mnist_ve", "edm", 2, 3), ("mnist_ve", "edm", 2, 3), ("mnist_ve", "edm", 2, 3)]
    assert [row.get("churn") for row in res["rows"]] == [None, None, None, None, 40.0, 40.0]
    ve = res["checkpoints"]["mnist_ve"]
    assert ve["manifest_frechet_heldout"] > 0 and ve["manifest_nfe"] == 500
    from scoregen_lite.courseware import results  # what the benchmark writes is what notebook 11 renders
    table = results.flow_table(tmp_path)
    assert "| mnist_ve | flow-euler | " in table and "| mnist_ve | edm, churn 40 | " in table and "flow_cpu_run1.json" in table
    bad = subprocess.run([sys.executable, str(script), "--nfe", "5", "--out", str(tmp_path / "x.json")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--nfe 5" in bad.stderr and "even" in bad.stderr
