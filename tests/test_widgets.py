"""Widgets: the plain view functions, and the ipywidgets driven by setting slider values."""
import math

import matplotlib.pyplot as plt
import pytest

import scoregen_lite as sg


def test_langevin_view_returns_figure_and_info():
    fig, info = sg.widgets.langevin_view("ring of 8", step_size=0.05, n_steps=50, n_chains=200)
    assert isinstance(fig, plt.Figure)
    assert len(info["sample_weights"]) == 8 and abs(sum(info["sample_weights"]) - 1) < 1e-6
    got, want = info["sample_weights"], info["true_weights"]
    assert info["max_weight_error"] == pytest.approx(max(abs(a - b) for a, b in zip(got, want)))
    assert info["max_weight_error"] < 0.1      # equal weights from 200 chains: 0.06 measured, SE 0.023 each
    # the failure notebook 01 teaches: from a uniform start, Langevin leaves the 0.2/0.8 modes near 0.5/0.5
    _, info = sg.widgets.langevin_view("two modes (0.2/0.8)", step_size=0.1, n_steps=400, n_chains=1000)
    assert 0.2 < info["max_weight_error"] < 0.4   # 0.308 measured


def test_langevin_view_mala_reports_acceptance():
    _, info = sg.widgets.langevin_view("smiley", step_size=0.2, n_steps=20, sampler="MALA", n_chains=100)
    assert 0 < info["acceptance"] <= 1


def test_langevin_view_reports_divergence():
    """The eps slider reaches 10^0.5; on the anisotropic Gaussian that blows the chains up: the view
    says so in its figure instead of raising inside the widget."""
    fig, info = sg.widgets.langevin_view("anisotropic Gaussian", step_size=3.0, n_steps=200, n_chains=100)
    assert info["diverged"] and "chains reached NaN/inf" in info["message"] and "median |x|" in info["message"]
    assert info["max_weight_error"] is None
    assert not sg.widgets.langevin_view("ring of 8", step_size=0.05, n_steps=10, n_chains=50)[1]["diverged"]


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


@pytest.fixture(scope="module")
def dsm_nets():
    import torch

    p = sg.densities.ring()
    data = p.sample(2000, generator=torch.Generator().manual_seed(0))
    nets = {}
    for s in (0.1, 1.0):
        torch.manual_seed(0)
        net = sg.nets.MLPScore(2, hidden=32, n_layers=2)
        sg.train.fit(net, lambda n, x, s=s: sg.losses.denoising_score_matching(n, x, s), data, n_steps=150,
                     batch_size=128, lr=3e-3, progress=False, device="cpu")
        nets[s] = net.requires_grad_(False)
    return p, nets


def test_dsm_view_and_explorer(dsm_nets):
    p, nets = dsm_nets
    fig, info = sg.widgets.dsm_view(nets, p, 1.0)
    assert info["sigma"] == 1.0 and info["error_low"] >= 0 and info["error_high"] >= 0
    with pytest.raises(ValueError, match=r"sigma=0\.5 has no trained network; choose one of \[0\.1, 1\.0\]"):
        sg.widgets.dsm_view(nets, p, 0.5)
    w = sg.widgets.dsm_explorer(nets, p)
    slider = next(c for c in w.children if getattr(c, "description", "") == "sigma")
    assert w.result["sigma"] == 0.1
    slider.value = 1.0
    assert w.result["sigma"] == 1.0
    # the large-sigma net is the better fit of its own target where q is low
    assert w.result["error_low"] < sg.widgets.dsm_view(nets, p, 0.1)[1]["error_low"]


def test_fast_sampling_explorer_driven_by_values():
    """The notebook-08 widget with the shipped MNIST checkpoint: each control changes what it names, the
    digits come from fixed noise (same settings, same digits), and the NFE follows the solver."""
    import torch

    model = sg.mnist.pretrained("mnist_ve", device="cpu", log=lambda *a: None)
    w = sg.widgets.fast_sampling_explorer(model)
    controls = {c.description: c for c in w.children[:-1]}
    assert set(controls) >= {"N", "sigma_max", "sigma_min", "rho", "churn", "solver"}
    first = w.result
    assert first["nfe"] == 2 * 18 - 1 and len(first["sigmas"]) == 18 and first["samples"].shape == (16, 1, 28, 28)
    assert first["sigmas"][0] == pytest.approx(controls["sigma_max"].value)
    controls["N"].value = 8
    assert w.result["nfe"] == 15 and len(w.result["sigmas"]) == 8
    controls["solver"].value = "euler"
    assert w.result["nfe"] == 8
    controls["solver"].value = "dpm"
    assert w.result["nfe"] == 8 and w.result["solver"] == "dpm"
    controls["rho"].value = 1.0
    sig = torch.tensor(w.result["sigmas"])
    assert torch.allclose(sig[:-1] - sig[1:], sig[0:1] - sig[1:2], rtol=1e-6)     # rho = 1: uniform steps
    controls["solver"].value = "heun"
    controls["churn"].value = 10.0
    stochastic = w.result["samples"]
    controls["churn"].value = 0.0
    controls["N"].value = 18
    controls["rho"].value = 7.0
    assert torch.equal(w.result["samples"], first["samples"])      # fixed noise: the same digits again
    assert not torch.equal(stochastic, first["samples"])
    controls["sigma_min"].value = 0.1
    assert w.result["sigmas"][-1] == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ValueError, match="sigma_max=0.01 must be larger than sigma_min=0.1"):
        sg.widgets.fast_sampling_view(model, sigma_max=0.01, sigma_min=0.1)
    with pytest.raises(ValueError, match=r"sigma_min=0.001 is below the smallest noise level the network was trained on"):
        sg.widgets.fast_sampling_view(model, sigma_min=0.001)     # below sigma_t_min = 0.00316 (t_min = 1e-5)


@pytest.fixture(scope="module")
def mnist_models():
    return (sg.mnist.pretrained("mnist_ve", device="cpu", log=lambda *a: None),
            sg.mnist.pretrained("mnist_cond", device="cpu", log=lambda *a: None))


@pytest.mark.slow
def test_guidance_explorer_driven_by_values(mnist_models, shared_mnist, classifier_cache, monkeypatch):
    """Notebook 09's guidance widget: the digit asked for is the digit drawn (at scale 2 the package's
    classifier reads at least 14 of 16 as it: measured 16/16 for 3 and 7), scale 0 ignores the label, and
    the noise is fixed."""
    import torch

    monkeypatch.setenv("SCOREGEN_CACHE", str(classifier_cache))
    _, cond = mnist_models
    split = sg.data.mnist_split(root=shared_mnist)
    clf = sg.evaluation.mnist_classifier(split.x_train, split.y_train)
    w = sg.widgets.guidance_explorer(cond, classifier=clf)
    controls = {c.description: c for c in w.children[:-1]}
    assert set(controls) >= {"digit", "scale", "N"}
    assert w.result["digit"] == 7 and w.result["accuracy"] >= 14 / 16 and w.result["nfe"] == 35
    controls["digit"].value = 3
    assert w.result["digit"] == 3 and w.result["accuracy"] >= 14 / 16
    first = w.result["samples"]
    controls["scale"].value = 0.0
    assert w.result["accuracy"] < 0.5          # no guidance: any digit (measured 2/16 read as 3)
    controls["scale"].value = 2.0
    assert torch.equal(w.result["samples"], first)
    controls["N"].value = 10
    assert w.result["nfe"] == 19
    with pytest.raises(ValueError, match="y=tensor\\(\\[12\\]\\)|y=12|y=tensor\\(12\\)|classes 0..9"):
        sg.widgets.guidance_view(cond, digit=12)


def test_inpainting_explorer_driven_by_values(mnist_models, shared_mnist):
    import torch

    model, _ = mnist_models
    split = sg.data.mnist_split(root=shared_mnist)
    w = sg.widgets.inpainting_explorer(model, split.x_held, split.y_held)
    controls = {c.description: c for c in w.children[:-1]}
    assert set(controls) >= {"digit", "mask", "method"}
    r = w.result
    seq = sg.guidance.repaint_schedule(30, 3)
    down = sum(b > a for a, b in zip(seq, seq[1:]))          # 30 + 2 x 29 = 88 reverse steps, one evaluation each
    assert r["method"] == "RePaint" and r["nfe"] == down == 88 and r["samples"].shape == r["known"].shape
    top = sg.guidance.make_mask("top").bool().expand_as(r["known"])
    assert torch.equal(r["samples"][top], r["known"][top].clamp(0, 1))        # the shown half is kept
    controls["method"].value = "replacement"
    assert w.result["nfe"] == 30
    controls["mask"].value = "left"
    left = sg.guidance.make_mask("left").bool().expand_as(w.result["known"])
    assert torch.equal(w.result["samples"][left], w.result["known"][left].clamp(0, 1))
    controls["digit"].value = 8
    assert (split.y_held[(split.y_held == 8).nonzero().flatten()[:8]] == 8).all() and w.result["digit"] == 8
    with pytest.raises(ValueError, match="method='DPS'"):
        sg.widgets.inpainting_view(model, split.x_held, split.y_held, method="DPS")


def _content(info):
    """A fingerprint of what a view plots (its arrays and numbers), never its timing."""
    import hashlib

    import torch

    h = hashlib.sha1()
    for key in sorted(info):
        if key in ("seconds",):
            continue
        v = info[key]
        if isinstance(v, torch.Tensor):
            h.update(key.encode() + v.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(f"{key}={v!r}".encode())
    return h.hexdigest()


def _sliders(w):
    import ipywidgets as W

    return [c for c in w.children[:-1] if isinstance(c, (W.IntSlider, W.FloatSlider, W.FloatLogSlider,
                                                          W.SelectionSlider))]


def _another_value(slider):
    import ipywidgets as W

    if isinstance(slider, W.SelectionSlider):
        opts = list(slider.options)
        return opts[(opts.index(slider.value) + 1) % len(opts)]
    step = slider.step if not isinstance(slider, W.FloatLogSlider) else 0.0
    if isinstance(slider, W.FloatLogSlider):
        v = slider.value * slider.base ** (2 * slider.step)
        return v if v <= slider.base ** slider.max else slider.value / slider.base ** (2 * slider.step)
    v = slider.value + 2 * step
    return v if v <= slider.max else slider.value - 2 * step


def _every_slider_changes_the_content(w):
    moved = []
    for slider in _sliders(w):
        if slider.disabled:
            continue
        before = _content(w.result)
        slider.value = _another_value(slider)
        assert _content(w.result) != before, f"moving {slider.description!r} changed nothing plotted"
        moved.append(slider.description)
    return moved


def test_every_enabled_slider_of_the_2d_widgets_changes_the_plot(dsm_nets):
    p, nets = dsm_nets
    moved = {}
    for name, w in (("langevin", sg.widgets.langevin_explorer(n_chains=200)),
                    ("dsm", sg.widgets.dsm_explorer(nets, p)),
                    ("schedule", sg.widgets.schedule_explorer()),
                    ("annealed", sg.widgets.annealed_explorer(n_chains=300)),
                    ("sde", sg.widgets.sde_explorer(n_samples=300))):
        moved[name] = _every_slider_changes_the_content(w)
    assert all(moved.values()), moved


def test_sliders_that_would_change_nothing_are_disabled_or_capped(mnist_models):
    """sde_explorer: snr only for PC, steps not for the adaptive ODE; fast_sampling_explorer: churn stops at the
    cap of gamma = S_churn / N (its maximum follows N) and is off for DPM-Solver; sigma_min starts at the
    network's smallest training level, read from the model."""
    from dataclasses import replace

    w = sg.widgets.sde_explorer(n_samples=200)
    c = {x.description: x for x in w.children[:-1]}
    assert c["snr"].disabled and not c["steps"].disabled
    c["sampler"].value = "PC"
    assert not c["snr"].disabled
    c["sampler"].value = "ODE"
    assert c["snr"].disabled and c["steps"].disabled
    model, _ = mnist_models
    w = sg.widgets.fast_sampling_explorer(model)
    c = {x.description: x for x in w.children[:-1]}
    assert c["churn"].max == pytest.approx(7.0)                     # 2 (sqrt 2 - 1) 18 = 14.9 -> 7.0 at N = 18
    assert sg.widgets.fast_sampling_view(model, churn=c["churn"].max)[1]["gamma"] < math.sqrt(2) - 1
    c["N"].value = 40
    assert c["churn"].max == pytest.approx(16.5)
    c["solver"].value = "dpm"
    assert c["churn"].disabled
    c["solver"].value = "heun"
    assert not c["churn"].disabled
    assert model.t_min == 1e-5 and model.sigma_t_min == pytest.approx(0.0031623, rel=1e-4)
    assert c["sigma_min"].min == pytest.approx(math.log10(model.sigma_t_min))
    # a model trained on a narrower range [0.01, 1] offers only its levels: the slider starts at sigma(0.01)
    narrow = sg.checkpoints.ScoreModel(model.net, model.sde, replace(model.config, eps=0.01))
    c = {x.description: x for x in sg.widgets.fast_sampling_explorer(narrow).children[:-1]}
    assert c["sigma_min"].min == pytest.approx(math.log10(narrow.sigma_t_min)) and narrow.sigma_t_min > 0.04


def test_every_enabled_slider_of_the_mnist_widgets_changes_the_plot(mnist_models, shared_mnist):
    model, cond = mnist_models
    split = sg.data.mnist_split(root=shared_mnist)
    for w in (sg.widgets.fast_sampling_explorer(model), sg.widgets.guidance_explorer(cond),
              sg.widgets.inpainting_explorer(model, split.x_held, split.y_held)):
        assert _every_slider_changes_the_content(w)


def _png_pixels(png: bytes):
    import io

    return plt.imread(io.BytesIO(png))


def _updated_in_place_equals_fresh(view, first: dict, changes: list[dict], **fixed):
    """Draw ``view`` once, then update that figure in place with each of ``changes`` in turn: it must be the
    same figure object, and render exactly the pixels of a fresh figure drawn with the same settings (a
    forgotten ``set_data``, a stale title or a wrong background fails here)."""
    import numpy as np

    fig, _ = view(**fixed, **first)
    sg.widgets.live.render_png(fig)
    for change in changes:
        again, _ = view(**fixed, **change, fig=fig)
        assert again is fig, f"{view.__name__}{change}: drew a new figure instead of updating the old one"
        fresh, _ = view(**fixed, **change)
        a, b = _png_pixels(sg.widgets.live.render_png(fig)), _png_pixels(sg.widgets.live.render_png(fresh))
        plt.close(fresh)
        assert a.shape == b.shape and np.array_equal(a, b), \
            f"{view.__name__}{change}: the figure updated in place differs from a fresh one"
    plt.close(fig)


def test_2d_views_update_their_figure_in_place_exactly(dsm_nets):
    p, nets = dsm_nets
    w = sg.widgets
    _updated_in_place_equals_fresh(w.langevin_view, {}, [{"step_size": 0.2}, {"n_steps": 150}, {"sampler": "MALA"}],
                                   n_chains=200)
    _updated_in_place_equals_fresh(w.dsm_view, {"sigma": 0.1}, [{"sigma": 1.0}], nets=nets, density=p)
    _updated_in_place_equals_fresh(w.schedule_view, {}, [{"sigma_max": 20.0}, {"n_levels": 4}, {"step_size": 1e-2},
                                                         {"spacing": "linear"}])
    _updated_in_place_equals_fresh(w.annealed_view, {}, [{"sigma_min": 0.3}, {"n_levels": 6}], n_chains=300,
                                   n_steps_each=20)
    _updated_in_place_equals_fresh(w.sde_view, {}, [{"n_steps": 30}, {"sampler": "PC"}], n_samples=300)


def test_mnist_views_update_their_figure_in_place_exactly(mnist_models, shared_mnist):
    model, cond = mnist_models
    split = sg.data.mnist_split(root=shared_mnist)
    w = sg.widgets
    _updated_in_place_equals_fresh(w.fast_sampling_view, {"n_steps": 6}, [{"n_steps": 5}, {"n_steps": 5, "rho": 3.0}],
                                   model=model)
    _updated_in_place_equals_fresh(w.guidance_view, {"n_steps": 5}, [{"n_steps": 5, "digit": 2}], model=cond)
    _updated_in_place_equals_fresh(w.inpainting_view, {"n_steps": 5, "resample": 1}, [{"n_steps": 5, "resample": 1,
                                                                                       "mask": "left"}],
                                   model=model, images=split.x_held, labels=split.y_held)


def test_live_view_says_computing_first_then_what_the_update_cost():
    """The status line under the figure: "computing..." before any work (the first thing the browser sees
    after a move), then the kernel's timings; the image is the PNG of the figure on screen, updated in place."""
    w = sg.widgets.langevin_explorer(n_chains=200)
    assert len(w.timings) == 1 and not w.timings[0]["in_place"]
    states, results = [], []
    w.status.observe(lambda change: (states.append(change["new"]), results.append(w.result)), names="value")
    before = w.result
    slider = next(c for c in w.children[:-1] if getattr(c, "description", "") == "T")
    slider.value = 100
    assert 'data-state="computing"' in states[0] and results[0] is before     # said before the view ran
    assert 'data-state="done"' in states[-1] and w.result["n_steps"] == 100
    assert len(w.timings) == 2 and w.timings[1]["in_place"] and w.timings[1]["view_ms"] > 0
    assert w.image.value == sg.widgets.live.render_png(w.figure)
    assert f'data-view-ms="{w.timings[1]["view_ms"]:.1f}"' in w.status.value


# ------------------------------------------------------------------ previews and the fused Langevin loop (issue 35)
def test_fused_chains_are_the_samplers_chains():
    """mixture_chains (the Langevin and annealed views' NumPy loop) starts from the same points, draws the same
    noise in the same order and makes the same update as sg.samplers.langevin / annealed_langevin with the exact
    score: the same chains up to float rounding (measured here: at most 1.3e-4 apart, every chain in the same
    mode), odd batch sizes too, so the fused loop changes no number a notebook prints."""
    import torch

    from scoregen_lite.widgets import common

    sig = sg.widgets.ladder(10.0, 0.1, 4).double().tolist()
    for target, n in (("two modes (0.2/0.8)", 37), ("ring of 8", 300), ("smiley", 64)):
        p = common.named_target(target)
        gen = torch.Generator().manual_seed(3)
        x0 = common.uniform_start(n, p.bounds(), generator=gen)
        state = gen.get_state()
        x, path = sg.samplers.langevin(p.score, x0, 0.05, 120, return_path=True, generator=gen)
        gen.set_state(state)
        fx, ends, fpath = common.mixture_chains([(p, 0.05)], x0, 120, gen, keep=5)
        torch.testing.assert_close(fx, x, rtol=0, atol=1e-3)
        torch.testing.assert_close(fpath, path[:, :5], rtol=0, atol=1e-3)
        assert torch.equal(ends[-1], fx) and torch.equal(p.assign(fx), p.assign(x))
        gen.set_state(state)
        xa, pa = sg.samplers.annealed_langevin(p.perturbed_score, x0, sig, 5e-3, 20, return_path=True, generator=gen)
        gen.set_state(state)
        levels = [(common.level_mixture(target, s), 5e-3 * s**2 / sig[-1] ** 2) for s in sig]
        fx, ends, _ = common.mixture_chains(levels, x0, 20, gen)
        torch.testing.assert_close(ends, pa, rtol=0, atol=1e-3)
        assert torch.equal(ends[-1], fx) and torch.equal(p.assign(fx), p.assign(xa))


def test_numpy_score_is_the_mixture_score():
    """numpy_score (the fused loop's score) against GaussianMixture.score on every target and a perturbed one,
    near the modes and far out (relative 1e-5 of the largest score)."""
    import torch

    from scoregen_lite.widgets import common

    g = torch.Generator().manual_seed(0)
    for target in sg.densities.TARGETS:
        for q in (common.named_target(target), common.level_mixture(target, 0.7)):
            x = torch.cat([q.sample(200, generator=g), 12 * torch.randn(50, 2, generator=g)])
            want = q.score(x)
            got = torch.from_numpy(common.numpy_score(common.score_arrays(q), x.T.numpy().copy()).T)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_fused_chains_that_overflow_rerun_the_checked_sampler():
    """Overflowing chains: mixture_chains says None, and the view then says where, as the checked sampler does."""
    import torch

    from scoregen_lite.widgets import common

    p = common.named_target("anisotropic Gaussian")
    x0 = common.uniform_start(100, p.bounds(), generator=torch.Generator().manual_seed(0))
    assert common.mixture_chains([(p, 3.0)], x0, 200, torch.Generator().manual_seed(1)) is None
    _, info = sg.widgets.langevin_view("anisotropic Gaussian", step_size=3.0, n_steps=200, n_chains=100)
    assert info["message"].startswith("37 of 100 chains reached NaN/inf before step 38")   # the checked sampler's


def test_one_thread_gives_the_threads_back():
    import torch

    from scoregen_lite.widgets import common

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with common.one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="inside"), common.one_thread():
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_exact_sde_score_is_the_marginal_score():
    import torch

    score = sg.widgets.ladders.exact_sde_score("ring of 8", "VE")
    exact = sg.densities.SDEMarginal(sg.densities.ring(), sg.sde.SDES["VE"]()).score
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    for t in (1.0, 0.37, 1e-3):
        tv = torch.full((50,), t)
        assert torch.equal(score(x, tv), exact(x, tv)) and torch.equal(score(x, tv), exact(x, tv))   # cached: same
    per_row = torch.linspace(0.1, 0.9, 50)
    assert torch.equal(score(x, per_row), exact(x, per_row))


def _previews(dsm_nets):
    """(view, settings, expected count drawn, total, what the label counts, how to count what the figure shows)
    for every 2D view at a preview detail."""
    p, nets = dsm_nets
    w = sg.widgets
    offsets = lambda name: lambda fig: len(fig._sg_live[name].get_offsets())            # noqa: E731
    return [
        (w.langevin_view, dict(n_chains=300, n_steps=20, detail=0.3), 90, 300, "chains", offsets("scat")),
        (w.annealed_view, dict(n_chains=400, n_steps_each=5, detail=0.25), 100, 400, "chains",
         lambda fig: len(fig._sg_live["scats"][3].get_offsets())),
        (w.sde_view, dict(n_samples=300, n_steps=10, detail=0.5), 150, 300, "samples", offsets("scat")),
        (w.flow_view, dict(n_points=200, n_steps=2, detail=0.25), 50, 200, "noise points",
         lambda fig: len(fig._sg_live["lines"][0].get_segments())),
        (w.schedule_view, dict(detail=0.25), 80 * 80, 160 * 160, "grid points",
         lambda fig: fig._sg_live["images"][0].get_array().size),
        (w.dsm_view, dict(nets=nets, density=p, sigma=1.0, detail=0.25), 30 * 30, 60 * 60, "grid points",
         lambda fig: fig._sg_live["err"].get_array().size),
    ]


_TARGET = {sg.widgets.annealed_view: "two modes (0.2/0.8)", sg.widgets.sde_view: "ring of 8"}   # their defaults


def test_every_2d_view_draws_a_labelled_preview_of_round_detail_n(dsm_nets):
    """detail < 1 computes round(detail N) chains (samples, noise points; grid points for the density views) and
    says so on the figure (drawn on top: hiding it changes the pixels); detail = 1 draws everything, with the label
    hidden."""
    import numpy as np

    for view, kwargs, drawn, total, what, shown in _previews(dsm_nets):
        fig, info = view(**kwargs)
        label = fig._sg_live["label"]
        assert info["detail"] == kwargs["detail"] and shown(fig) == drawn, view.__name__
        assert label.get_visible() and label.get_text() == f"preview: {drawn:,} of {total:,} {what}", view.__name__
        assert label in fig._sg_live["moving"], view.__name__            # so a full pass after it hides it
        shown_png = _png_pixels(sg.widgets.live.render_png(fig))
        label.set_visible(False)
        assert not np.array_equal(shown_png, _png_pixels(sg.widgets.live.render_png(fig))), view.__name__   # on screen
        label.set_visible(True)
        if "energy_floor" in info:                                        # the floor of the points drawn
            target = info.get("target") or _TARGET[view]
            assert info["energy_floor"] == sg.widgets.common.energy_floor(target, drawn), view.__name__
        full, info = view(**{**kwargs, "detail": 1.0}, fig=fig)
        assert full is fig and info["detail"] == 1.0 and shown(fig) == total and not label.get_visible()
        plt.close(fig)


@pytest.mark.parametrize("detail", [0, -0.25, 1.5, float("nan"), "0.5", True, None])
def test_a_bad_detail_is_refused_before_any_work(detail, dsm_nets):
    """Each view checks detail first: with another bad setting as well, the error is about detail."""
    p, nets = dsm_nets
    w = sg.widgets
    for view, bad in ((w.langevin_view, dict(sampler="HMC")), (w.annealed_view, dict(score="neither")),
                      (w.sde_view, dict(sampler="RK4")), (w.flow_view, dict(path="SDE")),
                      (w.schedule_view, dict(spacing="log")), (w.dsm_view, dict(nets=nets, density=p, sigma=0.5))):
        with pytest.raises(ValueError, match=rf"detail={detail!r} is invalid: expected a fraction in \(0, 1\]"
                                             r".*1\.0 for the full figure"):
            view(**bad, detail=detail)


def test_2d_views_preview_then_full_in_place_exactly(dsm_nets):
    """A preview drawn into the figure, then the full figure into the same one (what the live widget does on a
    move), renders exactly the pixels of a fresh full figure; and a preview in place those of a fresh preview."""
    p, nets = dsm_nets
    w = sg.widgets
    _updated_in_place_equals_fresh(w.langevin_view, {"detail": 0.25}, [{"step_size": 0.2}, {"step_size": 0.2, "detail": 0.5},
                                                                        {"sampler": "MALA"}], n_chains=200)
    _updated_in_place_equals_fresh(w.annealed_view, {"detail": 0.25}, [{"sigma_min": 0.3, "detail": 0.25},
                                                                        {"sigma_min": 0.3}], n_chains=300, n_steps_each=10)
    _updated_in_place_equals_fresh(w.sde_view, {"detail": 0.25}, [{"n_steps": 30, "detail": 0.25}, {"n_steps": 30}],
                                   n_samples=300)
    _updated_in_place_equals_fresh(w.schedule_view, {"detail": 0.25}, [{"n_levels": 4, "detail": 0.25}, {"n_levels": 4}])
    _updated_in_place_equals_fresh(w.dsm_view, {"sigma": 0.1, "detail": 0.25}, [{"sigma": 1.0, "detail": 0.25},
                                                                                {"sigma": 1.0}], nets=nets, density=p)
