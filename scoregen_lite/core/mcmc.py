"""Langevin samplers (Markov chain Monte Carlo driven by a score), the family of notebooks 01 and
05: unadjusted Langevin dynamics (eq. (1)), MALA, and annealed Langevin dynamics over a ladder of
noise levels (NCSN).

Conventions. ``score_fn(x)`` takes a batch x of shape (n, D) (or any shape with the batch
first) and returns a tensor of the same shape. Every sampler is vectorised over chains (rows
of x0), seeded by an optional ``torch.Generator`` on x0's device, and runs under
``torch.no_grad()``. Reachable as ``sg.samplers.<name>`` as well as ``sg.mcmc.<name>``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from .. import validate
from ..runtime import progress_steps, randn_like
from ..validate import SamplerDiverged, call_score, check_callable, check_finite, check_score_output

__all__ = ["langevin", "mala", "annealed_langevin", "SamplerDiverged"]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def langevin(
    score_fn: ScoreFn,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Unadjusted Langevin dynamics, eq. (1) (Song & Ermon 2019, section 2.2; Welling & Teh 2011):

        x_t = x_{t-1} + (eps / 2) * score(x_{t-1}) + sqrt(eps) * z_t,   z_t ~ N(0, I)

    with ``step_size`` = eps (the NCSN code's alpha is eps / 2).

    Args:
        score_fn: x -> grad_x log p(x), same shape as x.
        x0: starting points, one chain per row, shape (n, ...).
        step_size: eps > 0.
        n_steps: number of updates T >= 0.
        return_path: also return every state, shape (n_steps + 1, n, ...).
        generator: seeds the noise z_t (on x0's device).
        progress: show a tqdm bar.

    Returns:
        x_T, or (x_T, path) when ``return_path``.

    Raises:
        SamplerDiverged: the chains overflowed (checked every 100 steps and at the end).

    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """
    check_callable("score_fn", score_fn)
    x = validate.batch("x0", x0).clone()
    step_size = validate.positive("step_size", step_size)
    n_steps = validate.count("n_steps", n_steps, minimum=0)
    path = [x.clone()] if return_path else None
    noise_scale = math.sqrt(step_size)
    for i in progress_steps(n_steps, progress, "Langevin"):
        s = call_score(score_fn, x, where=f"before step {i + 1}", step_size=step_size)
        if i == 0:
            check_score_output(s, x)
        # x <- x + (eps/2) s(x) + sqrt(eps) z      eq. (1)
        x = x + 0.5 * step_size * s + noise_scale * randn_like(x, generator)
        if path is not None:
            path.append(x.clone())
        if (i + 1) % 100 == 0 or i + 1 == n_steps:  # a cheap check, not every step (GPU syncs)
            check_finite(x, f"by step {i + 1}", step_size)
    if return_path:
        return x, torch.stack(path)
    return x


@torch.no_grad()
def mala(
    log_prob_fn: ScoreFn,
    score_fn: ScoreFn,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Metropolis-adjusted Langevin algorithm (MALA): eq. (1) as a proposal, then accept/reject.

    Proposal y = x + (eps/2) s(x) + sqrt(eps) z, i.e. k(y | x) = N(y; x + (eps/2) s(x), eps I) (k, not q: q is
    the course's perturbed density).
    It is accepted with probability min(1, p(y) k(x | y) / (p(x) k(y | x))), which
    removes the O(eps) bias of unadjusted Langevin (Roberts & Tweedie 1996).

    Args:
        log_prob_fn: x (n, D) -> log p(x) up to a constant, shape (n,).
        score_fn: x -> grad_x log p(x).
        x0, step_size, n_steps, return_path, generator, progress: as in ``langevin``.

    Returns:
        (x_T, acceptance_rate) or (x_T, acceptance_rate, path); the rate is the
        fraction of accepted proposals over all chains and steps, in [0, 1].

    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """
    check_callable("log_prob_fn", log_prob_fn)
    check_callable("score_fn", score_fn)
    x = validate.batch("x0", x0).clone()
    step_size = validate.positive("step_size", step_size)
    n_steps = validate.count("n_steps", n_steps, minimum=0)
    path = [x.clone()] if return_path else None
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
    log_p = log_prob_fn(x)
    s = check_score_output(score_fn(x), x)
    accepted = 0
    for _ in progress_steps(n_steps, progress, "MALA"):
        y = x + 0.5 * step_size * s + math.sqrt(step_size) * randn_like(x, generator)
        log_p_y = log_prob_fn(y)
        s_y = score_fn(y)
        # log k(y|x) and log k(x|y) of the Gaussian proposal k, up to the same constant
        fwd = -flat(y - x - 0.5 * step_size * s).pow(2).sum(1) / (2 * step_size)
        bwd = -flat(x - y - 0.5 * step_size * s_y).pow(2).sum(1) / (2 * step_size)
        log_alpha = log_p_y + bwd - log_p - fwd
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(u) < log_alpha
        mask = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(mask, y, x)
        s = torch.where(mask, s_y, s)
        log_p = torch.where(accept, log_p_y, log_p)
        accepted += int(accept.sum())
        if path is not None:
            path.append(x.clone())
    rate = accepted / max(1, n_steps * x.shape[0]) if n_steps else 1.0
    if return_path:
        return x, rate, torch.stack(path)
    return x, rate


@torch.no_grad()
def annealed_langevin(
    score_fn,
    x0: torch.Tensor,
    sigmas,
    step_size: float,
    n_steps_each: int,
    *,
    final_denoise: bool = False,
    return_path: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
):
    """Annealed Langevin dynamics (Song & Ermon 2019, algorithm 1).

    For each level i = 1..L (sigma_1 > ... > sigma_L), run ``n_steps_each`` steps of eq. (1)
    with the score at that level and step eps_i = step_size * sigma_i^2 / sigma_L^2:

        x <- x + (eps_i / 2) score_fn(x, sigma_i) + sqrt(eps_i) z

    This is eq. (1)'s convention: ``step_size`` is the eps of eq. (1) at the last level. The
    NCSN code writes x + a s + sqrt(2a) z with a = eps_ncsn sigma_i^2 / sigma_L^2, so
    ``step_size = 2 * eps_ncsn``. With ``final_denoise`` one last Tweedie step
    x <- x + sigma_L^2 score_fn(x, sigma_L) removes the remaining noise of level L.

    Args:
        score_fn: (x, sigma) -> score of the perturbed density q_sigma at x; sigma is passed
            as a Python float. Works with ``density.perturbed_score`` and with an NCSN.
        x0: starting points (n, ...), e.g. uniform over a box.
        sigmas: the ladder, descending (L,).
        step_size: eps > 0 at the last level.
        n_steps_each: T >= 1 steps per level.
        return_path: also return the states at the start and after each level, shape (L + 1, n, ...).
        generator, progress: as in ``langevin``.

    Raises:
        SamplerDiverged: the chains overflowed at some level (checked after each level).

    Introduced in notebooks/05_annealed_langevin.ipynb.
    """
    check_callable("score_fn", score_fn)
    x = validate.batch("x0", x0).clone()
    step_size = validate.positive("step_size", step_size)
    n_steps_each = validate.count("n_steps_each", n_steps_each)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sig) < 1 or not torch.isfinite(sig).all() or (sig <= 0).any():
        raise ValueError(f"sigmas={validate.show(sig)} is invalid: expected positive noise levels.")
    if len(sig) > 1 and not (sig[:-1] > sig[1:]).all():
        raise ValueError(f"sigmas={validate.show(sig)} must be strictly descending (sigma_1 > ... > sigma_L).")
    sig = sig.tolist()
    path = [x.clone()] if return_path else None
    bar = tqdm(total=len(sig) * n_steps_each, desc="annealed Langevin", disable=not progress, leave=False,
               mininterval=0.5)
    for level, sigma in enumerate(sig):
        eps_i = step_size * sigma**2 / sig[-1] ** 2   # eps_i = eps sigma_i^2 / sigma_L^2
        noise_scale = math.sqrt(eps_i)
        for t in range(n_steps_each):
            s = call_score(score_fn, x, sigma, where=f"at level {level + 1} (sigma={sigma:.3g}, eps_i={eps_i:.3g})",
                            step_size=step_size)
            if level == 0 and t == 0:
                check_score_output(s, x)
            # x <- x + (eps_i/2) s(x, sigma_i) + sqrt(eps_i) z      eq. (1) at level i
            x = x + 0.5 * eps_i * s + noise_scale * randn_like(x, generator)
        bar.update(n_steps_each)
        check_finite(x, f"at level {level + 1} (sigma={sigma:.3g}, eps_i={eps_i:.3g})", step_size)
        if path is not None:
            path.append(x.clone())
    bar.close()
    if final_denoise:
        x = x + sig[-1] ** 2 * score_fn(x, sig[-1])  # Tweedie: E[x | x~] = x~ + sigma^2 grad log q_sigma(x~)
        if path is not None:
            path[-1] = x.clone()
    if return_path:
        return x, torch.stack(path)
    return x
