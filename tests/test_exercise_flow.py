"""Notebook 11's exercises (flow matching): ``check_cfm_loss``, ``check_euler_flow`` and ``check_velocity_from_score``.
A student's correct solution (written here independently of the package) passes, every catalogued mistake is
recognised with its own hint, and wrong return types are refused with a message that says what to return."""
import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.exercises import nb11_flow_matching as ef
from scoregen_lite.exercises.checking import ExerciseFailed


# ------------------------------------------------------------------------------------ the conditional FM loss
def cfm(net, x0, t, z, *, target="velocity", path="straight", at="x_t", net_t="t", shared=False, reduce="mean",
        half=False, squared=True, no_broadcast=False, detach=False):
    """A student's conditional flow matching loss, with switches for the mistakes."""
    if shared:
        t = torch.full_like(t, float(t[0]))
    tt = t if no_broadcast else t.reshape(-1, 1)
    x_t = (1 - tt) * x0 + tt * z if path == "straight" else tt * x0 + (1 - tt) * z
    goal = {"velocity": z - x0, "minus": x0 - z, "x_t": x_t, "z": z}[target]
    v = net(x_t if at == "x_t" else x0, t if net_t == "t" else 1 - t)
    err = ((v - goal) ** 2).sum(dim=1)
    if not squared:
        err = err.sqrt()
    loss = {"mean": err.mean(), "sum": err.sum(), "none": err, "coords": ((v - goal) ** 2).mean()}[reduce]
    loss = loss / 2 if half else loss
    return loss.detach() if detach else loss


CFM = [
    (dict(target="minus"), "the target is x0 - z"),
    (dict(path="reversed"), "the path is t x0 + (1 - t) z"),
    (dict(target="x_t"), "the target is x_t itself"),
    (dict(target="z"), "the target is the noise z"),
    (dict(at="x0"), "the network is evaluated at the data x0"),
    (dict(net_t="1-t"), "the network gets 1 - t"),
    (dict(shared=True), "every row uses the same time t[0]"),
    (dict(reduce="sum"), "the loss is summed over the batch"),
    (dict(reduce="coords"), "the mean over all entries divides by the dimension too"),
    (dict(half=True), "a factor 1/2"),
    (dict(squared=False), "the norm is not squared"),
    (dict(reduce="none"), "your loss has shape (24,); expected a 0-d tensor"),
    (dict(no_broadcast=True), "torch could not broadcast"),
    (dict(detach=True), "carries no gradient"),
]


def test_cfm_loss_solution_passes(capsys):
    sg.exercises.check_cfm_loss(cfm)
    assert "cfm_loss: passed" in capsys.readouterr().out


def test_cfm_loss_check_replays_the_packages_draws():
    """The check hands the student the draws sg.flow.cfm_loss makes (t given, z from the seed), so the reference
    loss is the student's loss on them, to the last bit of float64."""
    net = ef._TinyVelocityNet(2, seed=5)
    x0 = sg.densities.ring(dtype=torch.float64).sample(16, generator=torch.Generator().manual_seed(6))
    t = torch.rand(16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = sg.flow.cfm_loss(net, x0, generator=torch.Generator().manual_seed(8), t=t)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    torch.testing.assert_close(cfm(net, x0, t, z), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kw, hint", CFM, ids=[h[:40] for _, h in CFM])
def test_cfm_loss_mistakes_are_recognised(kw, hint):
    with pytest.raises(ExerciseFailed) as err:
        sg.exercises.check_cfm_loss(lambda *a: cfm(*a, **kw))
    assert hint in str(err.value) and str(err.value).startswith("cfm_loss: ")
    others = [h for k, h in CFM if k != kw]
    assert not any(h in str(err.value) for h in others), str(err.value)


def test_cfm_loss_time_of_the_wrong_shape_is_refused():
    """net(x, t) takes t of shape (n,): a student who passes t[:, None] (or a float) is told so."""
    def column_t(net, x0, t, z):
        tt = t[:, None]
        return ((net((1 - tt) * x0 + tt * z, tt) - (z - x0)) ** 2).sum(1).mean()

    with pytest.raises(ExerciseFailed, match=r"called with t of shape \(24, 1\); it takes t as a tensor of shape "
                                             r"\(24,\)"):
        sg.exercises.check_cfm_loss(column_t)
    with pytest.raises(ExerciseFailed, match="returned float; expected a torch.Tensor"):
        sg.exercises.check_cfm_loss(lambda *a: cfm(*a).item())


# ------------------------------------------------------------------------------------------------ Euler flow
def euler(velocity_fn, z, n_steps, *, sign=-1.0, upward=False, short=False, n_points=None, at_end=False,
          once=False, flip=False, t_as=None, inplace=False, ret="x"):
    """A student's Euler flow sampler, with switches for the mistakes."""
    n = z.shape[0]
    dt = 1.0 / n_steps
    x = z if inplace else z.clone()
    path = [x.clone()]
    times = [k * dt for k in range(n_steps)] if upward else [1.0 - k * dt for k in range(n_steps)]
    if n_points is not None:                       # linspace(1, 0, n_steps): n_steps - 1 steps
        grid = torch.linspace(1.0, 0.0, n_points, dtype=torch.float64).tolist()
        times, dt = grid[:-1], 1.0 / (n_points - 1)
    if short:
        times = times[:-1]
    v = None
    for t in times:
        at = (t - dt if not upward else t + dt) if at_end else t
        at = 1.0 - at if flip else at
        tv = {None: torch.full((n,), at, dtype=x.dtype), "float": at,
              "column": torch.full((n, 1), at, dtype=x.dtype)}[t_as]
        if v is None or not once:
            v = velocity_fn(x, tv)
        if inplace:
            x += (-sign if upward else sign) * dt * v
        else:
            x = x + (-sign if upward else sign) * dt * v
        path.append(x.clone())
    return {"x": x, "tuple": (x, n_steps), "path": torch.stack(path)}[ret]


EULER = [
    (dict(sign=1.0), "the step goes forwards in time"),
    (dict(upward=True), "the loop runs t from 0 up to 1"),
    (dict(short=True), "one step short"),
    (dict(n_points="N"), "the time grid has N points"),
    (dict(at_end=True), "the velocity is taken at the step's end time"),
    (dict(once=True), "the velocity is computed once"),
    (dict(flip=True), "the velocity is given 1 - t"),
    (dict(t_as="float"), "called with t of float; it takes t as a tensor of shape (10,)"),
    (dict(t_as="column"), "called with t of shape (10, 1)"),
    (dict(inplace=True), "changed z in place"),
    (dict(ret="tuple"), "returned a tuple; expected only x at t = 0"),
    (dict(ret="path"), "the whole path"),
]


def _euler_with(kw):
    if kw.get("n_points") == "N":
        return lambda f, z, n: euler(f, z, n, n_points=n)
    return lambda *a: euler(*a, **kw)


def test_euler_flow_solution_and_reference_pass(capsys):
    sg.exercises.check_euler_flow(euler)
    sg.exercises.check_euler_flow(ef.euler_flow_reference)
    sg.exercises.check_euler_flow(lambda f, z, n: sg.flow.euler_flow(f, z, n, dtype=z.dtype)[0])
    assert capsys.readouterr().out.count("euler_flow: passed") == 3


def test_euler_flow_accepts_float32_times():
    """A grid built in torch's default dtype (float32 times) is within the tolerance; the catalogue is far beyond it."""
    def f32(velocity_fn, z, n_steps):
        ts = torch.linspace(1, 0, n_steps + 1)
        x = z.clone()
        for k in range(n_steps):
            x = x + float(ts[k + 1] - ts[k]) * velocity_fn(x, torch.full((len(x),), float(ts[k])).to(x.dtype))
        return x

    sg.exercises.check_euler_flow(f32)


@pytest.mark.parametrize("kw, hint", EULER, ids=[h[:40] for _, h in EULER])
def test_euler_flow_mistakes_are_recognised(kw, hint):
    with pytest.raises(ExerciseFailed) as err:
        sg.exercises.check_euler_flow(_euler_with(kw))
    assert hint in str(err.value) and str(err.value).startswith("euler_flow: ")
    others = [h for k, h in EULER if k != kw]
    assert not any(h in str(err.value) for h in others), str(err.value)


def test_euler_flow_time_outside_the_interval_is_named():
    """A loop that counts t past 0 (or above 1) is told where it evaluated the velocity."""
    def past_zero(velocity_fn, z, n_steps):
        x = z.clone()
        for k in range(n_steps):
            x = x - velocity_fn(x, torch.full((len(x),), 1.0 - (k + 1.5) / n_steps, dtype=x.dtype)) / n_steps
        return x

    with pytest.raises(ExerciseFailed, match=r"velocity_fn was called at t = -0.1, outside \[0, 1\]"):
        sg.exercises.check_euler_flow(past_zero)


def test_euler_flow_wrong_result_is_located():
    with pytest.raises(ExerciseFailed, match=r"euler_flow: \d+ of 10 rows are wrong.*point \d+ starting from z = "):
        sg.exercises.check_euler_flow(lambda *a: 1.01 * euler(*a))


# -------------------------------------------------------------------------------------- velocity from a score
def vfs(score, x, t, *, sign=-1.0, denom="1-t", t_pow=1, score_over_t=False, score_sign=1.0, inverse=False,
        no_x=False, no_broadcast=False):
    """A student's velocity from a score, with switches for the mistakes."""
    tt = t if no_broadcast else t[:, None]
    if inverse:
        return -(x + (1 - tt) * score) / tt
    e_z = -(score / tt if score_over_t else tt**t_pow * score_sign * score)      # E[z | x]
    num = e_z if no_x else e_z - x                                               # (E[z | x] - x)
    d = {"1-t": 1 - tt, "none": 1.0, "t": tt, "sq": (1 - tt) ** 2}[denom]
    return -sign * num / d


VFS = [
    (dict(sign=1.0), "the sign: v = -(x + t score) / (1 - t)"),
    (dict(denom="none"), "the division by 1 - t is missing"),
    (dict(t_pow=2), "t^2 where t belongs"),
    (dict(score_over_t=True), "score / t where t score belongs"),
    (dict(score_sign=-1.0), "the score's sign"),
    (dict(denom="t"), "the denominator is 1 - t, not t"),
    (dict(inverse=True), "that is the inverse formula's shape"),
    (dict(denom="sq"), "the denominator is 1 - t, not squared"),
    (dict(no_x=True), "x is missing"),
    (dict(no_broadcast=True), "torch could not broadcast"),
]


def test_velocity_from_score_solution_and_reference_pass(capsys):
    sg.exercises.check_velocity_from_score(vfs)
    sg.exercises.check_velocity_from_score(sg.flow.velocity_from_score)
    assert capsys.readouterr().out.count("velocity_from_score: passed") == 2


def test_velocity_from_the_exact_score_is_the_exact_velocity():
    """What the check's pass line claims: with the exact score, -(x + t s) / (1 - t) is the exact marginal
    velocity of the mixture (the two closed forms of sg.flow agree to rounding)."""
    p = sg.densities.two_modes(dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x, t = 3 * torch.randn(50, 2, generator=gen, dtype=torch.float64), torch.linspace(0.02, 0.98, 50, dtype=torch.float64)
    s = sg.flow.marginal_score(p, x, t)
    torch.testing.assert_close(vfs(s, x, t), sg.flow.marginal_velocity(p, x, t), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kw, hint", VFS, ids=[h[:40] for _, h in VFS])
def test_velocity_from_score_mistakes_are_recognised(kw, hint):
    with pytest.raises(ExerciseFailed) as err:
        sg.exercises.check_velocity_from_score(lambda *a: vfs(*a, **kw))
    assert hint in str(err.value) and str(err.value).startswith("velocity_from_score: ")
    others = [h for k, h in VFS if k != kw]
    assert not any(h in str(err.value) for h in others), str(err.value)


def test_velocity_from_score_wrong_return_types():
    with pytest.raises(ExerciseFailed, match="returned tuple; expected a torch.Tensor"):
        sg.exercises.check_velocity_from_score(lambda *a: (vfs(*a), 0))
    with pytest.raises(ExerciseFailed, match=r"your result has shape \(12,\); expected \(12, 2\)"):
        sg.exercises.check_velocity_from_score(lambda *a: vfs(*a).sum(1))
    with pytest.raises(ExerciseFailed, match=r"rows are wrong.*row \d+ \(t = "):
        sg.exercises.check_velocity_from_score(lambda *a: vfs(*a) + 1e-3)


# --------------------------------------------------------------------------------------------------- points
def test_checks_are_registered_with_points():
    assert set(ef.POINTS) == set(ef.__all__) == {"check_cfm_loss", "check_euler_flow", "check_velocity_from_score"}
    for name in ef.__all__:
        assert getattr(sg.exercises, name) is getattr(ef, name) and name in sg.exercises.__all__
        assert sg.exercises.POINTS[name] == ef.POINTS[name] == getattr(ef, name).points in (2, 3)
