"""Training recipes for score models (notebook 10): preconditioning, the distribution of noise levels
seen in training, the loss weighting, and what bounds bits/dim.

Every recipe trains the same thing, a score s_theta(x, t) of one of our SDEs, so every sampler of the
course works unchanged. Three choices differ (Karras et al. 2022, "Elucidating the design space of
diffusion-based generative models" (EDM), section 5 and table 1; Song et al. 2021, "Maximum likelihood
training of score-based diffusion models" (MLE), sections 3-4):

* **Preconditioning**: in the noise-level view x(t) = alpha_t (y + sigma z) (notebook 08), the denoiser
  is D(y; sigma) = c_skip y + c_out F(c_in y, c_noise) with a raw network F, and the score follows by
  Tweedie's formula, s(x, t) = (D(y; sigma) - y) / (sigma^2 alpha_t) with y = x / alpha_t.
  ``"none"`` (c_skip = 1, c_out = sigma, c_in = alpha_t, c_noise = t) is the course's parametrisation
  so far, s = F(x, t) / std_t; ``"edm"`` is EDM's table 1: c_skip = sd^2 / (sigma^2 + sd^2),
  c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4 with
  sd = sigma_data, so that F's input and target have unit variance at every sigma.
* **Noise levels** in training: ``"uniform"`` t ~ U(eps, 1) (eq. (8)); ``"lognormal"`` ln sigma ~
  N(p_mean, p_std^2) (EDM section 5), clamped to the SDE's range; ``"importance"`` t ~ q(t) proportional to
  g(t)^2 / std_t^2 (MLE section 4.2), reweighted by 1 / q so the estimate stays that of uniform t;
  ``"straight"``: flow matching's time u = sigma / (1 + sigma) logit-normal (Esser et al. 2024, section 3.1):
  logit u = ln sigma ~ N(0, 1), truncated to the SDE's range (EDM's log-normal with P_mean 0, P_std 1).
* **Loss weighting** lambda(t) of eq. (8), written on the normalised error ||std_t s + z||^2 (whose
  lambda = std_t^2 weight is 1): ``"sigma2"`` (eq. (8), 1), ``"edm"`` (lambda = (sigma^2 + sd^2) /
  (sigma sd)^2 on the denoiser, i.e. (sigma^2 + sd^2) / sd^2 here), ``"likelihood"`` (lambda = g(t)^2,
  MLE's likelihood weighting, i.e. g^2 / std_t^2 here), ``"flow"`` ((1 + sigma)^2: the conditional flow
  matching loss ||v - (z - x(0))||^2 on the straight path x_u = (1 - u) x(0) + u z, u = sigma / (1 + sigma),
  of the velocity v = (x_u - D) / u the denoiser gives; notebook 11).

``recipe_loss`` is eq. (8) with these choices (``sg.losses.sde_dsm`` is the uniform, sigma2 case, draw for
draw). ``RECIPES`` names the combinations the benchmark compares. Introduced in
notebooks/10_training_recipes.ipynb; ``sg.image_training.ImageConfig`` takes the same fields.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import validate
from .sde import per_sample

__all__ = ["PRECONDITIONINGS", "NOISE_LEVELS", "WEIGHTINGS", "RECIPES", "coefficients", "precondition",
           "Preconditioned", "optimal_gaussian_output", "ImportanceSampler", "sample_times", "loss_weight",
           "recipe_loss", "target_std", "bits_floor", "check_recipe", "empirical_score",
           "denoiser_error", "edm_loss", "bits_point_mass", "bits_bound"]

PRECONDITIONINGS = ("none", "edm")
NOISE_LEVELS = ("uniform", "lognormal", "importance", "straight")
WEIGHTINGS = ("sigma2", "edm", "likelihood", "flow")

#: The recipes notebook 10 and ``benchmarks/recipes_cpu.py`` compare: name -> (precond, noise, weighting).
RECIPES = {
    "song": ("none", "uniform", "sigma2"),             # the course so far: eq. (8) as in Song et al. (2021)
    "edm-precond": ("edm", "uniform", "sigma2"),       # EDM's preconditioning alone
    "edm": ("edm", "lognormal", "edm"),                # EDM's preconditioning, noise levels and weighting
    "likelihood": ("edm", "importance", "likelihood"),  # MLE's weighting with importance sampling of t
    "flow": ("edm", "straight", "flow"),               # flow matching on the straight path (notebook 11)
}


def check_recipe(precond: str, noise: str, weighting: str) -> None:
    """Raise ValueError naming the bad choice and the valid ones (before any training)."""
    for name, value, valid in (("precond", precond, PRECONDITIONINGS), ("noise", noise, NOISE_LEVELS),
                               ("weighting", weighting, WEIGHTINGS)):
        if value not in valid:
            raise ValueError(f"{name}={value!r} is not a choice of the training recipes; expected one of {valid}.")


def coefficients(kind: str, sigma: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor, sigma_data: float = 0.5):
    """(c_skip, c_out, c_in, c_noise) of a preconditioning at noise level sigma (EDM table 1), for the
    scaled state y = x(t) / alpha_t: D(y; sigma) = c_skip y + c_out F(c_in y, c_noise).

    ``"none"``: (1, sigma, alpha_t, t), which gives the course's s = F(x(t), t) / std_t; ``"edm"``: EDM's."""
    if kind == "none":
        return torch.ones_like(sigma), sigma, alpha, t
    if kind == "edm":
        sd2 = sigma_data**2
        root = torch.sqrt(sigma**2 + sd2)
        return sd2 / (sigma**2 + sd2), sigma * sigma_data / root, 1.0 / root, torch.log(sigma) / 4
    raise ValueError(f"kind={kind!r} is not a preconditioning; expected one of {PRECONDITIONINGS}.")


def precondition(kind: str, raw, x: torch.Tensor, alpha: torch.Tensor, std: torch.Tensor,
                 t: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """The score s(x, t) of a preconditioned raw network ``raw(x_in, c_noise) -> F`` (Tweedie's formula):

        s = (D(y; sigma) - y) / (sigma^2 alpha_t) = ((c_skip - 1) / sigma^2 y + c_out / sigma^2 F) / alpha_t,

    with sigma = std_t / alpha_t, y = x / alpha_t. The two ratios are computed in closed form (no
    cancellation as sigma -> 0): for ``"edm"`` (c_skip - 1) / sigma^2 = -1 / (sigma^2 + sd^2) and
    c_out / sigma^2 = sd / (sigma sqrt(sigma^2 + sd^2)); for ``"none"`` 0 and 1 / sigma.
    ``alpha``, ``std`` and ``t`` have shape (n,). Used by ``Preconditioned`` and ``sg.unet.ScoreUNet``."""
    sigma = std / alpha
    _, _, c_in, c_noise = coefficients(kind, sigma, alpha, t, sigma_data)
    y = x / per_sample(alpha, x)
    out = raw(per_sample(c_in, x) * y, c_noise)
    if kind == "none":
        return out / per_sample(std, x)
    sd2 = sigma_data**2
    a = -1.0 / (sigma**2 + sd2)
    b = sigma_data / (sigma * torch.sqrt(sigma**2 + sd2))
    return (per_sample(a, x) * y + per_sample(b, x) * out) / per_sample(alpha, x)


class Preconditioned(nn.Module):
    """A score model s(x, t) of ``sde`` from a raw network ``net(x_in, c_noise) -> F`` of the same shape as x,
    through a preconditioning (``"none"`` or ``"edm"``, see ``precondition``). Every sampler of the course
    takes it as it is. Introduced in notebooks/10_training_recipes.ipynb."""

    def __init__(self, net, sde, kind: str = "edm", sigma_data: float = 0.5):
        super().__init__()
        validate.check_callable("net", net)
        if kind not in PRECONDITIONINGS:
            raise ValueError(f"kind={kind!r} is not a preconditioning; expected one of {PRECONDITIONINGS}.")
        self.net, self.sde, self.kind = net, sde, kind
        self.sigma_data = validate.positive("sigma_data", sigma_data)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        alpha, std = self.sde.marginal_coeffs(t, check=False)
        return precondition(self.kind, self.net, x, alpha, std, t, self.sigma_data)


def optimal_gaussian_output(kind: str, sde, mean: torch.Tensor, var: float, sigma_data: float = 0.5):
    """The raw network ``F(x_in, c_noise)`` that makes a preconditioned model exact for data N(mean, var I):
    the optimal denoiser is D*(y; sigma) = (var y + sigma^2 mean) / (var + sigma^2) (Tweedie for a
    Gaussian), and F* = (D* - c_skip y) / c_out, with sigma recovered from c_noise (t for ``"none"``,
    exp(4 c_noise) for ``"edm"``). ``Preconditioned(F, sde, kind)`` must then give the exact score
    -(x - alpha_t mean) / (alpha_t^2 var + std_t^2): the tests and notebook 10 check that."""
    def F(x_in, c_noise):
        if kind == "none":
            t = c_noise
            alpha, std = sde.marginal_coeffs(t, check=False)
            sigma = std / alpha
        else:
            sigma = torch.exp(4 * c_noise)
            t = sde.t_of_sigma(sigma.double()).to(x_in.dtype)
            alpha = sde.marginal_coeffs(t, check=False)[0]
        c_skip, c_out, c_in, _ = coefficients(kind, sigma, alpha, t, sigma_data)
        y = x_in / per_sample(c_in, x_in)
        s2 = per_sample(sigma**2, x_in)
        d = (var * y + s2 * mean) / (var + s2)
        return (d - per_sample(c_skip, x_in) * y) / per_sample(c_out, x_in)
    return F


class ImportanceSampler:
    """Draws t in [eps, 1] with density q(t) proportional to g(t)^2 / std_t^2 (Song et al. 2021, MLE,
    section 4.2), by inverting its CDF on a fine grid (any SDE; for VE, ln std_t^2 is then uniform).

    ``sample(n, generator) -> (t, q(t))``; ``normaliser`` is Z = int_eps^1 g^2 / std^2 dt, so that with the
    likelihood weighting the estimate's weight (g^2 / std^2) / q(t) is the constant Z."""

    def __init__(self, sde, eps: float = 1e-5, n_grid: int = 20_001):
        self.sde, self.eps = sde, validate.positive("eps", eps)
        if eps >= 1:
            raise ValueError(f"eps={eps!r} is invalid: expected 0 < eps < 1 (e.g. 1e-5).")
        # a grid dense near eps (where g^2 / std^2 ~ 1 / t blows up): geometric in t, then float64 trapezoids
        t = torch.logspace(math.log10(eps), 0.0, n_grid, dtype=torch.float64)
        dens = self.density(t)
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                         torch.cumsum(0.5 * (dens[1:] + dens[:-1]) * (t[1:] - t[:-1]), 0)])
        self.normaliser = float(cdf[-1])
        self._t, self._cdf, self._dens = t, cdf / cdf[-1], dens

    def density(self, t: torch.Tensor) -> torch.Tensor:
        """g(t)^2 / std_t^2, the unnormalised q(t) (float64)."""
        t = t.double()
        g = self.sde.diffusion(t, check=False)
        std = self.sde.marginal_coeffs(t, check=False)[1]
        return g**2 / std**2

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32):
        """(t, q(t)): n times drawn from q and their normalised density, on ``device`` in ``dtype``."""
        u = torch.rand(n, generator=generator, device=generator.device if generator is not None else device,
                       dtype=torch.float64).cpu()
        i = torch.searchsorted(self._cdf, u).clamp(1, len(self._t) - 1)
        c0, c1 = self._cdf[i - 1], self._cdf[i]
        w = ((u - c0) / (c1 - c0).clamp_min(1e-300)).clamp(0, 1)
        t = self._t[i - 1] + w * (self._t[i] - self._t[i - 1])
        q = self.density(t) / self.normaliser
        return t.to(device=device, dtype=dtype), q.to(device=device, dtype=dtype)


def sample_times(noise: str, sde, n: int, *, eps: float = 1e-5, generator=None, device=None, dtype=torch.float32,
                 p_mean: float = -1.2, p_std: float = 1.2, importance: ImportanceSampler | None = None):
    """(t, iw): n training times for a noise-level distribution and each time's importance weight iw,
    so that E[iw f(t)] is the uniform-t average of f (iw = 1 where the distribution is part of the
    objective: ``"uniform"`` and EDM's ``"lognormal"``; 1 / ((1 - eps) q(t)) for ``"importance"``)."""
    if noise == "uniform":
        t = eps + (1 - eps) * torch.rand(n, generator=generator, device=device, dtype=dtype)
        return t, torch.ones_like(t)
    if noise == "lognormal":
        z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        sigma = torch.exp(p_mean + p_std * z)
        lo = float(sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64)))
        sigma = sigma.clamp(lo, sde.max_noise_level())
        t = sde.t_of_sigma(sigma).clamp(eps, 1.0).to(dtype)
        return t, torch.ones_like(t)
    if noise == "straight":
        lo = sde.sigma_of_t(torch.tensor(eps, dtype=torch.float64))
        hi = torch.tensor(sde.max_noise_level(), dtype=torch.float64)
        normal = torch.distributions.Normal(0.0, 1.0)
        # logit u ~ N(0, 1) restricted to [u(sigma_lo), u(sigma_hi)] by inverting its CDF; u / (1 - u) = sigma
        c_lo, c_hi = normal.cdf(torch.log(lo)), normal.cdf(torch.log(hi))
        v = torch.rand(n, generator=generator, device=generator.device if generator is not None else device,
                       dtype=torch.float64).cpu()
        sigma = torch.exp(normal.icdf(c_lo + (c_hi - c_lo) * v)).clamp(float(lo), float(hi))
        t = sde.t_of_sigma(sigma).clamp(eps, 1.0).to(device=device, dtype=dtype)
        return t, torch.ones_like(t)
    if noise == "importance":
        sampler = importance or ImportanceSampler(sde, eps)
        t, q = sampler.sample(n, generator, device=device, dtype=dtype)
        return t, 1.0 / ((1 - eps) * q)
    raise ValueError(f"noise={noise!r} is not a noise-level distribution; expected one of {NOISE_LEVELS}.")


def loss_weight(weighting: str, sde, t: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """The weight of the normalised error ||std_t s + z||^2 at time t (shape of t) for a loss weighting:
    ``"sigma2"`` 1 (eq. (8)'s lambda = std_t^2), ``"edm"`` (sigma^2 + sd^2) / sd^2 (EDM's lambda on the
    denoiser), ``"likelihood"`` g(t)^2 / std_t^2 (lambda = g^2, Song et al. 2021, MLE, theorem 1),
    ``"flow"`` (1 + sigma)^2: ||std_t s + z||^2 = ||D - x(0)||^2 / sigma^2 and the straight path's velocity
    error is ||D - x(0)||^2 / u^2, u = sigma / (1 + sigma): the flow matching loss (Lipman et al. 2023, eq. (9))."""
    if weighting == "sigma2":
        return torch.ones_like(t)
    alpha, std = sde.marginal_coeffs(t, check=False)
    if weighting == "edm":
        sigma = std / alpha
        return (sigma**2 + sigma_data**2) / sigma_data**2
    if weighting == "likelihood":
        return sde.diffusion(t, check=False) ** 2 / std**2
    if weighting == "flow":
        return (1 + std / alpha) ** 2
    raise ValueError(f"weighting={weighting!r} is not a loss weighting; expected one of {WEIGHTINGS}.")


def recipe_loss(score_net, x0: torch.Tensor, sde, *, noise: str = "uniform", weighting: str = "sigma2",
                eps: float = 1e-5, generator: torch.Generator | None = None, sigma_data: float = 0.5,
                p_mean: float = -1.2, p_std: float = 1.2, importance: ImportanceSampler | None = None,
                check: bool = True) -> torch.Tensor:
    """Eq. (8) with a recipe's noise levels and weighting (see the module docstring):

        mean over the batch of  iw(t) w(t) || std_t s_theta(x_t, t) + z ||^2,  x_t = alpha_t x0 + std_t z,

    t drawn by ``sample_times(noise, ...)``, w = ``loss_weight(weighting, ...)``. With ``noise="uniform",
    weighting="sigma2"`` it is ``sg.losses.sde_dsm`` (same draws). ``check=False``: no argument checks
    (the training loop's fast path). Introduced in notebooks/10_training_recipes.ipynb."""
    if check:
        validate.check_callable("score_net", score_net)
        x0 = validate.batch("x0", x0)
        check_recipe("none", noise, weighting)
        eps = validate.positive("eps", eps)
        if eps >= 1:
            raise ValueError(f"eps={eps!r} is invalid: expected 0 < eps < 1 (e.g. 1e-5).")
    n = len(x0)
    t, iw = sample_times(noise, sde, n, eps=eps, generator=generator, device=x0.device, dtype=x0.dtype,
                         p_mean=p_mean, p_std=p_std, importance=importance)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    alpha, std = sde.marginal_coeffs(t, check=False)
    s = score_net(per_sample(alpha, x0) * x0 + per_sample(std, x0) * z, t)
    if s.shape != x0.shape:
        raise ValueError(f"score_net returned shape {tuple(s.shape)}; expected x's shape {tuple(x0.shape)}.")
    err = (per_sample(std, x0) * s + z).pow(2).reshape(n, -1).sum(1)
    return (iw * loss_weight(weighting, sde, t, sigma_data) * err).mean()


@torch.no_grad()
def target_std(kind: str, x0: torch.Tensor, sde, sigmas, sigma_data: float = 0.5,
               generator: torch.Generator | None = None) -> dict:
    """Per noise level, the std of what a raw network sees and must output under a preconditioning:
    ``input`` (c_in y), ``target`` (F* = (y0 - c_skip y) / c_out, the regression target of D = y0) and
    ``score`` (the raw score target -z / std_t, what an unpreconditioned network would regress).
    Notebook 10's first table: with ``"none"`` the input's std spans orders of magnitude across sigma,
    with ``"edm"`` both stay near 1."""
    x0 = validate.batch("x0", x0)
    res = {"sigma": [], "input": [], "target": [], "score": []}
    for sig in torch.as_tensor(sigmas, dtype=torch.float64):
        t = sde.t_of_sigma(sig).to(x0.dtype).expand(len(x0))
        alpha, std = sde.marginal_coeffs(t, check=False)
        sigma = std / alpha
        c_skip, c_out, c_in, _ = coefficients(kind, sigma, alpha, t, sigma_data)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        y = x0 + per_sample(sigma, x0) * z
        res["sigma"].append(float(sig))
        res["input"].append(float((per_sample(c_in, x0) * y).std()))
        res["target"].append(float(((x0 - per_sample(c_skip, x0) * y) / per_sample(c_out, x0)).std()))
        res["score"].append(float((-z / per_sample(std, x0)).std()))
    return res


def bits_floor(sigma_min: float, bins: int = 256, n_grid: int = 4001) -> float:
    """Bits/dim that noise of std ``sigma_min`` alone costs a model that knows every pixel exactly.

    Uniform dequantisation puts x = (k + u) / bins, u ~ U(0, 1); the likelihood is measured at the
    smallest noise level, so even a perfect model's density is the pixel's bin blurred by N(0, sigma_min^2):
    p(x) = bins (Phi((b - x) / sigma_min) - Phi((a - x) / sigma_min)) on the bin [a, b) of width h = 1 / bins,
    and bits/dim = -log2 p(x) + log2 bins (the offset of ``sg.mnist.bits_per_dim``) averages, over u, to

        floor = E_u[-log2(Phi((1 - u) h / sigma_min) - Phi(-u h / sigma_min))]  >= 0,

    0 as sigma_min -> 0 and about log2(sqrt(2 pi) sigma_min / h) for sigma_min >> h. It is the bits/dim of
    this one reference density (the dequantisation bin blurred by sigma_min), *not* a lower bound: a point
    mass at the bin's centre blurred by the same sigma_min scores lower when sigma_min is near h
    (``bits_point_mass``), and ``bits_bound`` is the true lower bound over every blurred density (notebook 10)."""
    sigma_min = validate.positive("sigma_min", sigma_min)
    bins = validate.count("bins", bins)
    h = 1.0 / bins
    n_grid = int(min(max(n_grid, 50 * h / sigma_min), 4_000_000))   # resolve the edges' layers of width sigma / h
    u = (torch.arange(n_grid, dtype=torch.float64) + 0.5) / n_grid
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    mass = normal.cdf((1 - u) * h / sigma_min) - normal.cdf(-u * h / sigma_min)
    return float(-torch.log2(mass.clamp_min(1e-300)).mean())


def empirical_score(train: torch.Tensor, sde, batch_size: int = 256):
    """The exact score of eq. (8)'s optimum for a finite training set: the data distribution is the n
    training points, so p_t = (1/n) sum_i N(alpha_t x_i, std_t^2 I) and

        grad log p_t(x) = sum_i r_i(x) (alpha_t x_i - x) / std_t^2,   r = softmax_i(-||x - alpha_t x_i||^2 / (2 std_t^2)).

    A network that minimised eq. (8) perfectly on these points would have this score, and sampling it
    returns the training points: memorisation (notebook 10). ``train`` (n, ...); returns ``score(x, t)``
    for x of the same trailing shape (computed in float64 in batches)."""
    train = validate.batch("train", train)
    flat = train.reshape(len(train), -1).double()
    sq = flat.pow(2).sum(1)

    def score(x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        t = t.expand(x.shape[0]) if t.dim() == 0 else t.double()
        alpha, std = sde.marginal_coeffs(t, check=False)
        xf = x.reshape(len(x), -1).double()
        out = torch.empty_like(xf)
        for i in range(0, len(xf), batch_size):
            xb, a, s2 = xf[i:i + batch_size], alpha[i:i + batch_size, None], std[i:i + batch_size, None] ** 2
            d2 = xb.pow(2).sum(1, keepdim=True) - 2 * a * (xb @ flat.T.to(xb.device)) + a**2 * sq.to(xb.device)
            r = torch.softmax(-d2 / (2 * s2), dim=1)
            out[i:i + batch_size] = (a * (r @ flat.to(xb.device)) - xb) / s2
        return out.reshape(x.shape).to(x.dtype)

    return score


@torch.no_grad()
def denoiser_error(kind: str, sde, sigmas, delta: float = 0.1, *, sigma_data: float = 0.5, var: float = 0.25,
                   dim: int = 16, n: int = 512, generator: torch.Generator | None = None) -> torch.Tensor:
    """The denoiser's error caused by a fixed error ``delta`` in the raw network's output F, per noise level
    (EDM, Karras et al. 2022, section 5, "Preconditioning"), measured through the package's own wrapper.

    Data N(0, var I) in ``dim`` dimensions, where the optimal raw output F* is known
    (``optimal_gaussian_output``). The raw network is F* + delta (the same error at every sigma); wrapped by
    ``Preconditioned(.., kind)`` it gives a score s, turned back into a denoiser by Tweedie's formula,
    D = y + sigma^2 alpha_t s(x, t). Returns the rms over n points of D - D* at each sigma of ``sigmas``
    (float64, shape (len(sigmas),)). Since D = c_skip y + c_out F, the error is c_out(sigma) |delta|:
    ``"none"`` (noise prediction, c_out = sigma) multiplies it by sigma, ``"edm"`` by
    sigma sd / sqrt(sigma^2 + sd^2) <= sd = ``sigma_data``. Notebook 10, section 1."""
    if kind not in PRECONDITIONINGS:
        raise ValueError(f"kind={kind!r} is not a preconditioning; expected one of {PRECONDITIONINGS}.")
    delta = validate.positive("delta", delta)
    var = validate.positive("var", var)
    mean = torch.zeros(dim, dtype=torch.float64)
    exact = optimal_gaussian_output(kind, sde, mean, var, sigma_data)
    perfect = Preconditioned(exact, sde, kind, sigma_data)
    wrong = Preconditioned(lambda x_in, c_noise: exact(x_in, c_noise) + delta, sde, kind, sigma_data)
    out = []
    for sig in torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1):
        t = sde.t_of_sigma(sig).double().expand(n)
        alpha, std = sde.marginal_coeffs(t, check=False)
        sigma = (std / alpha)[:, None]
        y = math.sqrt(var) * torch.randn(n, dim, generator=generator, dtype=torch.float64) + \
            sigma * torch.randn(n, dim, generator=generator, dtype=torch.float64)
        x = alpha[:, None] * y
        d_wrong = y + sigma**2 * alpha[:, None] * wrong(x, t)            # Tweedie: D = y + sigma^2 alpha s
        d_exact = y + sigma**2 * alpha[:, None] * perfect(x, t)
        out.append((d_wrong - d_exact).pow(2).mean().sqrt())
    return torch.stack(out)


def edm_loss(net, x0: torch.Tensor, n: torch.Tensor, z: torch.Tensor, sigma_data: float = 0.5,
             p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """EDM's training loss (Karras et al. 2022, section 5 and table 1) on given draws, in the noise-level view
    y = x0 + sigma z (the VE SDE's state, alpha = 1):

        ln sigma = p_mean + p_std n,   D = c_skip y + c_out F(c_in y, c_noise),
        loss = mean over the batch of  lambda(sigma) || D - x0 ||^2  (summed over the coordinates),
        lambda = (sigma^2 + sd^2) / (sigma sd)^2,

    with EDM's coefficients (``coefficients("edm", ...)``, sd = ``sigma_data``). ``net(x_in, c_noise)`` is the
    raw network, ``x0`` and ``z`` (batch, ...), ``n`` (batch,) standard normal draws. lambda c_out^2 = 1, so it
    is || F - F* ||^2 with unit weight; on the VE SDE it equals ``recipe_loss(..., noise="lognormal",
    weighting="edm")`` of a ``Preconditioned(net, sde, "edm")`` on the same draws. The reference of
    ``sg.exercises.check_edm_loss`` (notebook 10, exercise 3)."""
    validate.check_callable("net", net)
    x0 = validate.batch("x0", x0)
    if z.shape != x0.shape or n.shape != x0.shape[:1]:
        raise ValueError(f"z has shape {tuple(z.shape)} and n {tuple(n.shape)}; expected x0's shape "
                         f"{tuple(x0.shape)} and ({len(x0)},).")
    sigma = torch.exp(p_mean + p_std * n)                                   # ln sigma ~ N(p_mean, p_std^2)
    c_skip, c_out, c_in, c_noise = coefficients("edm", sigma, torch.ones_like(sigma), sigma, sigma_data)
    y = x0 + per_sample(sigma, x0) * z
    D = per_sample(c_skip, x0) * y + per_sample(c_out, x0) * net(per_sample(c_in, x0) * y, c_noise)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2         # lambda(sigma)
    return (weight * (D - x0).pow(2).reshape(len(x0), -1).sum(1)).mean()


def bits_point_mass(sigma_min: float, bins: int = 256) -> float:
    """Bits/dim of a second reference density: a point mass at the centre of the pixel's bin, blurred by
    N(0, sigma_min^2), for x = (k + u) / bins, u ~ U(0, 1) (the dequantisation of ``sg.mnist.bits_per_dim``).
    In closed form, with h = 1 / bins and x - centre = (u - 1/2) h,

        E_u[-log2 N((u - 1/2) h; 0, sigma_min^2)] + log2 bins
            = log2(sqrt(2 pi) sigma_min / h) + h^2 / (24 sigma_min^2 ln 2).

    Below ``bits_floor`` when sigma_min is near h (at the MNIST SDE's sigma_min = 0.81 h: about 1.11 against
    1.19), far above it when sigma_min << h: neither reference is a bound (``bits_bound`` is). Notebook 10."""
    sigma_min = validate.positive("sigma_min", sigma_min)
    h = 1.0 / validate.count("bins", bins)
    return math.log2(math.sqrt(2 * math.pi) * sigma_min / h) + h**2 / (24 * sigma_min**2 * math.log(2))


def bits_bound(sigma_min: float, bins: int = 256, n_u: int = 500, n_grid: int = 201, n_iter: int = 500) -> dict:
    """A true lower bound on the bits/dim of any density that is some distribution blurred by N(0, sigma_min^2),
    which is what the probability-flow ODE of the exact score gives at t_min, whatever the data (notebook 10).

    Per pixel, with data x = (k + u) / bins, u ~ U(0, 1), and a model density p = mu * N(0, sigma_min^2) for any
    distribution mu, bits/dim = E_u[-log2 p(x)] + log2 bins. Minimising over mu is convex (the
    nonparametric maximum-likelihood problem of a Gaussian mixture, Kiefer & Wolfowitz 1956): EM on a grid of
    atoms gives a mu with value V, and the dual certificate gives a bound valid for *every* mu,

        min_mu  >=  V - log2 max_m E_u[N(x - m; sigma_min^2) / p(x)],

    because E_u[log2(p*/p)] <= log2 E_u[p*/p] = log2 int E_u[N(x - m) / p(x)] dmu*(m) (Jensen). In D
    dimensions the bound is per pixel: each conditional p(x_i | x_<i) of a blurred density is itself a blurred
    distribution, and the pixels of the dequantisation noise are independent (chain rule). It holds for the
    exact score's model, not for every learned network (whose ODE density need not be a blur).

    Returns {"bound": the certified lower bound, "value": V, the bits/dim of the best mu found (an upper bound
    on the minimum), "support": (lowest, highest) atom of mu in units of the bin, 0 and 1 its edges}. The
    expectation over u is the midpoint rule with ``n_u`` points, and the certificate's maximum over m is taken
    on a grid eight times finer than the atoms' (both errors are far below the printed digits)."""
    sigma_min = validate.positive("sigma_min", sigma_min)
    bins = validate.count("bins", bins)
    s = sigma_min * bins                                                    # in units of the bin width h
    u = (torch.arange(n_u, dtype=torch.float64) + 0.5) / n_u
    m = torch.linspace(-0.5 - 6 * s, 1.5 + 6 * s, n_grid, dtype=torch.float64)
    phi = torch.exp(-(u[:, None] - m[None]) ** 2 / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)   # N(u - m; s^2)
    w = torch.full((n_grid,), 1.0 / n_grid, dtype=torch.float64)
    for _ in range(n_iter):                                                 # EM for the mixture weights of mu
        w = w * (phi / (phi @ w)[:, None]).mean(0)
    p = phi @ w                                                             # density in units of h: 8 bits offset cancels
    value = float(-torch.log2(p).mean())
    m_fine = torch.linspace(float(m[0]), float(m[-1]), 8 * n_grid, dtype=torch.float64)
    phi_fine = torch.exp(-(u[:, None] - m_fine[None]) ** 2 / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)
    certificate = float((phi_fine / p[:, None]).mean(0).max())             # max_m E_u[N(u - m) / p(u)] >= 1
    keep = m[w > 1e-4 * w.max()]
    return {"bound": value - math.log2(certificate), "value": value,
            "support": (float(keep.min()), float(keep.max()))}
