"""Exercise checks for methods students build whole: notebooks 01-03: the whole unadjusted Langevin sampler (01), the sliced score matching loss (02), the DSM loss and one optimiser step (03).
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``.

Each check compares the student's function with the package's reference (``sg.samplers.langevin``,
``sg.losses.sliced_score_matching``, ``sg.losses.denoising_score_matching``) on fixed inputs. The references draw
their own noise from a ``torch.Generator``; the student's function gets the same draws as an argument (replayed
from the same seed), so the comparison is exact, and a catalogue of plausible mistakes, each computed on the same
inputs, gives a hint that teaches."""
from __future__ import annotations

import copy
import math

import torch

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = ["check_langevin", "check_sliced_score_matching", "check_denoising_score_matching",
                      "check_dsm_step"]

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {"check_langevin": 3,                       # 01: the whole sampler, eq. (1)
                          "check_sliced_score_matching": 3,          # 02: SSM and SSM-VR, with its gradient
                          "check_denoising_score_matching": 2,       # 03: eq. (3) at one sigma
                          "check_dsm_step": 2}                       # 03: one optimiser step on it


def _replayed_noise(seed: int, shape, n: int, dtype=torch.float64) -> torch.Tensor:
    """The ``n`` draws ``torch.randn(shape, generator=g)`` that a reference seeded with ``seed`` makes, in order."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for _ in range(n)])


# ---------------------------------------------------------------------------------------------- 01: Langevin
def _langevin_loop(score_fn, x0, step_size, n_steps, zs, *, drift=0.5, noise="sqrt", same_z=False, short=False,
                   noise_first=False, score_once=False):
    """Eq. (1) looped with the noise given (``zs[k]`` at step k), and the catalogued mistakes of ``check_langevin``."""
    scale = {"sqrt": math.sqrt(step_size), "eps": step_size, "sqrt2": math.sqrt(2 * step_size), "none": 0.0}[noise]
    x = x0.clone()
    s0 = score_fn(x)
    for k in range(n_steps - 1 if short else n_steps):
        z = zs[0] if same_z else zs[k]
        if noise_first:
            x = x + scale * z
            x = x + drift * step_size * score_fn(x)
        else:
            x = x + drift * step_size * (s0 if score_once else score_fn(x)) + scale * z
    return x


def check_langevin(fn) -> None:
    """Check ``fn(score_fn, x0, step_size, n_steps, zs) -> x``: the whole unadjusted Langevin sampler, eq. (1)
    (notebook 01): from x = x0 (n, D), ``n_steps`` updates x <- x + (eps/2) score_fn(x) + sqrt(eps) zs[k], with
    eps = ``step_size`` and the noise of step k given as ``zs[k]`` (``zs`` has shape (n_steps, n, D)); return the
    last state x_T, shape (n, D), without changing x0. The reference is ``sg.samplers.langevin`` fed the same noise.

    Recognised mistakes: eps instead of eps/2 on the score, eps or sqrt(2 eps) (the NCSN code's convention) on
    the noise, no noise, the same z at every step, one step too few, the noise added before the score is
    evaluated, the score computed once before the loop, and x0 changed in place."""
    from ..core.densities import ring
    from ..core.mcmc import langevin

    p = ring(dtype=torch.float64)
    score_fn = p.score
    gen = torch.Generator().manual_seed(21)
    x0 = 6 * torch.rand(10, 2, generator=gen, dtype=torch.float64) - 3
    n_steps = 6
    for eps, seed in ((0.02, 22), (0.3, 23)):
        want = langevin(score_fn, x0, eps, n_steps, generator=torch.Generator().manual_seed(seed))
        zs = _replayed_noise(seed, x0.shape, n_steps)
        run = lambda **kw: _langevin_loop(score_fn, x0, eps, n_steps, zs, **kw)  # noqa: E731
        mistakes = [(run(drift=1.0), "the score term is eps * score: eq. (1) moves by (eps/2) * score"),
                    (run(noise="eps"), "the noise is eps * z: its std must be sqrt(eps), so that each step adds "
                                       "variance eps"),
                    (run(noise="sqrt2"), "the noise is sqrt(2 eps) * z, the NCSN code's convention (x + alpha s + "
                                         "sqrt(2 alpha) z with alpha = eps/2); eq. (1) uses sqrt(eps)"),
                    (run(noise="none"), "no noise: without sqrt(eps) z the chains climb to a mode (gradient ascent) "
                                        "instead of sampling"),
                    (run(same_z=True), "every step uses the same noise zs[0]: step k needs its own draw zs[k], "
                                       "otherwise the noise adds up coherently and the chain drifts"),
                    (run(short=True), "one step too few: n_steps updates, for k = 0, ..., n_steps - 1 "
                                      "(range(n_steps))"),
                    (run(noise_first=True), "the score is evaluated after the noise was added: eq. (1) takes the "
                                            "score at the current state x_{t-1}, then adds the drift and the noise "
                                            "to it together"),
                    (run(score_once=True), "the score is computed once, before the loop: it must be evaluated at "
                                           "the current state at every step")]
        x_in = x0.clone()
        got = fn(score_fn, x_in, eps, n_steps, zs.clone())
        if isinstance(got, (tuple, list)):
            raise ExerciseFailed(f"langevin: your function returned a {type(got).__name__}; expected only the last "
                                 f"state x_T, a tensor of shape {tuple(x0.shape)}.")
        if isinstance(got, torch.Tensor) and got.shape == (n_steps + 1, *x0.shape):
            raise ExerciseFailed(f"langevin: your result has shape {tuple(got.shape)}, the whole path; return only "
                                 f"the last state x_T, shape {tuple(x0.shape)}.")
        compare("langevin", got, want, 1e-9 * float(want.abs().max()),
                f"{n_steps} steps of eq. (1) with eps = {eps} on the ring of 8 Gaussians",
                mistakes=mistakes, where=lambda i: "chain " + str(i) + " starting at x0 = " + fmt(x0[i]))
        if not torch.equal(x_in, x0):
            raise ExerciseFailed("langevin: the result is right, but your function changed x0 in place (x = x0 "
                                 "then x += ... writes into x0): the caller's starting points are lost; start from "
                                 "x = x0.clone() or write x = x + ...")
    passed("langevin",
           f"{n_steps} steps of eq. (1) for eps = 0.02 and 0.3 match sg.samplers.langevin fed the same noise")


# ----------------------------------------------------------------------------------- 02: sliced score matching
class _TinyNet(torch.nn.Module):
    """A small fixed smooth network s(x) (float64) for the loss checks: a non-constant Jacobian, parameters."""

    def __init__(self, dim: int, seed: int, hidden: int = 8):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(torch.randn(dim, hidden, generator=gen, dtype=torch.float64) / math.sqrt(dim))
        self.b1 = torch.nn.Parameter(0.5 * torch.randn(hidden, generator=gen, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(hidden, dim, generator=gen, dtype=torch.float64) / math.sqrt(hidden))

    def forward(self, x):
        return torch.tanh(x @ self.w1 + self.b1) @ self.w2 - 0.3 * x


def _ssm_terms(net, x, v, create_graph=True):
    """Per projection j and point i: v^T J v, 1^T J v, ||s||^2, (v^T s)^2 and the mean-over-coordinates ||s||^2
    (each (m, n)), for ``check_sliced_score_matching``'s reference terms and mistakes."""
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        s = net(xr)
        out = {k: [] for k in ("vjv", "onejv", "sq", "vs2", "sqmean")}
        for vj in v:
            g = torch.autograd.grad((vj * s).sum(), xr, create_graph=create_graph, retain_graph=True)[0]
            out["vjv"].append((vj * g).sum(1))
            out["onejv"].append(g.sum(1))
            out["sq"].append(s.pow(2).sum(1))
            out["vs2"].append((vj * s).sum(1).pow(2))
            out["sqmean"].append(s.pow(2).mean(1))
    return {k: torch.stack(t) for k, t in out.items()}


def _grads(loss, params):
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(gs, params)])[None]


def check_sliced_score_matching(fn) -> None:
    """Check ``fn(score_net, x, v, variance_reduction) -> loss``: sliced score matching (Song et al. 2019,
    "Sliced score matching", section 3) with the projections given (notebook 02). ``x`` is (n, D), ``v`` is
    (m, n, D): m projection vectors per point. The loss is the mean over the m projections and the n points of

        v^T (grad_x s) v + (1/2) ||s(x)||^2        (variance_reduction=True, SSM-VR)
        v^T (grad_x s) v + (1/2) (v^T s(x))^2      (variance_reduction=False, SSM)

    with v^T (grad_x s) v = v . grad_x (v . s) from one backward pass per projection, a 0-d tensor whose gradient
    reaches the network through both terms (``create_graph=True``). As ``sg.losses.sliced_score_matching``.

    Recognised mistakes: no 1/2, the trace term's sign, the two forms swapped, grad_x(v . s) summed instead of
    dotted with v, the mean over all entries (divided by D), the sum over projections instead of the mean, only
    the first projection used, the exact trace (eq. (2)) instead of the projections, and the trace term without
    ``create_graph`` (right value, wrong gradient)."""
    from ..core.losses import explicit_score_matching, sliced_score_matching

    gen = torch.Generator().manual_seed(31)
    n, D, m = 16, 3, 3
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    net = _TinyNet(D, seed=32)
    params = list(net.parameters())
    for vr, seed in ((True, 33), (False, 34)):
        want = sliced_score_matching(net, x, n_projections=m, variance_reduction=vr,
                                     generator=torch.Generator().manual_seed(seed))
        v = torch.randn((m * n, D), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).reshape(m, n, D)
        t = _ssm_terms(net, x, v)
        norm, other = (t["sq"], t["vs2"]) if vr else (t["vs2"], t["sq"])
        with torch.no_grad():
            mistakes = [((t["vjv"] + norm).mean(), "the 1/2 in front of the squared term is missing"),
                        ((-t["vjv"] + 0.5 * norm).mean(), "the sign of the trace term: eq. (2) has + tr(grad_x s), "
                                                          "estimated by + v^T (grad_x s) v"),
                        ((t["vjv"] + 0.5 * other).mean(), "the two forms are swapped: variance_reduction=True keeps "
                                                          "(1/2) ||s||^2 exact; False uses (1/2) (v^T s)^2"),
                        ((t["onejv"] + 0.5 * norm).mean(), "grad_x(v . s) was summed over the coordinates: v^T J v "
                                                           "is the dot product of v with grad_x(v . s)"),
                        ((t["vjv"] + 0.5 * norm).sum(0).mean(), "the projections are summed: average over the m "
                                                                "projections as well as over the points"),
                        ((t["vjv"][0] + 0.5 * norm[0]).mean(), "only the first projection v[0] is used: average "
                                                               "over all m projections")]
            if vr:
                mistakes += [((t["vjv"] + 0.5 * norm).mean() / D, "the mean over all entries divides by D too: sum "
                                                                   "over the coordinates, then average over points "
                                                                   "and projections"),
                             (explicit_score_matching(net, x).detach(), "that is the exact Jacobian trace, eq. (2): "
                                                                       "sliced score matching replaces it by v^T "
                                                                       "(grad_x s) v with the given projections")]
        try:
            got = fn(net, x.clone(), v.clone(), vr)
        except RuntimeError as err:
            if "require grad" not in str(err):
                raise
            raise ExerciseFailed("sliced_score_matching: torch says that a tensor you differentiate with respect to "
                                 "does not require grad: the batch x comes without it (as training batches do); "
                                 "take x = x.detach().requires_grad_(True) first and compute s_theta from that x") from err
        form = "SSM-VR" if vr else "SSM"
        if isinstance(got, torch.Tensor) and got.dim() != 0:
            raise ExerciseFailed(f"sliced_score_matching: your loss has shape {tuple(got.shape)}; expected a 0-d "
                                 f"tensor (the mean over projections and points, e.g. .mean() at the end).")
        compare("sliced_score_matching", got, want.detach(), 1e-9 * float(want.detach().abs()),
                f"{form} with {m} projections on a batch of {n} points in {D}D", mistakes=mistakes)
        if not got.requires_grad:
            raise ExerciseFailed("sliced_score_matching: your loss carries no gradient (detached, computed under "
                                 "no_grad or turned into a float): training needs loss.backward() to reach the "
                                 "network.")
        want_g, got_g = _grads(want, params), _grads(got, params)
        t_flat = _ssm_terms(net, x, v, create_graph=False)
        flat_mistakes = [(_grads((t_flat["vjv"] + 0.5 * (t_flat["sq"] if vr else t_flat["vs2"])).mean(), params),
                          "the value is right but its gradient misses the trace term: take grad_x(v . s) with "
                          "torch.autograd.grad(..., create_graph=True), so that backward() can differentiate "
                          "v^T (grad_x s) v with respect to the weights")]
        compare("sliced_score_matching", got_g, want_g, 1e-8 * float(want_g.abs().max()),
                f"the gradient of {form} with respect to the network's weights", mistakes=flat_mistakes,
                where=lambda i: "the flattened weight gradient")
    passed("sliced_score_matching", f"SSM-VR and SSM with {m} given projections, value and gradient")


# ------------------------------------------------------------------------------ 03: DSM at one sigma, one step
def _dsm_value(net, x, sigma, z, *, sign=1.0, target="sigma2", half=0.5, reduce="sum", at="noisy", perturb="sigma"):
    """Eq. (3) with Gaussian noise given, and the catalogued mistakes of ``check_denoising_score_matching``."""
    step = {"sigma": sigma, "one": 1.0, "sigma2": sigma**2}[perturb]
    x_tilde = x + step * z
    s = net(x_tilde if at == "noisy" else x)
    tgt = -(x_tilde - x) / (sigma**2 if target == "sigma2" else sigma)
    r = (s - sign * tgt).pow(2)
    return half * (r.sum(1).mean() if reduce == "sum" else r.mean())


def check_denoising_score_matching(fn) -> None:
    """Check ``fn(score_net, x, sigma, z) -> loss``: denoising score matching, eq. (3) (eq. (4) at one level),
    with the noise given (notebook 03): x~ = x + sigma z, and the batch mean of
    (1/2) || s(x~) + (x~ - x) / sigma^2 ||^2 (summed over the coordinates), a 0-d tensor that still carries the
    network's gradient. The reference is ``sg.losses.denoising_score_matching`` fed the same noise.

    Recognised mistakes: the target's sign, (x~ - x)/sigma (sigma where sigma^2 belongs), z / sigma^2 (x~ - x
    taken as z), no 1/2, the mean over coordinates instead of their sum, the network at the clean x, x~ = x + z
    (the noise not scaled) and x~ = x + sigma^2 z (the variance as the std)."""
    from ..core.losses import denoising_score_matching

    gen = torch.Generator().manual_seed(41)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    net = _TinyNet(3, seed=42)
    for sigma, seed in ((0.3, 43), (2.0, 44)):
        want = denoising_score_matching(net, x, sigma, generator=torch.Generator().manual_seed(seed))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        run = lambda **kw: _dsm_value(net, x, sigma, z, **kw).detach()  # noqa: E731
        with torch.no_grad():
            mistakes = [(run(sign=-1.0), "the target's sign: the kernel's score -(x~ - x) / sigma^2 points from x~ "
                                         "back to x, so the error is s(x~) + (x~ - x) / sigma^2"),
                        (run(target="sigma"), "the target divides by sigma: the score of N(x, sigma^2 I) at x~ is "
                                              "-(x~ - x) / sigma^2"),
                        (run(perturb="one"), "x~ = x + z: z is standard normal, scale it by sigma (x~ = x + sigma "
                                             "z)"),
                        (run(half=1.0), "the 1/2 of eq. (3) is missing"),
                        (run(reduce="mean"), "the mean over all entries divides by the dimension too: sum the "
                                             "squared error over the coordinates, then average over the batch"),
                        (run(at="clean"), "the network is evaluated at the clean x: DSM asks s(x~) at the noisy "
                                          "point to point back to x"),
                        (run(perturb="sigma2"), "x~ = x + sigma^2 z: sigma is the noise's standard deviation, so "
                                                "x~ = x + sigma z"),
                        (0.5 * ((net(x + sigma * z) + z / sigma**2).pow(2).sum(1).mean()).detach(),
                         "the target -z / sigma^2 takes x~ - x as z: x~ - x = sigma z, so the target is "
                         "-(x~ - x) / sigma^2 = -z / sigma")]
        got = fn(net, x.clone(), sigma, z.clone())
        if isinstance(got, torch.Tensor) and got.dim() != 0:
            raise ExerciseFailed(f"denoising_score_matching: your loss has shape {tuple(got.shape)}; expected a 0-d "
                                 f"tensor (the batch mean, e.g. .mean() at the end).")
        compare("denoising_score_matching", got, want.detach(), 1e-9 * float(want.detach()),
                f"eq. (3) at sigma = {sigma} on a batch of 32 points in 3D", mistakes=mistakes)
        if not got.requires_grad:
            raise ExerciseFailed("denoising_score_matching: your loss carries no gradient (detached, computed under "
                                 "no_grad or turned into a float): training needs loss.backward() to reach the "
                                 "network.")
    passed("denoising_score_matching", "eq. (3) at sigma = 0.3 and 2, with its gradient")


def _dsm_step_reference(net, optimizer, x, sigma, seed, *, zero=True, step=True):
    """One optimiser step on ``sg.losses.denoising_score_matching`` (noise from ``seed``), as ``check_dsm_step``
    expects it, and its catalogued mistakes."""
    from ..core.losses import denoising_score_matching

    if zero:
        optimizer.zero_grad(set_to_none=True)
    loss = denoising_score_matching(net, x, sigma, generator=torch.Generator().manual_seed(seed))
    loss.backward()
    if step:
        optimizer.step()
    return loss.item()


def check_dsm_step(fn) -> None:
    """Check ``fn(score_net, optimizer, loss_fn, x, sigma, z) -> float``: one optimiser step (notebook 03): clear the
    old gradients, ``loss = loss_fn(score_net, x, sigma, z)`` (eq. (3) with the noise given, the loss of
    ``check_denoising_score_matching``), backpropagate, take the optimiser's step, and return the loss before the
    step as a Python float. Checked on a small network with Adam, over three steps from the same start, each on its
    own batch and noise; the reference loss is ``sg.losses.denoising_score_matching`` fed the same noise.

    Recognised mistakes: gradients never cleared (they add up over steps), no optimiser step or one that sees no
    gradient (zero_grad between backward and step), a tensor returned instead of a float, and the loss returned
    after the step."""
    gen = torch.Generator().manual_seed(51)
    xs = torch.randn(3, 32, 3, generator=gen, dtype=torch.float64)
    sigma, seeds = 0.5, (52, 53, 54)
    start = _TinyNet(3, seed=55)

    def run(step_fn, reference):
        net = copy.deepcopy(start)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        losses = []
        for x, seed in zip(xs, seeds):
            if reference is not None:
                losses.append(step_fn(net, opt, x, sigma, seed, **reference))
            else:
                z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                losses.append(step_fn(net, opt, _dsm_value, x.clone(), sigma, z))
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])[None], losses

    want, want_losses = run(_dsm_step_reference, {})
    got, got_losses = run(fn, None)
    if not all(isinstance(v, float) for v in got_losses):
        kinds = sorted({type(v).__name__ for v in got_losses})
        raise ExerciseFailed(f"dsm_step: it returned {', '.join(kinds)}; expected the loss as a Python float "
                             f"(loss.item()), so that a training loop does not keep every step's graph alive.")
    mistakes = [(run(_dsm_step_reference, {"zero": False})[0],
                 "the gradients are never cleared: backward() adds to .grad, so each step also applies all earlier "
                 "gradients; call optimizer.zero_grad() before backward()"),
                (run(_dsm_step_reference, {"step": False})[0],
                 "the weights never change: call optimizer.step() after backward(), before the gradients are "
                 "cleared again")]
    compare("dsm_step", got, want, 1e-10, "the weights after three steps of Adam on eq. (3) from the same start",
            mistakes=mistakes, where=lambda i: "the flattened weights")
    for k, (g, w) in enumerate(zip(got_losses, want_losses)):
        if abs(g - w) > 1e-9 * abs(w):
            raise ExerciseFailed(f"dsm_step: at step {k + 1} the returned loss is {g:.6g}; expected the loss before "
                                 f"the step, {w:.6g} (return loss.item() of the loss you backpropagated).")
    passed("dsm_step", "three steps of Adam on eq. (3), the loss returned as a float")
