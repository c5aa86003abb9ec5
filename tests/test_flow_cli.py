"""The command line on a flow-matching checkpoint (issue 34): ``sample`` and ``evaluate`` draw with the flow's ODE
(flow-heun, 10 steps: 19 evaluations) when no sampler is named, and with the named one otherwise; a VE
checkpoint keeps Euler-Maruyama."""
import pytest

import scoregen_lite as sg
from scoregen_lite.images.cli import main


@pytest.fixture
def flow_checkpoint(tmp_path, shared_mnist):
    out = tmp_path / "flowrun"
    assert main(["train-mnist", "--quick", "--recipe", "flow", "--steps", "4", "--root", str(shared_mnist),
                 "--out", str(out)]) == 0
    return out / "checkpoint.pt"


def test_flow_checkpoint_samples_with_the_flow_ode_by_default(flow_checkpoint, tmp_path, capsys):
    model = sg.checkpoints.ScoreModel.load(flow_checkpoint)
    assert model.config.noise == "straight" and model.config.weighting == "flow"
    assert sg.checkpoints.default_sampler(model.config) == "flow-heun"
    assert main(["sample", "--checkpoint", str(flow_checkpoint), "--n", "3", "--out", str(tmp_path)]) == 0
    assert "(flow-heun, 19 evaluations)" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", str(flow_checkpoint), "--n", "3", "--sampler", "flow-euler", "--steps", "3",
                 "--out", str(tmp_path)]) == 0
    assert "(flow-euler, 3 evaluations)" in capsys.readouterr().out


def test_a_ve_checkpoint_keeps_euler_maruyama(tmp_path, capsys):
    path = sg.mnist.find_checkpoint("mnist_ve", log=lambda m: None)
    assert main(["sample", "--checkpoint", str(path), "--n", "2", "--steps", "3", "--out", str(tmp_path)]) == 0
    assert "(em, 3 evaluations)" in capsys.readouterr().out
