"""Widgets: the plain view functions, and the ipywidgets driven by setting slider values."""
import matplotlib.pyplot as plt
import pytest

import scoregen_lite as sg


def test_langevin_view_returns_figure_and_info():
    fig, info = sg.widgets.langevin_view("ring of 8", step_size=0.05, n_steps=50, n_chains=200)
    assert isinstance(fig, plt.Figure)
    assert len(info["sample_weights"]) == 8 and abs(sum(info["sample_weights"]) - 1) < 1e-6
    assert 0 <= info["max_weight_error"] <= 1


def test_langevin_view_mala_reports_acceptance():
    _, info = sg.widgets.langevin_view("smiley", step_size=0.2, n_steps=20, sampler="MALA", n_chains=100)
    assert 0 < info["acceptance"] <= 1


def test_langevin_view_rejects_unknown_sampler():
    with pytest.raises(ValueError, match="sampler='HMC' is invalid"):
        sg.widgets.langevin_view(sampler="HMC", n_steps=1, n_chains=10)


def test_langevin_explorer_driven_by_sliders():
    w = sg.widgets.langevin_explorer(n_chains=200)
    controls = {c.description: c for c in w.children[:-1]}
    assert set(controls) >= {"target", "eps", "T", "sampler"}
    first = w.result
    assert first["target"] == "two modes (0.2/0.8)"
    controls["T"].value = 100
    assert w.result["n_steps"] == 100
    controls["eps"].value = 0.5
    assert w.result["step_size"] == pytest.approx(0.5)
    controls["target"].value = "ring of 8"
    assert w.result["target"] == "ring of 8" and len(w.result["true_weights"]) == 8
    controls["sampler"].value = "MALA"
    assert "acceptance" in w.result
    assert w.result != first
