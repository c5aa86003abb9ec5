"""Controllable generation (notebook 09): guided score functions, inpainting, and the exact 2D answers
every method is checked against.

Conditioning wraps a score function; it does not fork a sampler. ``classifier_guided`` and
``classifier_free`` return a plain ``score_fn(x, t)`` that any sampler of ``sg.samplers`` accepts.
Inpainting changes the state, not the score, so ``inpaint`` is its own loop (Euler-Maruyama or
predictor-corrector steps of eq. (7) with the known entries replaced), with RePaint's resampling
(Lugmayr et al. 2022) as the better-founded variant.

Exact 2D ground truth for a Gaussian mixture (``sg.densities.GaussianMixture``) under an SDE:
``MixtureClassifier`` (the noisy classifier p_t(y | x): component responsibilities of the exact
marginal, grouped into classes, and its gradient), ``tilted_log_density`` (p(x | y)^g p(x)^(1-g)),
``grid_probabilities`` (a density normalised on a grid) and ``conditional`` (p(x_u | x_k) in closed
form). Introduced in notebooks/09_controllable_generation.ipynb.
"""
from __future__ import annotations

import math

import torch

from .. import validate
from ..runtime import progress_steps, randn_like
from .densities import GaussianMixture, SDEMarginal

__all__ = [
    "classifier_guided",
    "classifier_free",
    "classifier_free_net",
    "inpaint",
    "repaint",
    "repaint_schedule",
    "MixtureClassifier",
    "tilted_log_density",
    "grid_probabilities",
    "histogram_on_grid",
    "total_variation",
    "conditional",
    "MASKS",
    "make_mask",
    "masked_view",
    "grid_centres",
]


# ---------------------------------------------------------------------------
# Guided score functions
# ---------------------------------------------------------------------------

def _scale(scale) -> float:
    return validate.positive("scale", scale, allow_zero=True)


def classifier_guided(score_fn, classifier_grad_fn, scale: float = 1.0):
    """Classifier guidance (Song et al. 2021, section 5; Dhariwal & Nichol 2021): the score of
    p_t(x | y) by Bayes' rule, grad log p_t(x) + grad log p_t(y | x), with the classifier term scaled:

        s_guided(x, t) = score_fn(x, t) + scale * classifier_grad_fn(x, t).

    ``classifier_grad_fn(x, t)`` returns grad_x log p_t(y | x) for the chosen y (a noisy classifier:
    it must work at every t). scale = 1 is the conditional score exactly; scale = 0 ignores y; scale > 1
    sharpens towards p(x | y)^scale p(x)^(1 - scale) at each t (but see notebook 09: the sampler does not
    reach that tilted density at t = 0). Returns ``score_fn(x, t)``.
    """
    validate.check_callable("score_fn", score_fn)
    validate.check_callable("classifier_grad_fn", classifier_grad_fn)
    scale = _scale(scale)

    def guided(x, t):
        s = score_fn(x, t)
        return s if scale == 0 else s + scale * classifier_grad_fn(x, t)

    return guided


def classifier_free(cond_score_fn, uncond_score_fn, scale: float = 1.0):
    """Classifier-free guidance (Ho & Salimans 2022): one network trained with and without the label
    (label dropout) gives both scores, and

        s_guided(x, t) = s_u + scale * (s_c - s_u),      s_c = cond_score_fn(x, t), s_u = uncond_score_fn(x, t).

    scale = 0 is the unconditional score, 1 the conditional one, > 1 guided. Ho & Salimans write
    (1 + w) s_c - w s_u, i.e. w = scale - 1 (their w = 0 is no guidance beyond conditioning). The implied
    classifier gradient is s_c - s_u = grad log p_t(y | x) (Bayes), so this is classifier guidance with
    the network's own implicit classifier. Returns ``score_fn(x, t)`` (one evaluation of each score;
    scale 0 or 1 evaluates only the one it needs).
    """
    validate.check_callable("cond_score_fn", cond_score_fn)
    validate.check_callable("uncond_score_fn", uncond_score_fn)
    scale = _scale(scale)

    def guided(x, t):
        if scale == 1.0:
            return cond_score_fn(x, t)
        s_u = uncond_score_fn(x, t)
        if scale == 0.0:
            return s_u
        return s_u + scale * (cond_score_fn(x, t) - s_u)

    return guided


# ---------------------------------------------------------------------------
# Inpainting
# ---------------------------------------------------------------------------

def _check_known(known, mask):
    known = validate.batch("known", known)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a tensor of 0/1 (or bool) with known's shape, got {type(mask).__name__}.")
    if mask.shape != known.shape and mask.shape != known.shape[1:]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected known's shape {tuple(known.shape)} or one "
                         f"sample's shape {tuple(known.shape[1:])} (1 = known entry, 0 = to fill in).")
    m = mask.to(torch.bool)
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask must hold only 0 and 1 (1 = known entry, 0 = to fill in).")
    return known, m.expand_as(known).to(known.device)


def repaint_schedule(n_steps: int, resample: int = 1, jump: int = 1) -> list[int]:
    """The order in which ``inpaint`` visits the time grid t_0 = 1 > t_1 > ... > t_N = eps, as grid indices:
    down one step at a time, and after every ``jump`` steps (before the last) back up ``jump`` steps,
    ``resample - 1`` times (RePaint's schedule, Lugmayr et al. 2022, section 4.2 and their code). With
    resample = 1 it is 0, 1, ..., N. Introduced in notebooks/09_controllable_generation.ipynb."""
    n_steps = validate.count("n_steps", n_steps)
    resample = validate.count("resample", resample)
    jump = validate.count("jump", jump)
    left = {k: resample - 1 for k in range(jump, n_steps, jump)}
    seq, i = [0], 0
    while i < n_steps:
        i += 1
        seq.append(i)
        if left.get(i, 0) > 0:
            left[i] -= 1
            for _ in range(jump):
                i -= 1
                seq.append(i)
    return seq


@torch.no_grad()
def inpaint(sde, score_fn, known: torch.Tensor, mask: torch.Tensor, n_steps: int, *, sampler: str = "pc",
            snr: float = 0.16, resample: int = 1, jump: int = 1, eps: float = 1e-3,
            generator: torch.Generator | None = None, progress: bool = False):
    """Fill in the entries where ``mask == 0`` given ``known`` where ``mask == 1``, by the replacement
    method (Song et al. 2021, appendix I): run the reverse-time SDE, eq. (7), on the whole state, and after
    every step overwrite the known entries with a fresh forward-noised copy of their values,
    x_k <- alpha_t known + std_t z (so they always look like a sample of p_t); at the end they equal
    ``known`` exactly. It is biased: the unknown entries follow the score of the joint p_t at a known part
    that was redrawn independently of them, and one reverse step is too little to correlate them with it
    (notebook 09 measures the bias against the exact conditional).

    ``resample = U > 1`` is RePaint (Lugmayr et al. 2022, section 4.2): every ``jump`` steps, go back up
    ``jump`` steps with the forward kernel p(x_{t_k} | x_{t_{k+1}}) and redo them, U times in all
    (``repaint_schedule``). The unknown entries get U chances per noise level to agree with the known
    ones; as U grows the result approaches the exact conditional. A longer ``jump`` lets the state move
    back to noise levels where modes are still connected, which a choice between distant modes needs
    (``jump > 1``). Cost: about n_steps * U steps. tests/test_guidance.py measures both SDE families on a
    correlated Gaussian: with 100 steps and U = 10, VE and VP recover the exact conditional's mean and
    variance, where replacement stays biased.

    Args:
        sde, score_fn: as for ``sg.samplers.euler_maruyama``.
        known: (n, ...) values, only read where ``mask == 1``.
        mask: 0/1 of known's shape or of one sample's shape (shared by the batch); 1 = known.
        n_steps: reverse steps from t = 1 to ``eps``.
        sampler: "pc" (one Langevin corrector at ``snr``, then Euler-Maruyama) or "em".
        resample: U >= 1 (1: plain replacement); jump: RePaint's jump length j >= 1.
        generator, progress: as for the samplers.

    Returns:
        (x, nfe): x has ``known`` at every known entry, bit for bit; nfe score evaluations per sample.
    Introduced in notebooks/09_controllable_generation.ipynb.
    """
    from .solvers import reverse_step

    validate.check_callable("score_fn", score_fn)
    known, m = _check_known(known, mask)
    validate.choice("sampler", sampler, {"pc", "em"})
    schedule = repaint_schedule(n_steps, resample, jump)
    snr = validate.positive("snr", snr)
    eps = validate.eps(eps)
    grid = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64)
    ts = grid.tolist()
    alphas, stds = (v.tolist() for v in sde.marginal_coeffs(grid))   # the kernel at every grid time, once

    def replace(x, i):     # the known entries, forward-noised to grid time i
        noisy = sde.perturb(known, grid[i].to(known.dtype), randn_like(known, generator), check=False)
        return torch.where(m, noisy, x)

    x = replace(sde.prior_sample(known.shape, generator=generator, device=known.device, dtype=known.dtype), 0)
    nfe = 0
    moves = list(zip(schedule[:-1], schedule[1:]))
    for k in progress_steps(len(moves), progress, "inpainting" if resample == 1 else "RePaint"):
        i, j = moves[k]
        if j > i:          # one reverse step of eq. (7) from t_i down to t_j (the samplers' own step), then replace
            last = j == n_steps
            x = reverse_step(sde, score_fn, x, ts[i], ts[j], sampler=sampler, snr=snr, last=last, generator=generator)
            nfe += 1 if sampler == "em" else 2
            if not last:   # after the last step the known values themselves go in, below
                x = replace(x, j)
        else:              # RePaint: back up from t_i to t_j > t_i with the forward kernel
            ratio = alphas[j] / alphas[i]
            std = math.sqrt(max(stds[j] ** 2 - (ratio * stds[i]) ** 2, 0.0))
            x = ratio * x + std * randn_like(x, generator)
    return torch.where(m, known, x), nfe


def masked_view(known: torch.Tensor, mask: torch.Tensor, fill: float = 0.3) -> torch.Tensor:
    """What an inpainting sampler is shown: ``known`` where ``mask == 1`` and a flat grey ``fill`` elsewhere
    (for figures: the hidden part is visibly hidden, not black like the background)."""
    mask = mask.to(known.device, known.dtype)
    return known * mask + fill * (1 - mask)


def repaint(sde, score_fn, known, mask, n_steps: int, *, resample: int = 10, jump: int = 1, **kwargs):
    """RePaint (Lugmayr et al. 2022): ``inpaint`` with ``resample`` passes over every ``jump`` steps."""
    return inpaint(sde, score_fn, known, mask, n_steps, resample=resample, jump=jump, **kwargs)


#: The MNIST inpainting masks of notebook 09 (1 = known pixel).
MASKS = ("top", "bottom", "left", "right", "centre", "random")


def make_mask(kind: str, shape=(1, 28, 28), *, keep: float = 0.5, generator: torch.Generator | None = None):
    """A 0/1 float mask of ``shape`` (C, H, W), 1 = known: "top" / "bottom" / "left" / "right" half known,
    "centre" (everything but a centred box of half the side is known), "random" (each pixel known with
    probability ``keep``). Introduced in notebooks/09_controllable_generation.ipynb."""
    validate.choice("kind", kind, MASKS)
    c, h, w = shape
    mask = torch.zeros(shape)
    if kind == "top":
        mask[:, : h // 2] = 1
    elif kind == "bottom":
        mask[:, h // 2:] = 1
    elif kind == "left":
        mask[..., : w // 2] = 1
    elif kind == "right":
        mask[..., w // 2:] = 1
    elif kind == "centre":
        mask[:] = 1
        mask[:, h // 4: h - h // 4, w // 4: w - w // 4] = 0
    else:
        keep = validate.positive("keep", keep)
        mask = (torch.rand(shape, generator=generator) < keep).float()
    return mask


# ---------------------------------------------------------------------------
# Exact 2D ground truth
# ---------------------------------------------------------------------------

class MixtureClassifier:
    """The exact noisy classifier p_t(y | x) of a Gaussian mixture under an SDE, with classes made of
    components (``classes``: a list of component-index lists; default: one class per component).

    p_t(y | x) = sum_{k in y} r_k(x, t), the responsibilities of the exact marginal p_t (``SDEMarginal``);
    its gradient is grad log p_t(x | y) - grad log p_t(x), the score of the class's own marginal minus the
    mixture's (Bayes). ``class_mixture(y)`` is p(x | y) at t = 0.
    """

    def __init__(self, mixture: GaussianMixture, sde, classes=None):
        k = mixture.n_components
        self.classes = [list(c) for c in classes] if classes is not None else [[i] for i in range(k)]
        flat = sorted(i for c in self.classes for i in c)
        if flat != list(range(k)):
            raise ValueError(f"classes={classes!r} must split the {k} components 0..{k - 1}, each in exactly one class.")
        self.mixture, self.sde = mixture, sde
        self.marginal = SDEMarginal(mixture, sde)
        self._class_marginals = [SDEMarginal(self.class_mixture(y), sde) for y in range(len(self.classes))]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _check_y(self, y) -> int:
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < self.n_classes:
            raise ValueError(f"y={y!r} is invalid: expected a class 0..{self.n_classes - 1}.")
        return y

    def class_mixture(self, y: int) -> GaussianMixture:
        """p(x | y): the class's components with their weights renormalised."""
        idx = self.classes[self._check_y(y)]
        w = self.mixture.weights[idx]
        return GaussianMixture(w / w.sum(), self.mixture.means[idx], self.mixture.covs[idx])

    def class_prior(self) -> torch.Tensor:
        """p(y), shape (C,)."""
        return torch.stack([self.mixture.weights[c].sum() for c in self.classes])

    def class_marginal(self, y: int) -> SDEMarginal:
        """p_t(x | y), the class-conditional marginal of the SDE (its ``score`` is the conditional score)."""
        return self._class_marginals[self._check_y(y)]

    def probs(self, x: torch.Tensor, t) -> torch.Tensor:
        """p_t(y | x) for every class, shape (n, C)."""
        common = SDEMarginal.common_time(t)
        if common is None:
            raise ValueError("probs needs one time for the whole batch (a float or a constant tensor).")
        resp = self.marginal.at(common).responsibilities(x)
        return torch.stack([resp[:, c].sum(1) for c in self.classes], dim=1)

    def grad_log_prob(self, x: torch.Tensor, t, y: int) -> torch.Tensor:
        """grad_x log p_t(y | x) = score of p_t(x | y) - score of p_t(x), shape (n, D)."""
        return self.class_marginal(y).score(x, t) - self.marginal.score(x, t)

    def grad_fn(self, y: int):
        """``classifier_grad_fn(x, t)`` for ``classifier_guided`` with this y."""
        self._check_y(y)
        return lambda x, t: self.grad_log_prob(x, t, y)


def tilted_log_density(classifier: MixtureClassifier, y: int, scale: float):
    """x -> g log p(x | y) + (1 - g) log p(x), the log of the "tilted" density p(x | y)^g p(x)^(1-g) up to
    its normalising constant (g = ``scale``): what classifier (or classifier-free) guidance at scale g
    would sample if the guided score at t = 0 were all that mattered. Normalise it with
    ``grid_probabilities``."""
    scale = _scale(scale)
    cond, full = classifier.class_mixture(y), classifier.mixture
    return lambda x: scale * cond.log_prob(x) + (1 - scale) * full.log_prob(x)


def grid_centres(bounds, n: int = 60) -> torch.Tensor:
    """The (n * n, 2) centres of the n x n grid over ``bounds`` = (x_min, x_max, y_min, y_max) that
    ``grid_probabilities`` and ``histogram_on_grid`` use, x fastest (float64; row i * n + j is y cell i,
    x cell j). Notebook 09 takes moments of a grid density with it."""
    n = validate.count("n", n, minimum=2)
    x0, x1, y0, y1 = bounds
    xs = torch.linspace(x0, x1, n + 1, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n + 1, dtype=torch.float64)
    cx, cy = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    return torch.stack(torch.meshgrid(cx, cy, indexing="xy"), -1).reshape(-1, 2)


def grid_probabilities(log_density, bounds, n: int = 60) -> torch.Tensor:
    """Cell probabilities (n, n) of a density given by its unnormalised log on an n x n grid over
    ``bounds`` = (x_min, x_max, y_min, y_max) (midpoint rule, normalised to sum to 1; row i is the i-th y)."""
    n = validate.count("n", n, minimum=2)
    pts = grid_centres(bounds, n)
    logp = log_density(pts.float()).double()
    p = torch.softmax(logp, dim=0)
    return p.reshape(n, n)


def histogram_on_grid(x: torch.Tensor, bounds, n: int = 60) -> torch.Tensor:
    """The fraction of samples ``x`` (m, 2) in each cell of the grid of ``grid_probabilities`` (samples
    outside the bounds count in no cell, so the total can be below 1)."""
    x = validate.points("x", x, 2)
    x0, x1, y0, y1 = bounds
    i = ((x[:, 0].double() - x0) / (x1 - x0) * n).floor().long()
    j = ((x[:, 1].double() - y0) / (y1 - y0) * n).floor().long()
    ok = (i >= 0) & (i < n) & (j >= 0) & (j < n)
    hist = torch.zeros(n * n, dtype=torch.float64)
    hist.index_add_(0, j[ok] * n + i[ok], torch.ones(int(ok.sum()), dtype=torch.float64))
    return (hist / len(x)).reshape(n, n)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """(1/2) sum |p - q| of two cell-probability grids: 0 identical, 1 disjoint."""
    return 0.5 * float((p - q).abs().sum())


def conditional(mixture: GaussianMixture, known_dims, value) -> GaussianMixture:
    """The exact conditional p(x_u | x_k = value) of a Gaussian mixture, a mixture over the unknown
    dimensions: component j keeps mean mu_u + S_uk S_kk^{-1} (value - mu_k) and covariance
    S_uu - S_uk S_kk^{-1} S_ku, and its weight becomes proportional to w_j N(value; mu_k, S_kk).
    ``known_dims``: the indices of x_k, in any order; ``value``: their values in the same order, shape
    (len(known_dims),). The unknown dimensions come out in increasing order."""
    d = mixture.dim
    given = [int(i) for i in known_dims]
    if not given or len(set(given)) != len(given) or not all(0 <= i < d for i in given) or len(given) == d:
        raise ValueError(f"known_dims={known_dims!r} is invalid: expected distinct indices in 0..{d - 1}, not all.")
    v = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if len(v) != len(given):
        raise ValueError(f"value has {len(v)} entries; expected one per known dimension ({len(given)}).")
    order = sorted(range(len(given)), key=given.__getitem__)   # sort the indices and their values together
    known, v = [given[i] for i in order], v[order]
    unknown = [i for i in range(d) if i not in known]
    means, covs, w = mixture.means.double(), mixture.covs.double(), mixture.weights.double()
    ku, kk = torch.tensor(unknown), torch.tensor(known)
    s_kk = covs[:, kk][:, :, kk]
    s_uk = covs[:, ku][:, :, kk]
    s_uu = covs[:, ku][:, :, ku]
    diff = v[None] - means[:, kk]
    sol = torch.linalg.solve(s_kk, diff[..., None])[..., 0]
    cond_means = means[:, ku] + (s_uk @ sol[..., None])[..., 0]
    cond_covs = s_uu - s_uk @ torch.linalg.solve(s_kk, s_uk.transpose(1, 2))
    chol = torch.linalg.cholesky(s_kk)
    maha = torch.cholesky_solve(diff[..., None], chol)[..., 0].mul(diff).sum(-1)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_w = torch.log(w) - 0.5 * (len(known) * math.log(2 * math.pi) + logdet + maha)
    new_w = torch.softmax(log_w, 0)
    dtype = mixture.means.dtype
    return GaussianMixture(new_w.to(dtype), cond_means.to(dtype), cond_covs.to(dtype))


# ---------------------------------------------------------------------------
# MNIST: a noisy (time-conditional) classifier p_t(y | x) for classifier guidance
# ---------------------------------------------------------------------------


def classifier_free_net(net, y, scale: float = 1.0):
    """``classifier_free`` for a class-conditional network ``net(x, t, y)`` trained with label dropout (a 2D
    ``sg.nets.LabelTimeMLPScore`` or the U-Net of ``sg.mnist.pretrained("mnist_cond")``): s_c = net(x, t, y),
    s_u = net(x, t, null_label), both in one batched call. ``y``: a class for the whole batch or a tensor (n,) of
    classes (one per sample).
    Introduced in notebooks/09_controllable_generation.ipynb."""
    n_classes = getattr(net, "n_classes", 0)
    if not n_classes:
        raise ValueError("classifier_free_net needs a class-conditional network (n_classes > 0), e.g. "
                         "sg.mnist.pretrained('mnist_cond').")
    labels = torch.as_tensor(y, dtype=torch.long)
    if ((labels < 0) | (labels >= n_classes)).any():
        raise ValueError(f"y={validate.show(labels)} is invalid: expected classes 0..{n_classes - 1}.")
    scale = validate.positive("scale", scale, allow_zero=True)

    def guided(x, t):
        n = x.shape[0]
        yc = labels.to(x.device).expand(n) if labels.dim() == 0 else labels.to(x.device)
        if scale == 1.0:
            return net(x, t, yc)
        yu = torch.full((n,), net.null_label, dtype=torch.long, device=x.device)
        if scale == 0.0:
            return net(x, t, yu)
        s = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([yc, yu]))
        s_c, s_u = s[:n], s[n:]
        return s_u + scale * (s_c - s_u)          # classifier-free guidance, as in classifier_free

    return guided
