"""``sg.train.ema_weights`` / ``ema_window`` (notebook 07): the EMA's weights over the steps are exactly what the
``EMA`` class computes, and the window's summaries match their closed forms."""
import math

import pytest
import torch

import scoregen_lite as sg


class _OneHot(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n + 1, dtype=torch.float64))


@pytest.mark.parametrize("n, decay, warmup", [(0, 0.999, True), (1, 0.999, True), (30, 0.999, True),
                                              (100, 0.999, True), (300, 0.9, True), (300, 0.99, False)])
def test_ema_weights_are_what_the_ema_class_computes(n, decay, warmup):
    """Weights e_k after step k (e_0 before any): the EMA's shadow is then the weight vector itself."""
    model = _OneHot(n)
    with torch.no_grad():
        model.w[0] = 1.0
    ema = sg.train.EMA(model, decay, warmup=warmup)
    for k in range(1, n + 1):
        with torch.no_grad():
            model.w.zero_()
            model.w[k] = 1.0
        ema.update(model)
    w = sg.train.ema_weights(n, decay, warmup)
    assert torch.allclose(ema.shadow["w"], w, atol=1e-12) and w.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_ema_window_closed_forms():
    d = 0.999
    plain = sg.train.ema_window(200_000, d, warmup=False)        # a long plain EMA
    assert plain["mean_age"] == pytest.approx(d / (1 - d), rel=1e-6)
    assert plain["n_eff"] == pytest.approx((1 + d) / (1 - d), rel=1e-6)
    # warm-up: w_k is proportional to (k + 1)...(k + 8) while d_k < decay, and the mean age is exactly n / 10
    warm = sg.train.ema_window(100, d)
    w = sg.train.ema_weights(100, d)
    k = torch.arange(101, dtype=torch.float64)
    poly = torch.stack([k + j for j in range(1, 9)]).prod(0)
    poly[0] = 0.0
    assert torch.allclose(w[1:], (poly / poly.sum() * (1 - w[0]))[1:], rtol=1e-9)
    assert warm["mean_age"] == pytest.approx(10.0, rel=1e-9) and warm["initial_weight"] < 1e-10
    assert sg.train.ema_window(0, d) == {"n_updates": 0, "decay": d, "mean_age": 0.0, "n_eff": 1.0,
                                         "initial_weight": 1.0, "decay_now": 0.1}
    with pytest.raises(ValueError, match="decay"):
        sg.train.ema_window(10, 1.0)
    with pytest.raises(ValueError, match="n_updates"):
        sg.train.ema_window(-1)
    assert math.isclose(sg.train.ema_window(10, 0.0)["mean_age"], 0.0)
