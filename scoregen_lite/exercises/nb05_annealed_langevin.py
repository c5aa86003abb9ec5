"""Exercise checks of notebook 05, ``notebooks/05_annealed_langevin.ipynb``: the step sizes of annealed
Langevin dynamics, eps_i = eps sigma_i^2 / sigma_L^2, and the whole double loop (reference
``sg.samplers.annealed_langevin``, its noise handed to the student's function)."""
from __future__ import annotations

import math

import torch

from .checking import ExerciseFailed, compare, passed, points, points_of

__all__: list[str] = ["check_step_sizes", "check_annealed_langevin"]


@points(1)
def check_step_sizes(fn) -> None:
    """Check ``fn(sigmas, step_size) -> (L,)``: eps_i = step_size * sigma_i^2 / sigma_L^2 (notebook 05).

    Recognised mistakes: sigma_i / sigma_L without the square, the ratio upside down, and sigma_1 (the
    largest level) as the reference instead of sigma_L."""
    from ..core.schedules import geometric_sigmas

    for sig, eps in ((geometric_sigmas(10.0, 0.1, 10, dtype=torch.float64), 5e-3),
                     (torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64), 0.1)):
        want = eps * sig**2 / sig[-1] ** 2
        mistakes = [(eps * sig / sig[-1], "sigma_i / sigma_L is not squared: eps_i must scale like sigma_i^2 (the "
                                          "score scales like 1/sigma_i) to keep the update's signal-to-noise ratio"),
                    (eps * sig[-1] ** 2 / sig**2, "the ratio is upside down: the largest noise level takes the largest step"),
                    (eps * sig**2 / sig[0] ** 2, "the reference level is sigma_1; the rule divides by sigma_L, the "
                                                 "smallest level, whose step is eps")]
        compare("step_sizes", fn(sig, eps), want, 1e-9 * float(eps * (sig[0] / sig[-1]) ** 2),
                 f"eps_i for {len(sig)} levels, eps={eps}", mistakes=mistakes,
                 where=lambda i: f"level {i + 1}, sigma = {float(sig[i]):.4g}")
    passed("step_sizes", "eps_i = eps sigma_i^2 / sigma_L^2 on two ladders")


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


@points(3)
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


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
