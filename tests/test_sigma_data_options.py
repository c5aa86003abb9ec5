"""``train-mnist --sigma-data / --p-mean``, the settings of benchmarks/sigma_data_cpu.py and
``sg.results.sigma_data_table`` (issue 32: EDM's sigma_data and P_mean for the course's [0, 1] digits)."""
from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite import mnist
from scoregen_lite.images.cli import _parser, main

ROOT = Path(__file__).resolve().parents[1]


def _captured_config(monkeypatch, *argv):
    """Run ``train-mnist`` with ``argv`` and return the config it would train, without training."""
    seen = {}

    def fake_train_model(out_dir, config, **kwargs):
        seen["config"] = config
        return None, None, {"steps": 0, "seconds": 1.0, "images_per_s": 0.0}

    monkeypatch.setattr(mnist, "train_model", fake_train_model)
    assert main(["train-mnist", "--out", "unused", *argv]) == 0
    return seen["config"]


def test_parser_defaults_are_none_so_the_config_keeps_edms_values(monkeypatch):
    args = _parser().parse_args(["train-mnist"])
    assert args.sigma_data is None and args.p_mean is None
    config = _captured_config(monkeypatch, "--cpu")
    assert (config.sigma_data, config.p_mean, config.p_std) == (0.5, -1.2, 1.2)
    assert (sg.image_training.CPU.sigma_data, sg.image_training.CPU.p_mean) == (0.5, -1.2)   # the shipped recipe is unchanged


def test_options_reach_the_config_and_survive_a_recipe(monkeypatch):
    config = _captured_config(monkeypatch, "--cpu", "--sigma-data", "0.3086", "--p-mean", "-1.8931")
    assert (config.sigma_data, config.p_mean, config.p_std) == (0.3086, -1.8931, 1.2)
    config = _captured_config(monkeypatch, "--cpu", "--recipe", "edm", "--sigma-data", "0.31", "--p-mean", "-1.9")
    assert (config.precond, config.sigma_data, config.p_mean) == ("edm", 0.31, -1.9)


@pytest.mark.parametrize("argv, words", [(["--sigma-data", "0"], "--sigma-data 0.0 is invalid"),
                                         (["--sigma-data", "-0.3"], "positive"),
                                         (["--p-mean", "nan"], "--p-mean nan is invalid")])
def test_bad_values_get_a_clear_error(monkeypatch, capsys, argv, words):
    monkeypatch.setattr(mnist, "train_model", lambda *a, **k: pytest.fail("trained with a bad value"))
    assert main(["train-mnist", "--out", "unused", *argv]) == 2
    assert words in capsys.readouterr().err


def test_the_options_change_what_is_trained():
    """sigma_data reaches the network's preconditioning and P_mean the noise levels drawn: the same seed and
    batches give the same losses with the same settings and different ones with either changed."""
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    base = replace(sg.image_training.QUICK_CPU.with_recipe("edm"), n_steps=3, warmup_steps=1, ema_decay=None)

    def run(**kw):
        net, _, info = sg.image_training.train_images(x, replace(base, **kw), device="cpu", progress=False, log=lambda *a: None)
        return net, info["losses"]

    net, ref = run()
    assert run()[1] == ref and net.sigma_data == 0.5
    net, by_sigma = run(sigma_data=0.31)
    assert net.sigma_data == 0.31 and by_sigma != ref
    assert run(p_mean=-1.9)[1] != ref


def _benchmark():
    spec = importlib.util.spec_from_file_location("sigma_data_cpu", ROOT / "benchmarks" / "sigma_data_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_settings_scale_edms_constants_to_the_data():
    """[0, 1] = ([-1, 1] + 1) / 2 halves every noise level: P_mean = -1.2 + ln(1/2); sigma_data = the data's std."""
    s = _benchmark().settings(0.30862)
    assert s["edm_default"] == {"sigma_data": 0.5, "p_mean": -1.2, "p_std": 1.2}
    assert s["data_scaled"]["sigma_data"] == 0.3086 and s["data_scaled"]["p_std"] == 1.2
    assert s["data_scaled"]["p_mean"] == pytest.approx(-1.8931, abs=1e-4)
    assert math.exp(s["data_scaled"]["p_mean"]) == pytest.approx(0.5 * math.exp(-1.2), rel=1e-3)  # median sigma halved


def _result():
    run = lambda sd, pm, em, heun: {  # noqa: E731
        "setting": {"sigma_data": sd, "p_mean": pm, "p_std": 1.2},
        "train": {"steps": 1234, "seconds": 600.4, "images_per_s": 263.0, "precision": "float32"},
        "samplers": {"EM-100": {"nfe": 100, "frechet": em, "mean": sum(em) / 2, "sd": 1.0},
                     "Heun-18": {"nfe": 35, "frechet": heun, "mean": sum(heun) / 2, "sd": 2.0}},
        "heun_over_em": (sum(heun) / 2) / (sum(em) / 2)}
    return {"device": "CPU, 2 cores", "steps": 1234, "n_samples": 1000, "sample_seeds": 2,
            "data": {"n_heldout": 500, "train_std": 0.30862},
            "samplers": {"EM-100": {"sampler": "em", "n_steps": 100}, "Heun-18": {"sampler": "edm", "n_steps": 18}},
            "floor": {"frechet": [7.0, 8.0], "mean": 7.5, "sd": 0.70711},
            "runs": {"edm_default": run(0.5, -1.2, [30.0, 32.0], [54.0, 56.0]),
                     "data_scaled": run(0.3086, -1.8931, [19.0, 21.0], [29.0, 31.0])}}


def test_sigma_data_table_known_values(tmp_path):
    table = sg.results.sigma_data_table(_result())
    lines = table.splitlines()
    assert lines[2] == ("| setting | sigma_data | P_mean | P_std | steps | train s | FD EM-100 | FD Heun-18 | "
                        "Heun-18 / EM-100 |")
    assert "| edm_default | 0.5 | -1.200 | 1.2 | 1,234 | 600 | 31.00 ± 1.00 | 55.00 ± 2.00 | 1.77 |" in lines
    assert "| data_scaled | 0.3086 | -1.893 | 1.2 | 1,234 | 600 | 20.00 ± 1.00 | 30.00 ± 2.00 | 1.50 |" in lines
    assert "| floor: training digits | | | | | | 7.50 ± 0.71 | 7.50 ± 0.71 | |" in lines
    assert lines[0].startswith("1,234 training steps per setting") and "std 0.309" in lines[0]
    import json

    path = tmp_path / "r.json"
    path.write_text(json.dumps(_result()))
    assert sg.results.sigma_data_table(path) == table
    with pytest.raises(FileNotFoundError, match="sigma_data_cpu.py"):
        sg.results.sigma_data_table(tmp_path / "missing.json")
