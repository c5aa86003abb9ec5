"""Exercise checks for methods students build whole: notebooks 04-05: the NCSN loss weighted over the ladder (04), annealed Langevin dynamics, the double loop (05).
Re-exported by ``sg.exercises``, so notebooks call ``sg.exercises.check_...``; points for nbgrader in ``POINTS``.

Both checks take their reference from the package (``sg.losses.ncsn_loss``, ``sg.samplers.annealed_langevin``),
run with a seeded generator whose draws (levels, noise) are handed to the student's function, so the two see
the same randomness. ``train_ncsn_with_loss`` trains notebook 04's network with the student's loss."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, compare, fmt, passed  # noqa: F401

__all__: list[str] = ["check_ncsn_loss", "check_annealed_langevin", "train_ncsn_with_loss"]

#: nbgrader points of each check here (merged into ``sg.exercises.POINTS``)
POINTS: dict[str, int] = {"check_ncsn_loss": 2, "check_annealed_langevin": 3}


# ---------------------------------------------------------------------------------------------------------------
# notebook 04: the NCSN loss, eqs. (4)-(5)
# ---------------------------------------------------------------------------------------------------------------

class _TinyNCSN(torch.nn.Module):
    """A small fixed network s(x, sigma) for ``check_ncsn_loss`` (float64, with parameters, so the loss has a
    gradient); it insists on sigma of shape (n,), one level per row, as ``ConditionalMLPScore`` takes it."""

    def __init__(self, dim: int):
        super().__init__()
        gen = torch.Generator().manual_seed(41)
        self.w = torch.nn.Parameter(torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim)
        self.b = torch.nn.Parameter(torch.randn(dim, generator=gen, dtype=torch.float64))

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype)
        if sigma.shape != (x.shape[0],):
            raise ExerciseFailed(f"ncsn_loss: the network was called with sigma of shape {tuple(sigma.shape)}; it "
                                 f"takes one noise level per row, shape ({x.shape[0]},): sigmas[idx].")
        if (sigma <= 0).any():
            raise ExerciseFailed("ncsn_loss: the network was called with a noise level <= 0; pass the levels "
                                 "sigmas[idx], not the indices idx.")
        return torch.tanh(x @ self.w + self.b + torch.log(sigma)[:, None]) / sigma[:, None]


def _ncsn_per_point(net, x, sig, z, *, noise_var=False, score_at_data=False):
    """(1/2) || s(x~, sigma) - target ||^2 per point, with the variants of the catalogue."""
    col = sig[:, None]
    x_tilde = x + (col**2 if noise_var else col) * z
    s = net(x if score_at_data else x_tilde, sig)
    return 0.5 * (s - (-(x_tilde - x) / col**2)).pow(2).sum(1)


def check_ncsn_loss(fn) -> None:
    """Check ``fn(score_net, x, sigmas, idx, z) -> loss``: the NCSN objective, eqs. (4)-(5), with
    lambda(sigma) = sigma^2, on given levels and noise (notebook 04). Row k of the batch ``x`` (n, D) gets the
    level sigma = sigmas[idx[k]] and the noise z[k]: x~ = x + sigma z, the kernel's score -(x~ - x)/sigma^2, and
    the loss is the batch mean of sigma^2 (1/2) || s(x~, sigma) + (x~ - x)/sigma^2 ||^2 (summed over the
    coordinates), a 0-d tensor that keeps the network's gradient. Drawing the level uniformly per row makes the
    batch mean an unbiased estimate of (1/L) sum_i lambda(sigma_i) l(theta; sigma_i): no extra 1/L. As
    ``sg.losses.ncsn_loss`` (the reference, run with the same draws).

    Recognised mistakes: lambda = 1, sigma instead of sigma^2 in the weight, sigma instead of sigma^2 in the target,
    the missing 1/2, the target's sign, the mean over coordinates instead of their sum, an extra 1/L, the score
    evaluated at the clean x, and the noise scaled by sigma^2 (the variance) instead of sigma."""
    from ..core.losses import ncsn_loss
    from ..core.schedules import geometric_sigmas

    n, dim = 40, 3
    net = _TinyNCSN(dim)
    data_gen = torch.Generator().manual_seed(42)
    x = 2 * torch.randn(n, dim, generator=data_gen, dtype=torch.float64)
    sigmas = geometric_sigmas(5.0, 0.05, 6, dtype=torch.float64)
    seed = 43
    gen = torch.Generator().manual_seed(seed)                  # the draws of sg.losses.ncsn_loss, in its order
    idx = torch.randint(len(sigmas), (n,), generator=gen)
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    with torch.no_grad():
        want = ncsn_loss(net, x, sigmas, weighting=2.0, generator=torch.Generator().manual_seed(seed))
        sig = sigmas[idx]
        per = _ncsn_per_point(net, x, sig, z)
        mistakes = [
            (per.mean(), "that is lambda = 1: eq. (5) weights level i by lambda(sigma_i) = sigma_i^2, so that every "
                         "level's term is of order one (unweighted, the smallest levels dominate)"),
            ((sig * per).mean(), "the weight is sigma, not sigma^2: lambda(sigma) = sigma^2 balances a score of size "
                                 "1/sigma, whose squared error is of size 1/sigma^2"),
            ((sig**2 * 0.5 * (net(x + sig[:, None] * z, sig) + z).pow(2).sum(1)).mean(),
             "the target is -(x~ - x)/sigma^2 = -z/sigma; -(x~ - x)/sigma = -z divides by sigma once only"),
            (2 * want, "eq. (4) has a factor 1/2 in front of the squared norm"),
            ((sig**2 * 0.5 * (net(x + sig[:, None] * z, sig) - z / sig[:, None]).pow(2).sum(1)).mean(),
             "the sign of the target: the kernel's score -(x~ - x)/sigma^2 points back to x, so the error is "
             "s + (x~ - x)/sigma^2"),
            (want / dim, "the mean over all entries divides by the dimension too: sum the squared error over the "
                         "coordinates, then average over the batch"),
            (want / len(sigmas), "an extra 1/L: each row's level is drawn uniformly, so the batch mean already "
                                 "estimates (1/L) sum_i; dividing by L again counts the 1/L twice"),
            ((sig**2 * _ncsn_per_point(net, x, sig, z, score_at_data=True)).mean(),
             "the network was evaluated at the clean x: eq. (4) evaluates s_theta at the noisy x~ = x + sigma z"),
            ((sig**2 * _ncsn_per_point(net, x, sig, z, noise_var=True)).mean(),
             "the noise was scaled by sigma^2: x~ = x + sigma z has standard deviation sigma (variance sigma^2)"),
        ]
    got = fn(net, x.clone(), sigmas.clone(), idx.clone(), z.clone())
    if isinstance(got, torch.Tensor) and got.dim() != 0:
        raise ExerciseFailed(f"ncsn_loss: your loss has shape {tuple(got.shape)}; expected a 0-d tensor (the batch "
                             f"mean, e.g. .mean() at the end).")
    compare("ncsn_loss", got, want, 1e-9 * float(want),
            f"eqs. (4)-(5) with lambda = sigma^2 on a batch of {n} points in {dim}D over {len(sigmas)} levels",
            mistakes=mistakes)
    if not got.requires_grad:
        raise ExerciseFailed("ncsn_loss: your loss carries no gradient (it was detached, computed under no_grad or "
                             "turned into a float): training needs loss.backward() to reach the network.")
    passed("ncsn_loss", "eqs. (4)-(5) with lambda = sigma^2 on given levels and noise, with its gradient")


def train_ncsn_with_loss(loss_fn, data, sigmas, *, n_steps: int, divide_by_sigma: bool = True, seed: int = 0,
                         device=None, progress: bool = True, **kwargs):
    """``sg.train.train_ncsn`` with the student's loss ``loss_fn(score_net, x, sigmas, idx, z)`` (notebook 04,
    exercise 2) in place of ``sg.losses.ncsn_loss``: each batch draws one level index per row and the noise from
    the global torch RNG, in ``ncsn_loss``'s order, so a correct loss trains the network that ``train_ncsn``
    trains (same seed, same draws: the same weights up to float rounding). Same network (``ConditionalMLPScore``, output divided by
    sigma when ``divide_by_sigma``), same ``fit`` loop and EMA; ``kwargs`` go to ``fit`` (``batch_size``, ``lr``,
    ``ema_decay``; defaults as ``train_ncsn``). Returns (net, FitResult). Introduced in notebooks/04_ncsn.ipynb."""
    from .. import validate
    from ..core.nets import ConditionalMLPScore
    from ..core.train import sigma_divisor, fit

    if not callable(loss_fn):
        raise TypeError(f"loss_fn={loss_fn!r} must be callable: loss_fn(score_net, x, sigmas, idx, z) -> 0-d tensor.")
    data = validate.points("data", data)
    sigmas = torch.as_tensor(sigmas)
    options = {"batch_size": 512, "lr": 2e-3, "ema_decay": 0.999, **kwargs}
    torch.manual_seed(seed)
    net = ConditionalMLPScore(data.shape[1], hidden=128, n_layers=3,
                              output_divisor=sigma_divisor if divide_by_sigma else None)

    def batch_loss(score_net, x):
        levels = sigmas.to(x.device, x.dtype)
        idx = torch.randint(len(levels), (len(x),), device=x.device)     # as ncsn_loss: the levels, then the noise
        z = torch.randn(x.shape, device=x.device, dtype=x.dtype)
        return loss_fn(score_net, x, levels, idx, z)

    result = fit(net, batch_loss, data, n_steps=n_steps, seed=seed, device=device, progress=progress,
                 desc="NCSN (your loss)", **options)
    if result.ema is not None:
        result.ema.copy_to(net)
    return net.requires_grad_(False), result


# ---------------------------------------------------------------------------------------------------------------
# notebook 05: annealed Langevin dynamics
# ---------------------------------------------------------------------------------------------------------------

def _annealed_reference(score_fn, x0, sigmas, step_size, zs, *, power=2, ref=-1, restart=False, noise=1.0,
                        drift=0.5, level_shift=0, fixed_level=None, noise_first=False):
    """The double loop of ``check_annealed_langevin``'s catalogue: the path (L + 1, n, D) of annealed Langevin
    with eps_i = step_size (sigma_i / sigma_ref)^power, each variant switched on by one keyword."""
    sig = [float(s) for s in sigmas]
    x, path = x0.clone(), [x0.clone()]
    for i, sigma in enumerate(sig):
        eps_i = step_size * (sigma / sig[ref]) ** power
        if restart:
            x = x0.clone()
        at = sig[fixed_level] if fixed_level is not None else sig[i - level_shift]
        for t in range(zs.shape[1]):
            if noise_first:
                x = x + math.sqrt(noise * eps_i) * zs[i, t]
                x = x + drift * eps_i * score_fn(x, at)
            else:
                x = x + drift * eps_i * score_fn(x, at) + math.sqrt(noise * eps_i) * zs[i, t]
        path.append(x.clone())
    return torch.stack(path)


def check_annealed_langevin(fn) -> None:
    """Check ``fn(score_fn, x0, sigmas, step_size, zs) -> path``: annealed Langevin dynamics, the double loop
    (notebook 05). For each level i = 1..L (``sigmas`` descending), T = zs.shape[1] steps of eq. (1) at that level,

        x <- x + (eps_i / 2) score_fn(x, sigma_i) + sqrt(eps_i) zs[i, t],   eps_i = step_size sigma_i^2 / sigma_L^2,

    starting from x0 and handing the last state of each level to the next; ``score_fn(x, sigma)`` takes sigma as a
    Python float. Returns the path (L + 1, n, D): x0, then the state after each level. As
    ``sg.samplers.annealed_langevin(..., return_path=True)`` (the reference, run with the same noise).

    Recognised mistakes: eps_i with sigma instead of sigma^2, a constant step size, the step normalised by sigma_1,
    the chain restarted from x0 at each level, noise sqrt(2 eps_i) (the NCSN code's convention) with eq. (1)'s drift,
    the NCSN code's update with a = eps_i, the score at the previous level (sigmas[i - 1]) or at sigma_L throughout,
    and the score evaluated after the noise was added."""
    from ..core.densities import two_modes
    from ..core.mcmc import annealed_langevin
    from ..core.schedules import geometric_sigmas

    p = two_modes(torch.float64)
    score_fn = p.perturbed_score
    n, n_steps = 16, 4
    sigmas = geometric_sigmas(10.0, 0.1, 5, dtype=torch.float64)
    step_size = 5e-3
    gen = torch.Generator().manual_seed(51)
    x0 = (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * 20
    seed = 52
    noise_gen = torch.Generator().manual_seed(seed)               # the package's draws, one (n, D) per step, in order
    zs = torch.stack([torch.stack([torch.randn(x0.shape, generator=noise_gen, dtype=x0.dtype)
                                   for _ in range(n_steps)]) for _ in range(len(sigmas))])
    _, want = annealed_langevin(score_fn, x0, sigmas, step_size, n_steps, return_path=True,
                                generator=torch.Generator().manual_seed(seed))
    run = lambda **kw: _annealed_reference(score_fn, x0, sigmas, step_size, zs, **kw)  # noqa: E731
    mistakes = [
        (run(power=1), "eps_i = eps sigma_i / sigma_L is not squared: the score scales like 1/sigma_i, so the step "
                       "must scale like sigma_i^2 to keep the update's signal-to-noise ratio"),
        (run(power=0), "the step size is the same at every level: eps_i = eps sigma_i^2 / sigma_L^2 grows with the "
                       "level's sigma, or the chains barely move at the large levels"),
        (run(ref=0), "the step is normalised by sigma_1: eps_i = eps sigma_i^2 / sigma_L^2, so the last (smallest) "
                     "level takes the step eps"),
        (run(restart=True), "the chain restarts from x0 at each level: the last state of level i is the start of "
                            "level i + 1 (that hand-over is what annealing is)"),
        (run(noise=2.0), "the noise is sqrt(2 eps_i) z: that is the NCSN code's convention x + a s + sqrt(2a) z; "
                         "eq. (1) pairs the drift (eps_i/2) s with the noise sqrt(eps_i) z"),
        (run(noise=2.0, drift=1.0), "that is the NCSN code's update x + a s + sqrt(2a) z with a = eps_i, twice "
                                    "eq. (1)'s step: in eq. (1)'s convention a = eps_i / 2, i.e. (eps_i/2) s + "
                                    "sqrt(eps_i) z"),
        (run(level_shift=1), "the score is taken at the wrong level (sigmas[i - 1]): at level i use score_fn(x, "
                             "sigmas[i]), the level whose step eps_i you take"),
        (run(fixed_level=-1), "the score is taken at sigma_L at every level: level i needs the score of q_sigma_i, "
                              "score_fn(x, sigmas[i])"),
        (run(noise_first=True), "the score was evaluated after the noise was added: eq. (1) evaluates the score at "
                                "the current x, then adds (eps_i/2) s(x) and sqrt(eps_i) z together"),
    ]
    got = fn(score_fn, x0.clone(), sigmas.clone(), step_size, zs.clone())
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (len(sigmas), n, 2):
        raise ExerciseFailed(f"annealed_langevin: your path has shape {tuple(got.shape)}, one state per level; "
                             f"expected {tuple(want.shape)}: x0 first, then the state after each of the "
                             f"{len(sigmas)} levels.")
    compare("annealed_langevin", got, want, 1e-8 * float(want.abs().max()),
            f"the path (x0, then after each level) of {len(sigmas)} levels x {n_steps} steps, step_size={step_size}, "
            f"{n} chains on the 0.2/0.8 mixture", mistakes=mistakes,
            where=lambda i: "the start x0" if i == 0 else f"the end of level {i} (sigma = {float(sigmas[i - 1]):.3g})")
    passed("annealed_langevin", f"{len(sigmas)} levels x {n_steps} steps of eq. (1) with eps_i = eps sigma_i^2 / "
                                f"sigma_L^2, each level starting where the last ended")
