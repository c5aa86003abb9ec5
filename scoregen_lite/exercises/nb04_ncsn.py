"""Exercise checks of notebook 04, ``notebooks/04_ncsn.ipynb``: the largest noise level (technique 1 of Song &
Ermon 2020) and the NCSN loss weighted over the ladder, eqs. (4)-(5) (reference ``sg.losses.ncsn_loss``, run with a
seeded generator whose draws are handed to the student's function); ``train_ncsn_with_loss`` trains the notebook's
network with the student's loss."""
from __future__ import annotations

import torch

from .checking import ExerciseFailed, compare, compare_loss, passed, points, points_of

__all__: list[str] = ["check_sigma_max", "check_ncsn_loss", "train_ncsn_with_loss"]


@points(1)
def check_sigma_max(fn) -> None:
    """Check ``fn(x) -> float``: technique 1 of Song & Ermon (2020), the largest pairwise distance
    between training points (notebook 04).

    Recognised mistakes: the mean pairwise distance, the largest distance from the origin, and the
    largest coordinate range (a per-axis max - min)."""
    gen = torch.Generator().manual_seed(5)
    for x in (torch.randn(300, 2, generator=gen) * torch.tensor([5.0, 0.5]) + 3.0, torch.rand(200, 7, generator=gen)):
        d = torch.cdist(x.double(), x.double())
        want = d.max()
        got = fn(x)
        got = torch.as_tensor(float(got.item() if isinstance(got, torch.Tensor) else got), dtype=torch.float64)
        n = len(x)
        mistakes = [(d.sum() / (n * (n - 1)), "that is the mean pairwise distance; technique 1 asks for the largest one, "
                                              "so that sigma_1 can carry a chain from any point to any other"),
                    (x.double().norm(dim=1).max(), "that is the largest distance from the origin; take distances "
                                                   "between pairs of points (torch.cdist)"),
                    ((x.max(0).values - x.min(0).values).double().max(), "that is the largest range of one coordinate; "
                                                                         "the distance between two points uses all coordinates")]
        compare("sigma_max", got, want, 1e-4 * float(want), f"{tuple(x.shape)} data", mistakes=mistakes)
    passed("sigma_max", "largest pairwise distance on 2D and 7D data")


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


@points(2)
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
    compare_loss("ncsn_loss", got, want,
                 f"eqs. (4)-(5) with lambda = sigma^2 on a batch of {n} points in {dim}D over {len(sigmas)} levels",
                 mistakes=mistakes)
    passed("ncsn_loss", "eqs. (4)-(5) with lambda = sigma^2 on given levels and noise, with its gradient")


def train_ncsn_with_loss(loss_fn, data, sigmas, *, n_steps: int, divide_by_sigma: bool = True, seed: int = 0,
                         device=None, progress: bool = True, **kwargs):
    """``sg.train.train_ncsn`` with the student's loss ``loss_fn(score_net, x, sigmas, idx, z)`` (notebook 04,
    exercise 2) in place of ``sg.losses.ncsn_loss``: each batch draws one level index per row and the noise from
    the global torch RNG, in ``ncsn_loss``'s order, so a correct loss trains the network that ``train_ncsn``
    trains (same seed, same draws: the same weights up to float rounding). Same network (``ConditionalMLPScore``,
    output divided by sigma when ``divide_by_sigma``), same ``fit`` loop and EMA; ``kwargs`` go to ``fit``
    (``batch_size``, ``lr``, ``ema_decay``; defaults as ``train_ncsn``). Returns (net, FitResult). Introduced in
    notebooks/04_ncsn.ipynb."""
    from ..core.nets import ConditionalMLPScore
    from ..core.train import fit, sigma_divisor
    from ..validate import points as checked_points

    if not callable(loss_fn):
        raise TypeError(f"loss_fn={loss_fn!r} must be callable: loss_fn(score_net, x, sigmas, idx, z) -> 0-d tensor.")
    data = checked_points("data", data)
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


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
