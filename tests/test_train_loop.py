"""``sg.train.train_loop``, the one training loop (notebooks 02-10): clipping, EMA, mixed precision, the
learning-rate schedule, the hooks' steps, the time budget and the NaN stop, each on a model small enough to
know every number; and every training of the package (``fit``, ``train_images``, both MNIST classifiers)
runs through it."""
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

import scoregen_lite as sg
from scoregen_lite.core import train as core_train
from scoregen_lite.core.train import EMA, TrainingDiverged, train_loop


class Scalar(nn.Module):
    """One weight p; the batch is ignored by the losses below unless they say otherwise."""

    def __init__(self, value=0.0):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.p * x


def no_batch():
    return None


def test_clipping_caps_the_gradient_norm():
    """loss = 1000 (w . 1) over 4 weights: the gradient (1000, ..., 1000) has norm 2000; clipped to 0.5, one
    SGD step of lr 1 moves the weights by exactly 0.5 (2000 unclipped)."""
    for clip, moved in ((0.5, 0.5), (None, 2000.0)):
        net = nn.Linear(4, 1, bias=False)
        nn.init.zeros_(net.weight)
        train_loop(net, lambda m, b: 1000 * m(torch.ones(1, 4)).sum(), no_batch, 1,
                   torch.optim.SGD(net.parameters(), lr=1.0), clip=clip, progress=False)
        assert net.weight.norm().item() == pytest.approx(moved, rel=1e-6)


def test_ema_is_updated_after_every_optimizer_step():
    """loss = -p with SGD lr 1: p = k after step k, so the EMA after n steps is sum_k w_k k with ``ema_weights``
    (w_0 on the initial p = 0). An update skipped, or made before the optimizer step (p = k - 1), fails."""
    n = 6
    for decay, warmup in ((0.5, False), (0.9, True)):
        net = Scalar(0.0)
        ema = EMA(net, decay, warmup=warmup)
        res = train_loop(net, lambda m, b: -m.p, no_batch, n, torch.optim.SGD(net.parameters(), lr=1.0), ema=ema,
                         progress=False)
        assert net.p.item() == pytest.approx(n) and res.ema is ema and ema.num_updates == n
        want = (sg.train.ema_weights(n, decay, warmup) * torch.arange(n + 1, dtype=torch.float64)).sum().item()
        assert ema.shadow["p"].item() == pytest.approx(want, rel=1e-6)


def test_autocast_runs_the_loss_in_the_reduced_dtype():
    """The loss function's matmul runs in the autocast dtype (float32 without it)."""
    seen = []

    def loss_fn(m, b):
        y = torch.ones(2, 4) @ m.weight.T
        seen.append(y.dtype)
        return y.float().sum()

    for dtype, want in ((torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16), (None, torch.float32),
                        (torch.float32, torch.float32)):
        net = nn.Linear(4, 3, bias=False)
        train_loop(net, loss_fn, no_batch, 1, torch.optim.SGD(net.parameters(), lr=0.1), autocast=dtype,
                   progress=False)
        assert seen[-1] == want, (dtype, seen)


def test_float16_scales_the_loss_so_small_gradients_survive():
    """A loss of 1e-9 (w . x): in float16 the matmul's gradient 1e-9 underflows to 0 unless the loss is scaled
    (GradScaler, 65536) and the gradient unscaled again before the step: then it is 2e-9 per weight."""
    grads = []
    net = nn.Linear(4, 4, bias=False)
    nn.init.ones_(net.weight)
    train_loop(net, lambda m, b: 1e-9 * m(torch.ones(2, 4)).float().sum(), no_batch, 1,
               torch.optim.SGD(net.parameters(), lr=1.0), autocast=torch.float16, progress=False,
               on_step=lambda done, loss: grads.append(net.weight.grad.clone()))
    assert grads[0].abs().min().item() == pytest.approx(2e-9, rel=0.01)


def test_a_nan_loss_stops_before_it_reaches_the_weights():
    """sync_every=1: the loss of step 3 (the fourth) is NaN: the error names it and the last finite loss, the
    weights are those after three steps, and ``losses`` holds the three finite losses."""
    net = Scalar(1.0)
    calls = []

    def loss_fn(m, b):
        calls.append(1)
        return m.p * (float("nan") if len(calls) == 4 else 1.0)

    losses = []
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3 \(last finite loss 0\.8 at step 2\); "
                                               r"try a smaller lr \(now 0\.1\)\.$"):
        train_loop(net, loss_fn, no_batch, 10, torch.optim.SGD(net.parameters(), lr=0.1), losses=losses,
                   progress=False)
    assert net.p.item() == pytest.approx(0.7) and losses == pytest.approx([1.0, 0.9, 0.8])


def test_a_late_read_back_still_names_the_exact_step():
    """sync_every=4: the infinite loss of step 5 is found at the read-back after step 7; the error names step 5,
    the caller's advice, and keeps the finite losses of steps 0-4."""
    net = Scalar(1.0)
    calls = []

    def loss_fn(m, b):
        calls.append(1)
        return m.p * (float("inf") if len(calls) == 6 else 1.0)

    res_losses = []
    with pytest.raises(TrainingDiverged, match=r"loss became inf at step 5 \(last finite loss 0\.6 at step 4\); "
                                               r"lower config\.lr\.$"):
        train_loop(net, loss_fn, no_batch, 20, torch.optim.SGD(net.parameters(), lr=0.1), sync_every=4,
                   losses=res_losses, advice="lower config.lr", progress=False)
    assert len(calls) == 8 and res_losses == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6])


def test_hooks_schedule_and_checkpoints_on_the_right_steps():
    """A run resumed at step 2 (two losses already) to step 9 with checkpoints every 3 steps: the schedule is
    asked for steps 2..8 and its lr is the one the step uses; on_step gets the steps done 3..9; on_checkpoint
    3, 6, 9 with every loss so far read back into ``losses``."""
    net = Scalar(1.0)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    asked, used, stepped, saved = [], [], [], []
    losses = [5.0, 4.0]

    def loss_fn(m, b):
        used.append(opt.param_groups[0]["lr"])
        return m.p * 0.0 + 1.0

    def schedule(k):
        asked.append(k)
        return 0.01 * (k + 1)

    res = train_loop(net, loss_fn, no_batch, 9, opt, start_step=2, schedule=schedule, sync_every=50,
                     on_step=lambda done, loss: stepped.append((done, loss.item())),
                     on_checkpoint=lambda done: saved.append((done, len(losses))), checkpoint_every=3,
                     losses=losses, progress=False)
    assert asked == list(range(2, 9)) and used == pytest.approx([0.01 * (k + 1) for k in range(2, 9)])
    assert stepped == [(k, 1.0) for k in range(3, 10)]
    assert saved == [(3, 3), (6, 6), (9, 9)]
    assert res.steps == 9 and res.losses is losses and len(losses) == 9


def test_a_torch_lr_scheduler_is_stepped_after_each_step():
    """CosineAnnealingLR(T=4) from lr 1: the steps use 0.5 (1 + cos(pi k / 4)), k = 0..3."""
    net = Scalar(1.0)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    used = []

    def loss_fn(m, b):
        used.append(opt.param_groups[0]["lr"])
        return m.p

    train_loop(net, loss_fn, no_batch, 4, opt, schedule=torch.optim.lr_scheduler.CosineAnnealingLR(opt, 4),
               progress=False)
    assert used == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)], abs=1e-12)


def test_time_budget_stops_before_a_step(monkeypatch):
    """Each step takes one second of a fake clock; a budget of 2.5 s allows three steps."""
    clock = {"t": 100.0}
    monkeypatch.setattr(core_train.time, "perf_counter", lambda: clock["t"])

    def loss_fn(m, b):
        clock["t"] += 1.0
        return m.p

    net = Scalar(1.0)
    res = train_loop(net, loss_fn, no_batch, 10, torch.optim.SGD(net.parameters(), lr=0.1), time_budget=2.5,
                     progress=False)
    assert res.steps == 3 and len(res.losses) == 3 and res.seconds == pytest.approx(3.0)


def test_an_interrupted_run_keeps_the_losses_of_its_steps():
    """Ctrl-C in step 3's optimizer step, between read-backs (sync_every=50): the losses of steps 0-3 are in
    ``losses``, not lost on the device."""
    net = Scalar(1.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    real, calls = opt.step, []

    def step(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    opt.step = step
    losses = []
    with pytest.raises(KeyboardInterrupt):
        train_loop(net, lambda m, b: m.p, no_batch, 10, opt, sync_every=50, losses=losses, progress=False)
    assert losses == pytest.approx([1.0, 0.9, 0.8, 0.7])


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(loss_fn=lambda m, b: torch.ones(3)), ValueError, r"loss_fn returned Tensor of shape \(3,\); expected a scalar"),
    (dict(loss_fn=None), TypeError, "loss_fn=None must be callable"),
    (dict(batches=torch.ones(3)), TypeError, "batches=.* must be callable"),
    (dict(autocast=torch.int8), ValueError, r"autocast=torch\.int8 is invalid"),
    (dict(schedule="cosine"), TypeError, "schedule='cosine' must be a function step -> lr"),
    (dict(clip=0.0), ValueError, r"clip=0\.0 is invalid"),
    (dict(sync_every=0), ValueError, "sync_every=0 is invalid"),
])
def test_train_loop_invalid_input(kwargs, err, match):
    net = Scalar(1.0)
    args = dict(model=net, loss_fn=lambda m, b: m.p, batches=no_batch, n_steps=2,
                optimizer=torch.optim.SGD(net.parameters(), lr=0.1), progress=False)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        train_loop(**args)


def test_every_training_of_the_package_runs_the_one_loop(monkeypatch, tmp_path):
    """fit, train_images and both MNIST classifiers call ``sg.train.train_loop`` (none keeps a loop of its own)."""
    from scoregen_lite.images import evaluation, guidance, training

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        return train_loop(*args, **kwargs)

    for module in (core_train, training, evaluation, guidance):
        assert module.train_loop is train_loop
        monkeypatch.setattr(module, "train_loop", spy)
    sg.train.fit(Scalar(1.0), lambda m, x: m(x).pow(2).mean(), torch.randn(8, 1), n_steps=2, batch_size=4,
                 progress=False, device="cpu")
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(32) % 10
    config = replace(sg.image_training.QUICK_CPU, batch_size=8, warmup_steps=2, n_steps=2)
    training.train_images(images, config, device="cpu", progress=False, log=lambda m: None)
    evaluation.mnist_classifier(images, labels, epochs=1, cache=False, device="cpu")
    sde = sg.sde.VESDE.tutorial(25.0)
    guidance.noisy_classifier(images, labels, sde, n_steps=2, cache=False, shipped=False, device="cpu",
                              progress=False, log=lambda m: None)
    assert calls == ["training", "training", "classifier", "noisy classifier"]


def test_train_images_stops_on_a_nan_naming_its_step(monkeypatch):
    """train_images reads its losses back every 50 steps; a NaN loss at step 2 of 6 is still named exactly
    (with the last finite loss, step 1) when they are read back at the end."""
    real, calls = sg.recipes.recipe_loss, []

    def recipe_loss(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        return out * float("nan") if len(calls) == 3 else out

    monkeypatch.setattr(sg.recipes, "recipe_loss", recipe_loss)
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    config = replace(sg.image_training.QUICK_CPU, batch_size=8, warmup_steps=2, n_steps=6)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 2 \(last finite loss \S+ at step 1\); "
                                               r"try a smaller lr \(now 0\.002\)\.$"):
        sg.image_training.train_images(images, config, device="cpu", progress=False, log=lambda m: None)
