"""The exercise checks of notebook 10 (sg.exercises.nb10_training_recipes): EDM's training loss and the memorisation test. The
solution as a student would write it passes, and every catalogued mistake is recognised with its hint."""
import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.exercises.checking import ExerciseFailed


def edm_loss(net, x0, n, z, sigma_data, p_mean, p_std, *, weight="edm", swap=False, sigma_normal=False, c_in=True,
             reduce="sum", c_noise="quarter", detach=False):
    """A student's EDM loss (written here independently of the package), with switches for each mistake."""
    sigma = (p_mean + p_std * n) if sigma_normal else torch.exp(p_mean + p_std * n)
    s = sigma.reshape(-1, *([1] * (x0.dim() - 1)))
    c_skip = sigma_data**2 / (s**2 + sigma_data**2)
    c_out = s * sigma_data / torch.sqrt(s**2 + sigma_data**2)
    cin = 1 / torch.sqrt(s**2 + sigma_data**2) if c_in else 1.0
    if swap:
        c_skip, c_out = c_out, c_skip
    noise = torch.log(sigma) / 4 if c_noise == "quarter" else torch.log(sigma)
    y = x0 + s * z
    D = c_skip * y + c_out * net(cin * y, noise)
    lam = {"edm": (s**2 + sigma_data**2) / (s * sigma_data) ** 2, "one": 1.0,
           "no-square": (s**2 + sigma_data**2) / (s * sigma_data)}[weight]
    per = lam * (D - x0) ** 2
    loss = (per.sum(dim=1) if reduce == "sum" else per.mean(dim=1)).mean()
    return loss.detach() if detach else loss


def test_edm_loss_solution_passes(capsys):
    sg.exercises.check_edm_loss(edm_loss)
    assert "edm_loss: passed" in capsys.readouterr().out


@pytest.mark.parametrize("kw, hint", [
    (dict(weight="one"), "that is lambda = 1"),
    (dict(weight="no-square"), "denominator is (sigma sigma_data) squared"),
    (dict(swap=True), "c_skip and c_out are swapped"),
    (dict(sigma_normal=True), "sigma itself was drawn normal"),
    (dict(c_in=False), "the network's input is c_in y"),
    (dict(c_noise="log"), "c_noise is a quarter of ln sigma"),
    (dict(reduce="mean"), "the mean over the coordinates divides by the dimension"),
    (dict(detach=True), "carries no gradient"),
])
def test_edm_loss_mistakes_are_recognised(kw, hint):
    with pytest.raises(ExerciseFailed) as err:
        sg.exercises.check_edm_loss(lambda *a: edm_loss(*a, **kw))
    assert hint in str(err.value)


def test_edm_loss_cast_to_float64_is_recognised():
    """A loss that casts its inputs to float64 passes on float64 inputs but breaks notebook 10's float32 training."""
    def cast(net, x0, n, z, *rest):
        return edm_loss(lambda xi, c: net(xi.to(next(net.parameters()).dtype), c.to(next(net.parameters()).dtype)),
                        x0.double(), n.double(), z.double(), *rest).double()
    with pytest.raises(ExerciseFailed, match="not float32"):
        sg.exercises.check_edm_loss(cast)
    with pytest.raises(ExerciseFailed, match="compute in the inputs' dtype|Compute in the inputs' dtype"):
        sg.exercises.check_edm_loss(lambda net, x0, n, z, *rest: edm_loss(net, x0.double(), n.double(), z.double(), *rest))


def test_edm_loss_shape_is_checked():
    with pytest.raises(ExerciseFailed, match="0-d tensor"):
        sg.exercises.check_edm_loss(lambda *a: edm_loss(*a).reshape(1))


def test_package_edm_loss_is_recipe_loss_on_the_ve_sde():
    """sg.recipes.edm_loss on its draws = recipe_loss(lognormal, edm) of the wrapped network on the same draws."""
    sde = sg.sde.VESDE.tutorial(25.0)
    raw = lambda xi, c: torch.tanh(0.7 * xi) + c[:, None]  # noqa: E731
    x0 = torch.rand(16, 5, dtype=torch.float64)
    want = sg.recipes.recipe_loss(sg.recipes.Preconditioned(raw, sde, "edm", 0.5), x0, sde, noise="lognormal",
                                  weighting="edm", generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    n = torch.randn(16, generator=gen, dtype=torch.float64)
    z = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    assert float(sg.recipes.edm_loss(raw, x0, n, z, 0.5)) == pytest.approx(float(want), rel=1e-10)


def memorised_fraction(samples, train, *, squared=False, swapped=False, drop_zero=False, count=False,
                       complement=False, nearest_only=False, as_tensor=False):
    """A student's memorisation test (independent of the package), with switches for each mistake."""
    d = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
    if drop_zero:
        d[d == 0] = float("inf")
    d1, d2 = d.sort(dim=1).values[:, :2].unbind(1)
    ratio = d2 / d1 if swapped else d1 / d2
    flagged = (d1 < 1 / 3) if nearest_only else ((ratio**2 if squared else ratio) < 1 / 3)
    if complement:
        flagged = ~flagged
    out = flagged.sum() if count else flagged.double().mean()
    return out if as_tensor else out.item()


def test_memorised_fraction_solution_passes(capsys):
    sg.exercises.check_memorised_fraction(memorised_fraction)
    assert "memorised_fraction: passed" in capsys.readouterr().out


@pytest.mark.parametrize("kw, hint", [
    (dict(squared=True), "ratio of squared distances"),
    (dict(swapped=True), "the ratio is upside down"),
    (dict(drop_zero=True), "an exact copy was skipped"),
    (dict(count=True), "that is the number of samples flagged"),
    (dict(complement=True), "that is the fraction NOT flagged"),
    (dict(nearest_only=True), "a threshold on d1 alone"),
    (dict(as_tensor=True), "expected a Python float"),
])
def test_memorised_fraction_mistakes_are_recognised(kw, hint):
    with pytest.raises(ExerciseFailed) as err:
        sg.exercises.check_memorised_fraction(lambda s, t: memorised_fraction(s, t, **kw))
    assert hint in str(err.value)


def test_checks_have_points():
    assert sg.exercises.POINTS["check_edm_loss"] == 3 and sg.exercises.POINTS["check_memorised_fraction"] == 2
    assert {"check_edm_loss", "check_memorised_fraction"} <= set(sg.exercises.__all__)
