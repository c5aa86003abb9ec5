"""Exercise checks of notebook 10, ``notebooks/10_training_recipes.ipynb``: EDM's preconditioning coefficients,
the score of a preconditioned denoiser, EDM's training loss (reference ``sg.recipes.edm_loss``, in float64 and
float32) and the memorisation test by nearest-neighbour ratio."""
from __future__ import annotations

import torch

from .checking import ExerciseFailed, compare, compare_loss, fmt, passed, points, points_of

__all__: list[str] = ["check_edm_coefficients", "check_preconditioned_score", "check_edm_loss", "check_memorised_fraction"]


@points(1)
def check_edm_coefficients(fn) -> None:
    """Check ``fn(sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)``, each a tensor of sigma's shape: EDM's
    preconditioning (Karras et al. 2022, table 1; notebook 10): c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4.

    Recognised mistakes: sd for sd^2 in c_skip, c_out or c_in without the square root, c_noise without the
    1/4, and c_skip and c_out swapped roles (c_skip -> 0 at small sigma)."""
    sigma = torch.tensor([0.002, 0.05, 0.5, 3.0, 80.0], dtype=torch.float64)
    for sd in (0.5, 0.3):
        r2 = sigma**2 + sd**2
        want = [sd**2 / r2, sigma * sd / r2.sqrt(), 1 / r2.sqrt(), sigma.log() / 4]
        got = fn(sigma, sd)
        if not isinstance(got, (tuple, list)) or len(got) != 4:
            raise ExerciseFailed(f"edm_coefficients: return the tuple (c_skip, c_out, c_in, c_noise), got "
                                 f"{type(got).__name__}{'' if not hasattr(got, '__len__') else f' of length {len(got)}'}.")
        names = ("c_skip", "c_out", "c_in", "c_noise")
        catalogue = {
            "c_skip": [(sd / r2, "c_skip = sigma_data^2 / (sigma^2 + sigma_data^2): the data's variance over the noisy "
                                 "input's, the weight of the input in the best linear guess"),
                       (sigma**2 / r2, "c_skip must go to 1 as sigma -> 0 (the input is nearly clean: keep it) and "
                                       "to 0 at large sigma; that is 1 - c_skip")],
            "c_out": [(sigma * sd / r2, "c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2): a standard deviation, "
                                        "with a square root")],
            "c_in": [(1 / r2, "c_in scales the input to unit variance: divide by its std sqrt(sigma^2 + sigma_data^2), "
                              "not its variance")],
            "c_noise": [(sigma.log(), "EDM's c_noise is ln(sigma) / 4 (a quarter keeps it in about [-1.5, 1.5])"),
                        (sigma / 4, "c_noise is the log of sigma, divided by 4")]}
        for name, g, w in zip(names, got, want):
            g = torch.as_tensor(g, dtype=torch.float64)
            compare(f"edm_coefficients ({name})", g, w, 1e-9 * max(1.0, float(w.abs().max())),
                     f"sigma_data={sd}", mistakes=catalogue[name], where=lambda i: f"sigma = {float(sigma[i]):g}")
    passed("edm_coefficients", "five noise levels from 0.002 to 80, two sigma_data")


@points(2)
def check_preconditioned_score(fn) -> None:
    """Check ``fn(F, y, sigma, sigma_data) -> score``: the score grad log p(y; sigma) of EDM's preconditioned
    denoiser D = c_skip y + c_out F (notebook 10), by Tweedie's formula: score = (D - y) / sigma^2. ``F`` and ``y``
    are (n, d), ``sigma`` a tensor (n,).

    Recognised mistakes: (y - D) / sigma^2 (the sign), (D - y) / sigma (sigma for sigma^2), the skip term
    dropped (D = c_out F), and the raw output used as the denoiser (D = F)."""
    gen = torch.Generator().manual_seed(11)
    y, F = (torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    sigma = torch.tensor([0.01, 0.1, 0.5, 1.0, 4.0, 30.0], dtype=torch.float64)
    for sd in (0.5, 0.3):
        r2 = (sigma**2 + sd**2)[:, None]
        c_skip, c_out, s = sd**2 / r2, sigma[:, None] * sd / r2.sqrt(), sigma[:, None]
        D = c_skip * y + c_out * F
        want = (D - y) / s**2
        mistakes = [((y - D) / s**2, "the sign: the score points from y towards the denoised guess, (D - y) / sigma^2"),
                    ((D - y) / s, "Tweedie's formula divides by the variance sigma^2, not by sigma"),
                    ((c_out * F - y) / s**2, "D = c_skip y + c_out F: the skip connection is part of the denoiser"),
                    ((F - y) / s**2, "F is the raw network's output; the denoiser is D = c_skip y + c_out F")]
        compare("preconditioned_score", fn(F, y, sigma, sd), want, 1e-8 * float(want.abs().max()),
                 f"sigma_data={sd}", mistakes=mistakes, where=lambda i: f"sigma = {float(sigma[i]):g}")
    passed("preconditioned_score", "six noise levels, two sigma_data")


class _TinyRawNet(torch.nn.Module):
    """A small fixed raw network F(x_in, c_noise) for ``check_edm_loss`` (float64, with parameters, so that the
    loss has a gradient; it depends on c_noise, so that a wrong c_noise shows)."""

    def __init__(self, dim: int, dtype=torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(32)
        self.w = torch.nn.Parameter((torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim).to(dtype))
        self.b = torch.nn.Parameter(torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype))

    def forward(self, x_in, c_noise):
        return torch.tanh(x_in @ self.w + self.b * c_noise[:, None]) + 0.3 * c_noise[:, None]


def _edm_loss_variant(net, x0, n, z, sd, p_mean, p_std, *, weight="edm", swap=False, sigma_normal=False, c_in=True,
                      reduce="sum", c_noise="quarter"):
    """EDM's loss as ``sg.recipes.edm_loss`` computes it, or with one catalogued mistake (for the hints)."""
    sigma = (p_mean + p_std * n) if sigma_normal else torch.exp(p_mean + p_std * n)
    s = sigma[:, None]
    r2 = s**2 + sd**2
    c_skip, c_out, c_in_v = sd**2 / r2, s * sd / r2.sqrt(), 1 / r2.sqrt()
    if swap:
        c_skip, c_out = c_out, c_skip
    noise = {"quarter": sigma.log() / 4, "log": sigma.log()}[c_noise]
    y = x0 + s * z
    D = c_skip * y + c_out * net((c_in_v if c_in else 1.0) * y, noise)
    lam = {"edm": r2 / (s * sd) ** 2, "one": torch.ones_like(s), "no-square": r2 / (s * sd)}[weight]
    err = lam * (D - x0).pow(2)
    return (err.sum(1) if reduce == "sum" else err.mean(1)).mean()


@points(3)
def check_edm_loss(fn) -> None:
    """Check ``fn(net, x0, n, z, sigma_data, p_mean, p_std) -> loss``: EDM's training loss (Karras et al. 2022,
    section 5 and table 1; notebook 10) on given draws: ln sigma = p_mean + p_std n (one sigma per row),
    y = x0 + sigma z, the denoiser D = c_skip y + c_out net(c_in y, c_noise) with EDM's coefficients
    (c_noise = ln(sigma) / 4), and the batch mean of lambda(sigma) || D - x0 ||^2 summed over the coordinates,
    lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: a 0-d tensor that carries the network's gradient.
    As ``sg.recipes.edm_loss``, in float64 and, with a float32 network, in float32 (the inputs' dtype is kept).

    Recognised mistakes: lambda = 1, lambda without its square, c_skip and c_out swapped, sigma itself drawn
    normal (not ln sigma), c_in missing, c_noise = ln sigma (not a quarter of it), and the mean over the
    coordinates instead of their sum; on float32 inputs, a cast to float64."""
    from ..core.recipes import edm_loss

    gen = torch.Generator().manual_seed(33)
    x0 = torch.rand(32, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    net = _TinyRawNet(3)
    n1 = torch.randn(32, generator=gen, dtype=torch.float64)
    # first ln sigma = 1 + 0.5 n with |n| <= 1.5, where sigma = 1 + 0.5 n (a mistake) stays positive and is named
    settings = [(0.31, 1.0, 0.5, torch.randn(32, generator=gen, dtype=torch.float64).clamp(-1.5, 1.5)),
                (0.5, -1.2, 1.2, n1)]
    for sd, p_mean, p_std, n in settings:
        args = (net, x0, n, z, sd, p_mean, p_std)
        with torch.no_grad():
            want = edm_loss(net, x0, n, z, sd, p_mean, p_std)
            mistakes = [(_edm_loss_variant(*args, weight="one"), "that is lambda = 1: EDM weights each term by "
                         "lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2, so that the "
                         "raw output F gets unit weight at every sigma"),
                        (_edm_loss_variant(*args, weight="no-square"), "lambda's denominator is (sigma sigma_data) "
                         "squared: lambda = 1 / c_out^2"),
                        (_edm_loss_variant(*args, swap=True), "c_skip and c_out are swapped: c_skip = sigma_data^2 / "
                         "(sigma^2 + sigma_data^2) multiplies the noisy input y, c_out = sigma sigma_data / "
                         "sqrt(sigma^2 + sigma_data^2) the network's output"),
                        (_edm_loss_variant(*args, sigma_normal=True), "sigma itself was drawn normal: EDM draws "
                         "ln sigma ~ N(p_mean, p_std^2), so sigma = exp(p_mean + p_std n) (always positive)"),
                        (_edm_loss_variant(*args, c_in=False), "the network's input is c_in y, y scaled to about unit "
                         "variance by c_in = 1 / sqrt(sigma^2 + sigma_data^2)"),
                        (_edm_loss_variant(*args, c_noise="log"), "c_noise is a quarter of ln sigma (EDM table 1)"),
                        (_edm_loss_variant(*args, reduce="mean"), "the mean over the coordinates divides by the "
                         "dimension too: sum lambda (D - x0)^2 over the coordinates, then average over the batch")]
        got = fn(*args)
        if isinstance(got, torch.Tensor) and got.dim() == 0 and not torch.isfinite(got):   # compare_loss names a wrong shape
            raise ExerciseFailed("edm_loss: your loss is not finite: is sigma drawn normal, so that it can be negative "
                                 "(and ln sigma undefined)? EDM draws ln sigma ~ N(p_mean, p_std^2): "
                                 "sigma = exp(p_mean + p_std n).")
        compare_loss("edm_loss", got, want,
                     f"EDM's loss on a batch of 32 with sigma_data = {sd}, p_mean = {p_mean}, p_std = {p_std}",
                     mistakes=mistakes)
    # float32 data and a float32 network, as notebook 10 trains with the student's loss: the loss keeps their dtype
    args32 = (_TinyRawNet(3, torch.float32), x0.float(), n1.float(), z.float(), 0.5, -1.2, 1.2)
    keep = ("compute in the inputs' dtype (notebook 10 trains with float32 data and a float32 network): no .double() "
            "and no float64 tensors of the batch's shape")
    try:
        got = fn(*args32)
    except RuntimeError as err:
        raise ExerciseFailed(f"edm_loss: on float32 inputs and a float32 network your loss raised: {err}. "
                             f"{keep[0].upper()}{keep[1:]}.") from None
    if not isinstance(got, torch.Tensor) or got.dtype != torch.float32:
        raise ExerciseFailed(f"edm_loss: on float32 inputs your loss is "
                             f"{got.dtype if isinstance(got, torch.Tensor) else type(got).__name__}, not float32: {keep}.")
    with torch.no_grad():
        want = edm_loss(*args32)
    compare("edm_loss", got, want, 1e-4 * float(want), "EDM's loss on the same batch in float32")
    passed("edm_loss", "log-normal sigma, EDM's preconditioned denoiser and weighting, two sigma_data, with its gradient; "
                       "float64 and float32")


def _memorised_variant(samples, train, threshold=1 / 3, *, squared=False, swapped=False, drop_zero=False,
                       count=False, complement=False, nearest_only=False):
    """The memorised fraction as ``sg.evaluation.memorised_fraction`` computes it, or with one catalogued mistake."""
    d = torch.cdist(samples.reshape(len(samples), -1).double(), train.reshape(len(train), -1).double())
    if drop_zero:
        d = torch.where(d == 0, torch.full_like(d, float("inf")), d)
    d = d.topk(2, dim=1, largest=False).values
    if nearest_only:
        flagged = d[:, 0] < threshold
    else:
        ratio = d[:, 1] / d[:, 0].clamp_min(1e-12) if swapped else d[:, 0] / d[:, 1].clamp_min(1e-12)
        flagged = (ratio**2 if squared else ratio) < threshold
    if complement:
        flagged = ~flagged
    return torch.tensor([float(flagged.sum()) if count else float(flagged.double().mean())], dtype=torch.float64)


def _memorisation_cases():
    """Two fixed cases of (samples, train): points in 2D at controlled ratios d1/d2, some exact copies."""
    gen = torch.Generator().manual_seed(34)
    cases = []
    for n_train, dim in ((12, 2), (30, 5)):
        train = torch.randn(n_train, dim, generator=gen, dtype=torch.float64) * 3
        idx = torch.randint(0, n_train, (24,), generator=gen)
        scale = torch.rand(24, generator=gen, dtype=torch.float64) * 2.5
        scale[:4] = 0.0                                                   # four exact copies of training points
        direction = torch.randn(24, dim, generator=gen, dtype=torch.float64)
        samples = train[idx] + scale[:, None] * direction / direction.norm(dim=1, keepdim=True)
        cases.append((samples.reshape(24, 1, dim), train.reshape(n_train, 1, dim)))   # images: (n, 1, dim)
    return cases


@points(2)
def check_memorised_fraction(fn) -> None:
    """Check ``fn(samples, train) -> float``: the memorisation test of notebook 10 (Yoon et al. 2023; Carlini et
    al. 2023): for each sample (a row of ``samples``, any trailing shape, flattened), d1 and d2 the Euclidean
    distances to its nearest and second-nearest row of ``train``; the fraction of samples with d1 / d2 < 1/3,
    as a Python float. As ``sg.evaluation.memorised_fraction``.

    Recognised mistakes: the ratio of squared distances, d2 / d1 (the ratio upside down), exact copies skipped
    (distance 0 treated as the sample itself), the number of samples flagged instead of their fraction, the
    fraction not flagged, and a threshold on d1 alone."""
    from ..images.evaluation import memorised_fraction

    for k, (samples, train) in enumerate(_memorisation_cases()):
        want = torch.tensor([memorised_fraction(samples, train)], dtype=torch.float64)
        mistakes = [(_memorised_variant(samples, train, squared=True), "that is the ratio of squared distances, "
                     "(d1 / d2)^2 < 1/3 flags samples up to d1 / d2 = 0.58: the test is on d1 / d2 itself "
                     "(torch.cdist gives distances, not their squares)"),
                    (_memorised_variant(samples, train, swapped=True), "the ratio is upside down: d1 is the "
                     "distance to the nearest training point, d2 to the second nearest, and a copy has d1 / d2 near 0"),
                    (_memorised_variant(samples, train, drop_zero=True), "an exact copy was skipped: a sample at "
                     "distance 0 from a training point is that point copied (the clearest memorisation), not the "
                     "sample itself: samples and training set are different sets"),
                    (_memorised_variant(samples, train, count=True), "that is the number of samples flagged: "
                     "return their fraction (the mean of the flags)"),
                    (_memorised_variant(samples, train, complement=True), "that is the fraction NOT flagged: a "
                     "sample is memorised when d1 / d2 < 1/3"),
                    (_memorised_variant(samples, train, nearest_only=True), "a threshold on d1 alone depends on the "
                     "data's scale: the test divides by d2, the distance to the second-nearest training point")]
        got = fn(samples.clone(), train.clone())
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            raise ExerciseFailed(f"memorised_fraction: your function returned a tensor ({fmt(got)}); expected a "
                                 f"Python float (.item() or float(...)).")
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise ExerciseFailed(f"memorised_fraction: your function returned {type(got).__name__}; expected a "
                                 f"Python float (the fraction of samples flagged).")
        compare("memorised_fraction", torch.tensor([got], dtype=torch.float64), want, 1e-6,
                f"case {k + 1}: {len(samples)} samples of shape {tuple(samples.shape[1:])} against {len(train)} "
                f"training points, four of the samples exact copies", mistakes=mistakes,
                where=lambda i: "the fraction")
    passed("memorised_fraction", "two sets with exact copies and near-copies, images of any shape")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
