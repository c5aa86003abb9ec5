"""Notebook 11's widget, ``sg.widgets.flow_view`` / ``flow_explorer``: the straight path's exact flow against the
VE/VP probability-flow ODE from the same noise. Known values where there are any (one Euler step of the exact
marginal velocity lands every point on the target's mean), the measured distances otherwise (ring of 8, 200 points;
margins of a few standard errors of the energy distance, whose noise floor at 200 points is -0.003 +- 0.006)."""
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import scoregen_lite as sg

#: the energy distance's scatter at 200 points (the noise floor's std, measured: 0.0064); the margins below are
#: three of these
SE = 0.0064


@pytest.fixture(scope="module")
def views():
    """flow_view's info at the settings the tests read, computed once."""
    out = {}
    for n in (1, 2, 4, 20):
        for path in ("VE", "VP"):
            fig, info = sg.widgets.flow_view(n_steps=n, path=path)
            plt.close(fig)
            out[n, path] = info
    return out


def test_view_returns_figure_and_info():
    fig, info = sg.widgets.flow_view(t=0.3, n_steps=3, path="VP", target="two modes (0.2/0.8)", n_points=50)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 3
    assert info["nfe"] == info["n_steps"] == 3 and info["path"] == "VP" and info["t"] == 0.3
    assert info["end_straight"].shape == info["end_ode"].shape == info["at_t"].shape == (50, 2)
    assert len(info["energy_floor"]) == 2 and info["energy_floor"][1] > 0
    assert "energy distance" in fig.axes[1].get_title() and "VP probability-flow ODE" in fig.axes[2].get_title()
    plt.close(fig)


def test_one_straight_step_lands_every_point_on_the_mean(views):
    """v_1(x) = x - E[x(0)], so one Euler step from t = 1 to 0 gives z - (z - E[x(0)]) = E[x(0)] for every z: the
    exact marginal flow is not straight (its paths bend), and one step collapses the samples to a point. The energy
    distance is then that of a point mass at the mean, 2 E|m - Y| - E|Y - Y'|, estimated here independently."""
    for target in ("ring of 8", "two modes (0.2/0.8)"):
        p = sg.densities.target(target, dtype=torch.float64)
        _, info = sg.widgets.flow_view(n_steps=1, target=target)
        plt.close("all")
        mean = (p.weights[:, None] * p.means).sum(0)
        torch.testing.assert_close(info["end_straight"], mean.expand(200, 2), rtol=0, atol=1e-12)
        y = p.sample(4000, generator=torch.Generator().manual_seed(7))
        point_mass = sg.metrics.energy_distance(mean.expand(200, 2).clone(), y)
        assert info["energy_distance_straight"] == pytest.approx(point_mass, abs=0.06)   # 2.90 (ring), 3 SE of both


def test_fewer_steps_larger_distance_for_the_ve_ode(views):
    """The VE probability-flow ODE on notebook 06's uniform grid in t: one Euler step throws the points far out
    (measured 33.6, 198 of 200 outside the window); 4 steps 0.100; 20 steps 0.0007, at the floor. (Not monotone in
    between: 2 steps 0.228, 3 steps 0.599; an Euler step in t is a step of ln(1000)/N = 6.9/N in log sigma, which overshoots.)"""
    one, four, twenty = (views[n, "VE"] for n in (1, 4, 20))
    assert one["energy_distance_ode"] > 30 and one["outside_ode"] >= 190
    assert four["energy_distance_ode"] == pytest.approx(0.100, abs=3 * SE)
    assert twenty["energy_distance_ode"] < twenty["energy_floor"][0] + 3 * SE
    assert one["energy_distance_ode"] > four["energy_distance_ode"] > twenty["energy_distance_ode"] + 3 * SE


def test_straight_flow_against_the_odes(views):
    """Measured with the same noise: at 4 steps the straight path (0.034) beats the VE ODE (0.100) by 10 SE, and
    the VP ODE on its uniform grid is already at the floor (-0.006); at 2 steps neither is (straight 0.221, VE
    0.228, VP 0.338); at 20 the straight flow is at the floor (-0.013)."""
    st = {n: views[n, "VE"]["energy_distance_straight"] for n in (1, 2, 4, 20)}
    assert views[4, "VP"]["energy_distance_straight"] == st[4]                       # the same noise, the same flow
    assert st[2] == pytest.approx(0.221, abs=3 * SE) and st[4] == pytest.approx(0.034, abs=3 * SE)
    assert st[1] > st[2] > st[4] > st[20]
    assert views[4, "VE"]["energy_distance_ode"] - st[4] > 6 * SE
    assert views[4, "VP"]["energy_distance_ode"] < views[4, "VP"]["energy_floor"][0] + 3 * SE < st[4]
    assert st[20] < views[20, "VE"]["energy_floor"][0] + 3 * SE
    assert views[2, "VP"]["energy_distance_ode"] == pytest.approx(0.338, abs=3 * SE)


def test_trajectories_in_the_straight_paths_coordinates():
    """Both paths start from the same noise: the ODE's x(1) = prior_std z, scaled by 1 / (alpha_1 + std_1), is z up
    to that ratio (VE: 10 / (1 + 9.99999...)); the times u decrease; the straight path's nodes are
    sg.flow.euler_flow's path."""
    import functools

    traj = sg.widgets.flow.flow_trajectories("ring of 8", 5, "VE")
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(traj["straight"][0], z)
    torch.testing.assert_close(traj["ode"][0], z * 10 / (1 + (10**2 - 0.01**2) ** 0.5))
    # VE's prior N(0, 10^2 I) is u = 10 / 11 of the way to the noise, not all of it; its end t = 1e-3, u = 0.0012
    assert (traj["u_ode"][:-1] > traj["u_ode"][1:]).all() and float(traj["u_ode"][0]) == pytest.approx(10 / 11, rel=1e-6)
    assert 0.001 < float(traj["u_ode"][-1]) < 0.0013
    p = sg.densities.ring(dtype=torch.float64)
    _, _, path = sg.flow.euler_flow(functools.partial(sg.flow.marginal_velocity, p), z, 5, dtype=torch.float64,
                                    return_path=True)
    torch.testing.assert_close(traj["straight"], path)
    ve = sg.sde.SDES["VE"]()
    alpha, std = ve.marginal_coeffs(torch.tensor(1e-3, dtype=torch.float64))
    torch.testing.assert_close(traj["end_ode"], traj["ode"][-1] * (alpha + std))      # x(eps), unscaled
    # the points at t are on the Euler polyline: at a node's time, that node
    at = sg.widgets.flow_view(t=0.6, n_steps=5)[1]["at_t"]
    torch.testing.assert_close(at, traj["straight"][2])
    plt.close("all")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="path='SDE'"):
        sg.widgets.flow_view(path="SDE")
    with pytest.raises(ValueError, match=r"t=1.5 is outside \[0, 1\]"):
        sg.widgets.flow_view(t=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        sg.widgets.flow_view(n_steps=0)


def _content(info):
    return tuple(v.numpy().tobytes() if isinstance(v, torch.Tensor) else repr(v)
                 for k, v in sorted(info.items()) if k != "seconds")


def test_explorer_every_control_changes_the_plot():
    """Each slider (t, steps) and the ODE buttons change what is plotted, and say so in the info."""
    w = sg.widgets.flow_explorer()
    controls = {c.description: c for c in w.children[:-1]}
    assert set(controls) == {"t", "steps", "ODE"}
    first = w.result
    assert first["t"] == 0.5 and first["n_steps"] == 4 and first["path"] == "VE"
    for name, value, key in (("t", 0.6, "t"), ("steps", 6, "n_steps"), ("ODE", "VP", "path")):
        before = _content(w.result)
        controls[name].value = value
        assert w.result[key] == pytest.approx(value) if key == "t" else w.result[key] == value
        assert _content(w.result) != before, f"moving {name!r} changed nothing plotted"
    assert w.timings[-1]["in_place"]


def test_view_updates_its_figure_in_place_exactly():
    """A figure updated in place renders the pixels of a fresh one (sg.widgets.live), a preview (detail < 1: a
    quarter of the trajectories, labelled) and the full figure drawn over it too."""
    fig, _ = sg.widgets.flow_view()
    sg.widgets.live.render_png(fig)
    for change in ({"t": 0.8}, {"n_steps": 2, "detail": 0.25}, {"n_steps": 2}, {"path": "VP"},
                   {"n_steps": 1, "t": 0.0, "detail": 0.5}, {"n_steps": 1, "t": 0.0}):
        again, _ = sg.widgets.flow_view(**change, fig=fig)
        assert again is fig
        fresh, _ = sg.widgets.flow_view(**change)
        a, b = (plt.imread(io.BytesIO(sg.widgets.live.render_png(f))) for f in (fig, fresh))
        plt.close(fresh)
        assert a.shape == b.shape and np.array_equal(a, b), f"{change}: the figure updated in place differs"
    plt.close(fig)
