"""One model object and one sampler registry (issue 33): a ``ScoreModel`` carries its network, SDE and trained noise
range [t_min, 1] from the checkpoint, loaded once, to every sampler, the evaluation and the likelihood; the registry's
names, default steps, NFE and labels are what the samplers, the command line and the manifests use."""
import json
from dataclasses import replace

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite import artifacts
from scoregen_lite.core import registry
from scoregen_lite.images.checkpoints import ImageConfig, ScoreModel


class Spy(torch.nn.Module):
    """A score network that records every time it is asked about: the exact score of N(0, I) diffused by ``sde``."""

    def __init__(self, sde):
        super().__init__()
        self.sde, self.times, self.calls = sde, [], 0
        self.w = torch.nn.Parameter(torch.zeros(()))   # a parameter, so the model has a device

    def forward(self, x, t):
        self.calls += 1
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        self.times.append(float(t.min()))
        var = (1 + self.sde.marginal_std(t) ** 2).to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        return -x / var


VE = sg.sde.VESDE.tutorial(25.0)


def spy_model(t_min):
    return ScoreModel(Spy(VE), VE, replace(ImageConfig(), eps=t_min))


@pytest.mark.parametrize("sampler", ["em", "pc", "edm", "dpm"])
def test_sample_batched_reads_the_trained_range_from_the_model(sampler):
    """A model trained on [0.05, 1] is never asked below t = 0.05 (the samplers stop there, the schedules in sigma end
    at sigma(0.05)) and draws exactly what its sampler draws with that end given by hand; a model trained down to
    1e-5 stops at the course's t = 1e-3 as before. Planted: ignoring the model's t_min asks the network about
    t = 1e-3 and fails."""
    model = spy_model(0.05)
    kw = dict(n_steps=40, generator=torch.Generator().manual_seed(0), device="cpu", amp=False)
    x, _, _ = sg.samplers.sample_batched(model, None, 8, (2,), sampler=sampler, **kw)
    assert min(model.net.times) >= 0.05 * (1 - 1e-9)
    fn = registry.SAMPLERS[sampler].function
    end = {"sigma_min": float(VE.sigma_of_t(torch.tensor(0.05, dtype=torch.float64)))} \
        if registry.SAMPLERS[sampler].in_sigma else {"eps": 0.05}
    want = fn(VE, Spy(VE), (8, 2), 40, generator=torch.Generator().manual_seed(0), **end)
    torch.testing.assert_close(x, want[0] if isinstance(want, tuple) else want)
    if registry.SAMPLERS[sampler].in_sigma:          # the schedule's last level is sigma(t_min) itself
        assert min(model.net.times) == pytest.approx(0.05, rel=1e-6)
    wide = spy_model(1e-5)
    sg.samplers.sample_batched(wide, None, 8, (2,), sampler=sampler, **kw)
    assert min(wide.net.times) < 0.05 and min(wide.net.times) >= registry.T_END * (1 - 1e-9)
    # the same through model.sample; a higher t_min given by hand narrows the range, a lower one is refused
    again = spy_model(0.05)
    again.sample(8, shape=(2,), sampler=sampler, **dict(kw, generator=torch.Generator().manual_seed(0)))
    assert min(again.net.times) >= 0.05 * (1 - 1e-9)
    higher = spy_model(0.05)
    sg.samplers.sample_batched(higher, None, 8, (2,), sampler=sampler, t_min=0.1, **kw)
    assert min(higher.net.times) >= 0.1 * (1 - 1e-9)
    with pytest.raises(ValueError, match=r"t_min=0.001 is below the noise range the model was trained on, \[0.05, 1\]"):
        sg.samplers.sample_batched(spy_model(0.05), None, 8, (2,), sampler=sampler, t_min=1e-3, **kw)


def test_registry_nfe_is_what_each_sampler_evaluates():
    """Every registry entry's NFE(n) is the number of score evaluations its sampler makes and reports (EM n, PC 2n,
    Heun 2n - 1, Euler n, DPM-Solver n; the adaptive ODE reports its own count). Planted: Heun's 2n fails."""
    for name, spec in registry.SAMPLERS.items():
        for n_steps in (2, 7):
            model = spy_model(1e-5)
            _, nfe, _ = sg.samplers.sample_batched(model, None, 4, (2,), sampler=name, n_steps=n_steps, amp=False,
                                                   generator=torch.Generator().manual_seed(1), device="cpu")
            assert nfe == model.net.calls, (name, n_steps, nfe, model.net.calls)
            if spec.nfe is None:
                assert spec.evaluations(n_steps) is None and spec.default_steps is None
            else:
                assert spec.evaluations(n_steps) == model.net.calls, (name, n_steps)
        for solver in spec.solvers:      # EDM's Euler variant as the widget runs it
            net = Spy(VE)
            _, nfe = spec.function(VE, net, (4, 2), 7, solver=solver, generator=torch.Generator().manual_seed(2))
            assert spec.evaluations(7, solver) == nfe == net.calls, (name, solver)
    assert registry.SAMPLERS["edm"].evaluations() == 35 and registry.SAMPLERS["em"].evaluations() == 500
    with pytest.raises(ValueError, match="solver='dpm' is not a solver of sampler 'edm'"):
        registry.SAMPLERS["edm"].evaluations(18, "dpm")


def test_the_command_line_widgets_and_manifests_read_the_registry():
    """--sampler's choices are the registry's names; inpaint's are the samplers reverse_step takes one step at a
    time; --steps defaults to each sampler's default steps; the shipped manifests' sampler labels are the
    registry's labels; the fast-sampling widget lists SIGMA_SOLVERS."""
    from scoregen_lite.images.cli import _parser

    sub = {a.dest: a for a in _parser()._subparsers._group_actions[0].choices["sample"]._actions}
    assert list(sub["sampler"].choices) == list(registry.SAMPLERS) == ["em", "pc", "ode", "edm", "dpm", "flow-euler",
                                                                       "flow-heun"]
    assert sub["steps"].default is None and "18 (edm: 35 evaluations)" in sub["steps"].help
    inpaint = {a.dest: a for a in _parser()._subparsers._group_actions[0].choices["inpaint"]._actions}
    x = torch.zeros(2, 2)
    for name, spec in registry.SAMPLERS.items():
        try:
            sg.samplers.reverse_step(VE, lambda x, t: -x, x, 0.5, 0.4, sampler=name)
            takes = True
        except ValueError:
            takes = False
        assert takes == spec.stepwise == (name in inpaint["sampler"].choices), name
    shipped = sg.mnist.manifest("mnist_ve")["metrics"]["fast"]
    assert list(sg.mnist.SHIP_SAMPLERS) == list(shipped) == ["Heun-18", "Heun-18 churn 40"]
    for label, kw in sg.mnist.SHIP_SAMPLERS.items():
        assert registry.sampler_label(**shipped[label]) == label and kw.items() <= shipped[label].items()
    assert registry.sampler_label("em", 500) == "EM-500" and registry.sampler_label("ode", 7) == "ODE"
    assert registry.SIGMA_SOLVERS == ("heun", "euler", "dpm")
    assert registry.sampler_for("euler") is registry.SAMPLERS["edm"] and registry.sampler_for("dpm").name == "dpm"


def test_end_time_never_goes_below_the_trained_range():
    assert registry.end_time(None) == registry.end_time(1e-5) == registry.T_END == 1e-3
    assert registry.end_time(0.05) == 0.05
    with pytest.raises(ValueError, match="eps=0.0 is invalid"):
        registry.end_time(0.0)
    with pytest.raises(ValueError, match="sde is None"):
        sg.samplers.sample_batched(lambda x, t: -x, None, 2, (2,))


def test_score_model_carries_its_checkpoint(tmp_path):
    """ScoreModel.load reads a checkpoint once and carries the network, SDE, config (t_min included), meta, step
    and source; it unpacks as (net, sde, config); it is its network's score function; a bare network is refused
    where the trained range is needed."""
    config = replace(sg.image_training.QUICK_CPU, eps=0.02, channels=(8, 16, 32, 64), embed_dim=16)
    net = sg.image_training.make_unet(config)
    sg.checkpoints.save_checkpoint(tmp_path / "m.pt", model=net.state_dict(), ema=None, step=7, losses=[1.0, 0.5],
                                   config=sg.checkpoints.config_dict(config), meta={"heldout": "train[-500:]"})
    loads = []
    real = torch.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or real(*a, **k))
        model = ScoreModel.load(tmp_path / "m.pt", device="cpu")
    assert loads == [True]                                   # one read, weights only
    assert model.config == config and model.t_min == 0.02 and model.step == 7 and model.losses == [1.0, 0.5]
    assert model.meta == {"heldout": "train[-500:]"} and model.source == tmp_path / "m.pt" and model.info == {}
    assert model.sigma_t_min == pytest.approx(float(model.sde.sigma_of_t(torch.tensor(0.02, dtype=torch.float64))))
    n, sde, cfg = model
    assert n is model.net and sde is model.sde and cfg is model.config
    x, t = torch.rand(2, 1, 28, 28), torch.full((2,), 0.5)
    assert torch.equal(model(x, t), net.eval()(x, t))
    assert "t_min=0.02" in repr(model)
    with pytest.raises(TypeError, match="bare network: pass a ScoreModel"):
        sg.mnist.bits_per_dim(net, x)
    with pytest.raises(TypeError, match="expected an ImageConfig"):
        ScoreModel(net, sde, sg.checkpoints.config_dict(config))


def test_pretrained_is_a_model_with_its_manifest():
    """sg.mnist.pretrained gives a ScoreModel with the shipped manifest as ``info`` and t_min = 1e-5 (the config
    the checkpoint stores); old manifests' "sigma_min" (the noise std at t_min) reads as sigma_t_min and equals
    the model's."""
    model = sg.mnist.pretrained("mnist_ve", device="cpu", log=lambda m: None)
    assert isinstance(model, ScoreModel) and model.t_min == 1e-5
    assert model.info["sha256"] == artifacts.sha256(model.source) and model.source.parent.name == "checkpoints"
    assert model.info == sg.checkpoints.manifest("mnist_ve")
    metrics = model.info["metrics"]
    assert "sigma_min" not in metrics and metrics["sigma_t_min"] == pytest.approx(model.sigma_t_min, rel=1e-9)
    raw = json.loads((artifacts.checkpoints_dir() / "mnist_ve.json").read_text())["metrics"]
    assert raw["sigma_min"] == metrics["sigma_t_min"]          # the committed file is unchanged, read under the new name


def test_evaluation_reads_the_checkpoint_once_and_uses_its_range(tmp_path, shared_mnist, monkeypatch):
    """evaluate_model loads its checkpoint once (it read the same file three times), samples and computes the
    likelihood from the model's t_min, and reports sigma_t_min and bits_floor at it. Planted: a likelihood that
    starts at the default 1e-5 instead of the model's t_min fails."""
    monkeypatch.setenv("SCOREGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sg.evaluation, "mnist_classifier", lambda x, y, **k: sg.evaluation.MNISTClassifier().eval())
    config = replace(sg.image_training.QUICK_CPU, eps=0.02, channels=(8, 16, 32, 64), embed_dim=16)
    net = sg.image_training.make_unet(config)
    sg.checkpoints.save_checkpoint(tmp_path / "m.pt", model=net.state_dict(), ema=None, step=1, losses=[],
                                   config=sg.checkpoints.config_dict(config),
                                   meta={"heldout": sg.data.mnist_split(root=shared_mnist).heldout, "n_train": 9500})
    loads, starts = [], []
    real_load, real_ll = torch.load, sg.samplers.log_likelihood
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    monkeypatch.setattr(sg.samplers, "log_likelihood", lambda *a, **k: starts.append(k["eps"]) or real_ll(*a, **k))
    result = sg.mnist.evaluate_model(tmp_path / "m.pt", n=8, n_steps=3, n_likelihood=1, root=shared_mnist,
                                     device="cpu")
    assert loads == [tmp_path / "m.pt"] and starts == [0.02]
    sigma = float(net.sde.sigma_of_t(torch.tensor(0.02, dtype=torch.float64)))
    assert result["t_min"] == 0.02 and result["sigma_t_min"] == pytest.approx(sigma, rel=1e-12)
    assert result["bits_floor"] == pytest.approx(sg.recipes.bits_floor(sigma)) and "sigma_min" not in result
