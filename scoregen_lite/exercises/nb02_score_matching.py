"""Exercise checks of notebook 02, ``notebooks/02_score_matching.ipynb``: Hutchinson's trace estimator and the
sliced score matching loss (SSM and SSM-VR, value and gradient; reference ``sg.losses.sliced_score_matching`` with
the projections handed to the student's function)."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, TinyNet, compare, compare_loss, passed, points, points_of

__all__: list[str] = ["check_hutchinson_trace", "check_sliced_score_matching"]


@points(2)
def check_hutchinson_trace(fn) -> None:
    """Check ``fn(f, x, n_samples) -> (n,)``, a Hutchinson estimate of tr(d f / d x) per point
    (notebook 02): unbiased on a linear map, within 5 standard errors, and not the exact trace
    computed some other way (its spread must match the estimator's)."""
    gen = torch.Generator().manual_seed(3)
    D = 6
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    f = lambda x: x @ A.T  # noqa: E731  (Jacobian A, trace tr(A))
    x = torch.randn(400, D, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    est = fn(f, x, 1)
    if not isinstance(est, torch.Tensor) or est.shape != (400,):
        got = tuple(est.shape) if isinstance(est, torch.Tensor) else type(est).__name__
        raise ExerciseFailed(f"hutchinson_trace: returned {got}; expected one estimate per point, shape (400,).")
    sym = 0.5 * (A + A.T)
    sd = math.sqrt(2 * float((sym**2).sum()))  # std of v^T A v for v ~ N(0, I); Rademacher is smaller
    mean_err = abs(float(est.mean()) - float(torch.trace(A)))
    if mean_err > 5 * sd / math.sqrt(400):
        raise ExerciseFailed(f"hutchinson_trace: the mean estimate is off by {mean_err:.3g} (> 5 standard errors); "
                             "is it E[v^T J v] with E[v v^T] = I?")
    if float(est.std()) < 0.1 * sd:
        raise ExerciseFailed("hutchinson_trace: the estimates do not vary: with n_samples=1 each one should use a single "
                             "random projection, not the exact trace.")
    k = 8  # more probes: still unbiased, and the spread shrinks as 1 / sqrt(n_samples)
    est_k = fn(f, x, k)
    mean_err_k = abs(float(est_k.mean()) - float(torch.trace(A)))
    if mean_err_k > 5 * sd / math.sqrt(k * 400):
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the mean estimate is off by {mean_err_k:.3g} "
                             f"(> 5 standard errors); average the {k} projections v^T J v, do not sum them.")
    ratio = float(est_k.std()) / float(est.std())
    if not 0.2 < ratio < 0.6:
        raise ExerciseFailed(f"hutchinson_trace: with n_samples={k} the estimates spread {ratio:.2f} times as much as "
                             f"with 1; averaging {k} independent projections should give about 1/sqrt({k}) = "
                             f"{1 / math.sqrt(k):.2f}. Draw a fresh v for each of the n_samples projections.")
    passed("hutchinson_trace", f"unbiased on a {D}x{D} linear map (mean error {mean_err:.2f}, {5 * sd / 20:.2f} "
                                f"allowed); {k} probes shrink the spread by a factor {ratio:.2f} "
                                f"(1/sqrt({k}) = {1 / math.sqrt(k):.3f} expected)")


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


@points(3)
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
    net = TinyNet(D, seed=32)
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
        compare_loss("sliced_score_matching", got, want, f"{form} with {m} projections on a batch of {n} points in "
                     f"{D}D", mistakes=mistakes, mean="the mean over projections and points")
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


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
