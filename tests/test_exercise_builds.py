"""The checks of notebooks 01-03's whole-method exercises (sg.exercises.nb01_... to nb03_...): a student's correct
solution passes, and every catalogued mistake, written as a student would write it, gets its own hint and no other's."""
import math

import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.exercises import ExerciseFailed
from scoregen_lite.exercises import nb01_scores_and_langevin as nb01
from scoregen_lite.exercises import nb02_score_matching as nb02
from scoregen_lite.exercises import nb03_denoising_score_matching as nb03
from scoregen_lite.exercises.checking import TinyNet


# ------------------------------------------------------------------------------------ 01: the Langevin sampler
def langevin(score_fn, x0, step_size, n_steps, zs, drift=0.5, noise=None, same_z=False, short=False,
             noise_first=False, score_once=False, inplace=False):
    """A student's sampler, with switches for the mistakes."""
    scale = math.sqrt(step_size) if noise is None else noise(step_size)
    x = x0 if inplace else x0.clone()
    s = score_fn(x)
    for k in range(n_steps - 1 if short else n_steps):
        z = zs[0] if same_z else zs[k]
        if noise_first:
            x = x + scale * z
            x = x + drift * step_size * score_fn(x)
            continue
        if not score_once:
            s = score_fn(x)
        if inplace:
            x += drift * step_size * s + scale * z
        else:
            x = x + drift * step_size * s + scale * z
    return x


LANGEVIN = [
    (dict(drift=1.0), "moves by (eps/2) * score"),
    (dict(noise=lambda e: e), "the noise is eps * z"),
    (dict(noise=lambda e: math.sqrt(2 * e)), "NCSN code's convention"),
    (dict(noise=lambda e: 0.0), "gradient ascent"),
    (dict(same_z=True), "the same noise zs[0]"),
    (dict(short=True), "one step too few"),
    (dict(noise_first=True), "evaluated after the noise was added"),
    (dict(score_once=True), "computed once, before the loop"),
    (dict(inplace=True), "changed x0 in place"),
]

# ------------------------------------------------------------------------------------ 02: sliced score matching


def ssm(score_net, x, v, variance_reduction, half=0.5, sign=1.0, swap=False, sum_grad=False, entry_mean=False,
        sum_proj=False, first=False, exact=False, create_graph=True):
    """A student's sliced score matching loss, with switches for the mistakes."""
    x = x.detach().requires_grad_(True)
    s = score_net(x)
    if exact:
        return sg.losses.explicit_score_matching(score_net, x)
    vr = variance_reduction != swap
    terms = []
    for vj in (v[:1] if first else v):
        (g,) = torch.autograd.grad((vj * s).sum(), x, create_graph=create_graph, retain_graph=True)
        vjv = g.sum(1) if sum_grad else (vj * g).sum(1)
        if entry_mean:
            terms.append((vj * g + half * s.pow(2)).mean(1))
            continue
        sq = s.pow(2).sum(1) if vr else (vj * s).sum(1).pow(2)
        terms.append(sign * vjv + half * sq)
    t = torch.stack(terms)
    return t.sum(0).mean() if sum_proj else t.mean()


SSM = [
    (dict(half=1.0), "the 1/2 in front of the squared term"),
    (dict(sign=-1.0), "the sign of the trace term"),
    (dict(swap=True), "the two forms are swapped"),
    (dict(sum_grad=True), "summed over the coordinates"),
    (dict(entry_mean=True), "divides by D too"),
    (dict(sum_proj=True), "the projections are summed"),
    (dict(first=True), "only the first projection"),
    (dict(exact=True), "the exact Jacobian trace"),
    (dict(create_graph=False), "create_graph=True"),
]

# ------------------------------------------------------------------------------------ 03: DSM and one step


def dsm(score_net, x, sigma, z, sign=1.0, target_pow=2, scale=None, half=0.5, coord_mean=False, clean=False,
        diff_as_z=False):
    """A student's DSM loss, eq. (3), with switches for the mistakes."""
    x_tilde = x + (sigma if scale is None else scale(sigma)) * z
    s = score_net(x if clean else x_tilde)
    target = -((z if diff_as_z else x_tilde - x)) / sigma**target_pow
    r = (s - sign * target).pow(2)
    return half * (r.mean() if coord_mean else r.sum(1).mean())


DSM = [
    (dict(sign=-1.0), "the target's sign"),
    (dict(target_pow=1), "the target divides by sigma"),
    (dict(scale=lambda s: 1.0), "x~ = x + z"),
    (dict(half=1.0), "the 1/2 of eq. (3) is missing"),
    (dict(coord_mean=True), "divides by the dimension too"),
    (dict(clean=True), "evaluated at the clean x"),
    (dict(scale=lambda s: s**2), "x~ = x + sigma^2 z"),
    (dict(diff_as_z=True), "takes x~ - x as z"),
]


def dsm_step(score_net, optimizer, loss_fn, x, sigma, z, zero="before", step=True, item=True, after=False):
    """A student's optimiser step on eq. (3), with switches for the mistakes."""
    if zero == "before":
        optimizer.zero_grad()
    loss = loss_fn(score_net, x, sigma, z)
    loss.backward()
    if zero == "between":
        optimizer.zero_grad()
    if step:
        optimizer.step()
    if after:
        loss = loss_fn(score_net, x, sigma, z)
    return loss.item() if item else loss


STEP = [
    (dict(zero=None), "never cleared"),
    (dict(step=False), "the weights never change"),
    (dict(zero="between"), "the weights never change"),
    (dict(item=False), "expected the loss as a Python float"),
    (dict(after=True), "expected the loss before the step"),
]


def _with(fn, **kw):
    return lambda *a: fn(*a, **kw)


def test_solutions_pass(capsys):
    sg.exercises.check_langevin(langevin)
    sg.exercises.check_sliced_score_matching(ssm)
    sg.exercises.check_denoising_score_matching(dsm)
    sg.exercises.check_dsm_step(dsm_step)
    out = capsys.readouterr().out
    assert out.count("passed") == 4, out


def test_checks_are_registered_with_points():
    for module, names in ((nb01, ["check_langevin"]), (nb02, ["check_sliced_score_matching"]),
                          (nb03, ["check_denoising_score_matching", "check_dsm_step"])):
        for name in names:     # each check in its notebook's module, its points declared there
            assert getattr(sg.exercises, name) is getattr(module, name)
            assert sg.exercises.POINTS[name] == module.POINTS[name] in (2, 3)
        assert set(module.POINTS) == set(module.__all__)


CATALOGUE = ([("check_langevin", _with(langevin, **kw), key) for kw, key in LANGEVIN]
             + [("check_sliced_score_matching", _with(ssm, **kw), key) for kw, key in SSM]
             + [("check_denoising_score_matching", _with(dsm, **kw), key) for kw, key in DSM]
             + [("check_dsm_step", _with(dsm_step, **kw), key) for kw, key in STEP])


@pytest.mark.parametrize("check, wrong, key", CATALOGUE, ids=[f"{c[0][6:]}-{c[2][:28]}" for c in CATALOGUE])
def test_each_mistake_gets_its_hint(check, wrong, key):
    with pytest.raises(ExerciseFailed) as info:
        getattr(sg.exercises, check)(wrong)
    msg = str(info.value)
    assert key in msg, msg
    others = {k for c, _, k in CATALOGUE if c == check and k != key}
    assert not any(k in msg for k in others), msg


def test_references_agree_with_the_package():
    """The replayed noise is the noise the package's references draw: the hand loops of the checks (without
    mistakes) equal sg.mcmc.langevin and sg.losses.denoising_score_matching on the same seed."""
    p = sg.densities.ring(dtype=torch.float64)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    zs = nb01._replayed_noise(7, x0.shape, 4)
    want = sg.mcmc.langevin(p.score, x0, 0.1, 4, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(nb01._langevin_loop(p.score, x0, 0.1, 4, zs), want, rtol=0, atol=1e-12)
    net = TinyNet(3, seed=1)
    x = torch.randn(8, 3, dtype=torch.float64)
    z = nb01._replayed_noise(9, x.shape, 1)[0]
    want = sg.losses.denoising_score_matching(net, x, 0.7, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(nb03._dsm_value(net, x, 0.7, z), want, rtol=1e-12)


@pytest.mark.parametrize("check, wrong, match", [
    ("check_langevin", lambda s, x0, e, n, zs: x0, r"rows are wrong; largest error .* chain \d+ starting at x0 = "),
    ("check_langevin", lambda s, x0, e, n, zs: (x0, x0), "expected only the last state"),
    ("check_langevin", lambda s, x0, e, n, zs: torch.cat([x0[None], zs + x0]), "the whole path"),
    ("check_sliced_score_matching", lambda net, x, v, vr: net(x).pow(2).sum(1), "expected a 0-d tensor"),
    ("check_sliced_score_matching", lambda net, x, v, vr: ssm(net, x, v, vr).detach(), "carries no gradient"),
    ("check_sliced_score_matching", lambda net, x, v, vr: torch.autograd.grad((v[0] * net(x)).sum(), x)[0].sum(),
     r"does not require grad: the batch x comes without it .* x.detach\(\).requires_grad_\(True\)"),
    ("check_denoising_score_matching", lambda net, x, s, z: dsm(net, x, s, z).item(), "expected a torch.Tensor"),
    ("check_denoising_score_matching", lambda net, x, s, z: dsm(net, x, s, z).detach(), "carries no gradient"),
])
def test_other_answers_get_a_clear_message(check, wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        getattr(sg.exercises, check)(wrong)
