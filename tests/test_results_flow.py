"""sg.results.flow_table and its loaders (notebook 11): the flow-matching benchmark's Frechet distances against NFE,
per model and sampler, rendered from small fixture files; every run and its device shown, runs in the order they
were made, a checkpoint that is not the shipped one flagged, a missing file or an incomplete row refused."""
import json

import pytest

from scoregen_lite import artifacts
from scoregen_lite.courseware import results

SHIPPED_VE = json.loads((artifacts.course_dir() / "checkpoints" / "mnist_ve.json").read_text())["sha256"]


def _run(device, rows, **extra):
    return {"device": device, "n_samples": 2000, "n_heldout": 500, "frechet_real": 7.76,
            "checkpoints": {"mnist_flow": {"sha256": "f" * 64}, "mnist_ve": {"sha256": SHIPPED_VE}},
            "rows": rows, **extra}


ROWS = [{"model": "mnist_flow", "sampler": "heun", "nfe": 9, "frechet": 14.25, "seconds": 3.0},
        {"model": "mnist_flow", "sampler": "heun", "nfe": 19, "frechet": 12.31},
        {"model": "mnist_flow", "sampler": "euler", "nfe": 5, "frechet": 40.04},
        {"model": "mnist_ve", "sampler": "heun", "nfe": 19, "frechet": 30.96},
        {"model": "mnist_ve", "sampler": "euler", "nfe": 100, "frechet": 29.5}]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "flow_cpu_run2.json").write_text(json.dumps(_run("CPU (2 cores)", ROWS, note="A shared machine.")))
    (tmp_path / "flow_cpu_run10.json").write_text(json.dumps(_run("NVIDIA H100", ROWS[:2])))
    (tmp_path / "other_run1.json").write_text(json.dumps({"rows": []}))      # another benchmark's file: not read
    return tmp_path


def test_known_values_rendered_per_run_model_and_sampler(folder):
    table = results.flow_table(folder)
    lines = table.splitlines()
    run2 = lines.index("| model | sampler | 5 NFE | 9 NFE | 19 NFE | 100 NFE |")
    assert lines[run2 - 2] == ("`flow_cpu_run2`: 2,000 digits per sampler on CPU (2 cores), Frechet distance to the 500 "
                               "held-out digits (as many training digits score 7.8); checkpoints `mnist_flow` (sha256 "
                               "ffffffff, not the checkpoint shipped now), `mnist_ve` (sha256 " + SHIPPED_VE[:8] + ").")
    assert lines[run2 + 1] == "| --- | --- | --- | --- | --- | --- |"
    assert lines[run2 + 2:run2 + 6] == ["| mnist_flow | heun |  | 14.2 | 12.3 |  |",
                                        "| mnist_flow | euler | 40.0 |  |  |  |",
                                        "| mnist_ve | heun |  |  | 31.0 |  |",
                                        "| mnist_ve | euler |  |  |  | 29.5 |"]
    assert "A shared machine." in lines[run2 + 6:run2 + 9] and not any("marked (n)" in line for line in lines)
    run10 = lines.index("| model | sampler | 9 NFE | 19 NFE |")
    assert run10 > run2 and "on NVIDIA H100" in lines[run10 - 2]                # run 10 after run 2: by run number
    assert lines[run10 + 2] == "| mnist_flow | heun | 14.2 | 12.3 |"
    assert lines[-1] == "Source: `benchmarks/results/flow_cpu_run2.json`, `benchmarks/results/flow_cpu_run10.json`."


def test_nfes_one_apart_share_a_column(tmp_path):
    """Euler at N and Heun at 2N - 1 evaluations side by side: 19 goes in the 20 column, marked (19); 18 stays apart
    (one merge per column), and a table with no merge carries no footnote."""
    rows = [{"model": "m", "sampler": "flow-euler", "nfe": 20, "frechet": 41.0},
            {"model": "m", "sampler": "flow-heun", "nfe": 19, "frechet": 36.24},
            {"model": "m", "sampler": "edm", "nfe": 18, "frechet": 30.0}]
    (tmp_path / "flow_cpu_run1.json").write_text(json.dumps(_run("CPU", rows)))
    lines = results.flow_table(tmp_path).splitlines()
    head = lines.index("| model | sampler | 18 NFE | 20 NFE |")
    assert lines[head + 2:head + 5] == ["| m | flow-euler |  | 41.0 |", "| m | flow-heun |  | 36.2 (19) |",
                                        "| m | edm | 30.0 |  |"]
    assert any("marked (n) took n evaluations" in line for line in lines)


def test_loaders_give_every_run_in_order_and_the_newest(folder):
    assert list(results.flow_runs(folder)) == ["flow_cpu_run2", "flow_cpu_run10"]
    newest = results.load_flow(folder)
    assert newest["name"] == "flow_cpu_run10" and newest["device"] == "NVIDIA H100" and len(newest["rows"]) == 2


def test_missing_files_are_refused_naming_the_script(tmp_path):
    for where in (tmp_path, tmp_path / "absent"):
        with pytest.raises(FileNotFoundError, match=r"flow_cpu\*\.json.*benchmarks/flow_cpu\.py"):
            results.flow_table(where)
        with pytest.raises(FileNotFoundError, match="flow-matching"):
            results.load_flow(where)


@pytest.mark.parametrize("key", ["model", "sampler", "nfe", "frechet"])
def test_an_incomplete_row_is_refused_naming_the_file(tmp_path, key):
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != key}]
    (tmp_path / "flow_cpu_run1.json").write_text(json.dumps(_run("CPU", rows)))
    with pytest.raises(KeyError, match=rf"flow_cpu_run1\.json.*no '{key}'"):
        results.flow_table(tmp_path)


def test_a_run_without_rows_is_refused(tmp_path):
    (tmp_path / "flow_cpu_run1.json").write_text(json.dumps(_run("CPU", [])))
    with pytest.raises(KeyError, match="flow_cpu_run1.json"):
        results.flow_runs(tmp_path)
