"""Gaussian mixtures with exact densities, scores and samples in any dimension, and their exact marginals under
an SDE at every noise level (``SDEMarginal``): the ground truth every method of the course is checked against.
Reachable as ``sg.densities.<name>``. Introduced in notebooks/01_scores_and_langevin.ipynb."""
from __future__ import annotations

import functools
import math

import torch

from .. import validate

_LOG_2PI = math.log(2 * math.pi)

__all__ = ["GaussianMixture", "Gaussian", "SDEMarginal"]


def _as_covs(covs, n_components: int, dim: int, dtype) -> torch.Tensor:
    """Accept (K, D, D) full, (K, D) diagonal or (K,) isotropic covariances."""
    covs = torch.as_tensor(covs, dtype=dtype)
    if covs.dim() == 1 and covs.shape[0] == n_components:
        covs = covs[:, None, None] * torch.eye(dim, dtype=dtype)
    elif covs.dim() == 2 and covs.shape == (n_components, dim):
        covs = torch.diag_embed(covs)
    if covs.shape != (n_components, dim, dim):
        raise ValueError(
            f"covs has shape {tuple(covs.shape)}; expected ({n_components}, {dim}, {dim}) full, "
            f"({n_components}, {dim}) diagonal or ({n_components},) isotropic covariances."
        )
    return covs


@functools.lru_cache(maxsize=64)
def _block_matrices(k: int, d: int, device: str, dtype):
    """0/1 matrices of the components-first score (``GaussianMixture._component_terms``): ``tile`` (K D, D),
    K identities stacked (tile @ x^T repeats x^T per component), ``per_k`` (K, K D), which sums each
    component's D rows, and the transposes of both, contiguous."""
    eye = torch.eye(d, device=device, dtype=dtype)
    tile = eye.repeat(k, 1)
    per_k = torch.kron(torch.eye(k, device=device, dtype=dtype), torch.ones(1, d, device=device, dtype=dtype))
    return tile, per_k, tile.T.contiguous(), per_k.T.contiguous()


class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, Sigma_k) in any dimension D, with exact score.

    Args:
        weights: (K,) non-negative, summing to 1.
        means: (K, D).
        covs: (K, D, D) symmetric positive-definite, or (K, D) diagonals, or
            (K,) isotropic variances.

    The parameters keep the dtype of ``means`` (float32 or float64); ``log_prob``
    and ``score`` compute in the dtype and on the device of their input ``x``.
    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """

    def __init__(self, weights, means, covs):
        means = torch.as_tensor(means)
        if not torch.is_floating_point(means):
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2:
            raise ValueError(f"means has shape {tuple(means.shape)}; expected (K, D): one row per component.")
        validate.tensor("means", means)
        n_components, dim = means.shape
        weights = torch.as_tensor(weights, dtype=means.dtype)
        if weights.shape != (n_components,):
            raise ValueError(f"weights has shape {tuple(weights.shape)}; expected ({n_components},), one per mean.")
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"weights={validate.show(weights)} must be finite and non-negative.")
        total = float(weights.sum())
        if abs(total - 1.0) > 1e-4:
            raise ValueError(
                f"weights={validate.show(weights)} sum to {total:.6g}; expected them to sum to 1 "
                f"(divide by their sum)."
            )
        covs = _as_covs(covs, n_components, dim, means.dtype)
        validate.tensor("covs", covs)
        if not torch.allclose(covs, covs.transpose(-1, -2), atol=1e-6, rtol=1e-5):
            raise ValueError("covs must be symmetric matrices (Sigma == Sigma^T).")
        chol, info = torch.linalg.cholesky_ex(covs.double())
        if (info != 0).any():
            k = int(torch.nonzero(info)[0])
            raise ValueError(
                f"covs[{k}]={validate.show(covs[k])} is not positive-definite; "
                f"expected a symmetric matrix with positive eigenvalues."
            )
        self.weights = weights
        self.means = means
        self.covs = covs
        self._cache: dict = {}
        self._perturbed: dict = {}  # sigma -> perturb(sigma), for perturbed_score

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_components={self.n_components}, dim={self.dim}, dtype={self.means.dtype})"

    def to(self, device=None, dtype=None) -> "GaussianMixture":
        """A copy of the mixture on another device or dtype."""
        dtype = dtype or self.means.dtype
        return GaussianMixture(
            self.weights.to(device=device, dtype=dtype),
            self.means.to(device=device, dtype=dtype),
            self.covs.to(device=device, dtype=dtype),
        )

    def _params(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            covs = self.covs.to(device=device, dtype=torch.float64)
            chol = torch.linalg.cholesky(covs)
            precision = torch.cholesky_inverse(chol)
            logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
            with torch.no_grad():
                log_w = torch.log(self.weights.to(device=device, dtype=torch.float64))
            self._cache[key] = tuple(
                t.to(dtype)
                for t in (self.means.to(device=device, dtype=torch.float64), chol, precision, logdet, log_w)
            )
        return self._cache[key]

    def _check_x(self, x):
        return validate.points("x", x, self.dim)

    def _component_terms(self, x):
        """log w_k + log N(x; mu_k, Sigma_k), shape (K, n), and Sigma_k^{-1} (x - mu_k) for every k, stacked
        as (K D, n).

        Components first and points last, every step a matmul or an elementwise op on 2D tensors:
        P_k x - P_k mu_k for all k is one (K D, D) x (D, n) matmul, and the sums over d (the Mahalanobis
        terms) and over k (the score) are matmuls with 0/1 matrices. For the 2D mixtures this is 2-3 times
        faster than (n, K, D) einsums, which matters in a sampling loop (a widget runs 1000 score
        evaluations per slider move, issue 23)."""
        means, _, precision, logdet, log_w = self._params(x.device, x.dtype)
        stacked, p_mu, mu, tile, per_k, _, _ = self._stacked(x.device, x.dtype)
        xt = x.T
        sol = stacked @ xt - p_mu                          # Sigma_k^{-1} (x - mu_k), (K D, n)
        maha = per_k @ ((tile @ xt - mu) * sol)            # (x - mu_k)^T Sigma_k^{-1} (x - mu_k), (K, n)
        log_comp = -0.5 * (self.dim * _LOG_2PI + logdet[:, None] + maha)
        return log_w[:, None] + log_comp, sol

    def _stacked(self, device, dtype):
        """Cached like ``_params``: the precisions stacked (K D, D), P_k mu_k and mu_k as (K D, 1) columns,
        and ``_block_matrices`` for this K and D."""
        key = ("stacked", str(device), dtype)
        if key not in self._cache:
            means, _, precision, _, _ = self._params(device, dtype)
            k, d = means.shape
            self._cache[key] = (precision.reshape(k * d, d).contiguous(),
                                torch.einsum("kde,ke->kd", precision, means).reshape(k * d, 1),
                                means.reshape(k * d, 1), *_block_matrices(k, d, str(device), dtype))
        return self._cache[key]

    # --------------------------------------------------------------- density
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x of shape (n, D); returns (n,)."""
        x = self._check_x(x)
        terms, _ = self._component_terms(x)
        return torch.logsumexp(terms, dim=0)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities r_k(x) = w_k N_k(x) / p(x), shape (n, K)."""
        x = self._check_x(x)
        terms, _ = self._component_terms(x)
        return torch.softmax(terms, dim=0).T

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Exact score grad_x log p(x) = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k), shape (n, D).

        Analytic (no autograd), so it is cheap and exact for the samplers.
        """
        x = self._check_x(x)
        terms, sol = self._component_terms(x)
        *_, untile, spread = self._stacked(x.device, x.dtype)
        resp = torch.softmax(terms, dim=0)
        comp_scores = -sol                                         # -Sigma_k^{-1} (x - mu_k), (K D, n)
        return (untile @ ((spread @ resp) * comp_scores)).T.contiguous()   # sum_k r_k(x) (...), (n, D)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n i.i.d. samples, shape (n, D), on the mixture's device; seeded by ``generator``."""
        n = validate.count("n", n)
        device, dtype = self.means.device, self.means.dtype
        means, chol, _, _, _ = self._params(device, dtype)
        k = torch.multinomial(self.weights.to(dtype), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=dtype)
        return means[k] + torch.einsum("nde,ne->nd", chol[k], z)

    # ----------------------------------------------------------- transforms
    def diffuse(self, alpha, std) -> "GaussianMixture":
        """Exact density of alpha * x + std * z for x ~ p and z ~ N(0, I).

        Means become alpha * mu_k and covariances alpha^2 Sigma_k + std^2 I. It is
        the marginal p_t of a forward SDE with affine drift, eq. (6), started at p.
        """
        alpha = validate.positive("alpha", alpha)
        std = validate.positive("std", std, allow_zero=True)
        eye = torch.eye(self.dim, dtype=self.covs.dtype, device=self.covs.device)
        return self._valid(self.weights, alpha * self.means, alpha**2 * self.covs + std**2 * eye)

    @classmethod
    def _valid(cls, weights, means, covs) -> "GaussianMixture":
        """A mixture from parameters known to be valid (a valid mixture diffused with alpha > 0, std >= 0),
        without the checks of ``__init__``: the exact SDE score builds one per sampler step (``SDEMarginal``)."""
        mix = cls.__new__(cls)
        mix.weights, mix.means, mix.covs = weights, means, covs
        mix._cache, mix._perturbed = {}, {}
        return mix

    def perturb(self, sigma) -> "GaussianMixture":
        """Exact density q_sigma of x + sigma * z, z ~ N(0, I): covariances Sigma_k + sigma^2 I.

        ``perturb(sigma).score`` is the target of denoising score matching, eq. (3),
        and of the NCSN loss, eq. (4), at noise level sigma.
        """
        sigma = validate.positive("sigma", sigma)
        return self.diffuse(1.0, sigma)

    def perturbed_score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """grad_x log q_sigma(x), the exact score of ``perturb(sigma)``: a noise-conditional
        score function ``(x, sigma) -> score`` for ``annealed_langevin`` (notebook 05).

        The perturbed mixtures are cached per sigma, so calling this in a sampling loop is cheap.
        """
        key = float(sigma)
        if key not in self._perturbed:
            self._perturbed[key] = self.perturb(key)
        return self._perturbed[key].score(x)

    # --------------------------------------------------------------- helpers
    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean sum_k w_k mu_k and covariance sum_k w_k (Sigma_k + mu_k mu_k^T) - mean mean^T
        (float64), what a sampler's output is checked against (``sg.metrics.moment_z``)."""
        w, mu, cov = self.weights.double(), self.means.double(), self.covs.double()
        mean = (w[:, None] * mu).sum(0)
        second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
        return mean, second - torch.outer(mean, mean)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the most responsible component for each row of x, shape (n,)."""
        return self.responsibilities(x).argmax(dim=1)

    def mode_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Fraction of the points of x assigned to each component, shape (K,).

        Compare with ``self.weights`` to see whether a sampler recovered the
        mixture weights.
        """
        k = self.assign(x)
        return torch.bincount(k, minlength=self.n_components).to(x.dtype) / len(k)

    def bounds(self, pad: float = 3.5) -> tuple[float, float, float, float]:
        """A square plotting window (xmin, xmax, ymin, ymax) holding every mode +- pad std."""
        std = torch.sqrt(torch.diagonal(self.covs, dim1=-2, dim2=-1)).max()
        lo = float((self.means - pad * std).min())
        hi = float((self.means + pad * std).max())
        return lo, hi, lo, hi


class Gaussian(GaussianMixture):
    """N(mean, cov) as a one-component mixture, with exact log density and score.

    ``cov`` may be a (D, D) matrix, a (D,) diagonal or a scalar variance.
    Introduced in notebooks/01_scores_and_langevin.ipynb.
    """

    def __init__(self, mean, cov):
        mean = torch.as_tensor(mean)
        if not torch.is_floating_point(mean):
            mean = mean.to(torch.get_default_dtype())
        if mean.dim() != 1:
            raise ValueError(f"mean has shape {tuple(mean.shape)}; expected (D,).")
        cov = torch.as_tensor(cov, dtype=mean.dtype)
        if cov.dim() == 0:
            cov = cov.reshape(1)
        elif cov.dim() in (1, 2):
            cov = cov[None]
        super().__init__(torch.ones(1, dtype=mean.dtype), mean[None], cov)

    @property
    def mean(self) -> torch.Tensor:
        return self.means[0]

    @property
    def cov(self) -> torch.Tensor:
        return self.covs[0]


class SDEMarginal:
    """The exact marginal p_t of a forward SDE, eq. (6), started at a Gaussian mixture p_0.

    For an SDE with affine drift, x(t) = alpha_t x(0) + std_t z, so p_t is the mixture with
    means alpha_t mu_k and covariances alpha_t^2 Sigma_k + std_t^2 I (``GaussianMixture.diffuse``).
    ``log_prob(x, t)`` and ``score(x, t)`` accept a float t or one time per row of x (shape (n,)),
    so the reverse-time samplers of notebook 06 can run on the exact score.

    Introduced in notebooks/06_sdes.ipynb.
    """

    def __init__(self, mixture: GaussianMixture, sde):
        self.mixture, self.sde = mixture, sde

    def at(self, t: float) -> GaussianMixture:
        """p_t at one time t as a ``GaussianMixture``."""
        alpha, std = self.sde.marginal_coeffs(torch.tensor(float(t), dtype=torch.float64))  # not float32
        return self.mixture.diffuse(float(alpha), float(std))

    def _terms(self, x, t):
        from .sde import as_time

        x = validate.points("x", x, self.mixture.dim)
        t = as_time(t, x)
        alpha, std = self.sde.marginal_coeffs(t.to(torch.float64))
        n = x.shape[0]
        alpha = alpha.expand(n) if alpha.dim() == 0 else alpha
        std = std.expand(n) if std.dim() == 0 else std
        m = self.mixture
        eye = torch.eye(m.dim, dtype=torch.float64, device=x.device)
        covs = alpha[:, None, None, None] ** 2 * m.covs.to(x.device, torch.float64)[None] \
            + std[:, None, None, None] ** 2 * eye                                          # (n, K, D, D)
        chol = torch.linalg.cholesky(covs)
        diff = x.to(torch.float64)[:, None, :] - alpha[:, None, None] * m.means.to(x.device, torch.float64)[None]
        sol = torch.cholesky_solve(diff[..., None], chol)[..., 0]                            # Sigma^{-1} (x - mu)
        maha = (diff * sol).sum(-1)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_w = torch.log(m.weights.to(x.device, torch.float64))
        terms = log_w[None] - 0.5 * (m.dim * _LOG_2PI + logdet + maha)
        return x, terms, sol

    @staticmethod
    def common_time(t):
        """The single time shared by every row of a batch (what the samplers pass) as a float, else None.
        Used to evaluate the marginal as one ``GaussianMixture`` (``at``) instead of per row."""
        if not isinstance(t, torch.Tensor):
            return float(t)
        if t.dim() == 0 or bool((t == t.reshape(-1)[0]).all()):
            return float(t.reshape(-1)[0])
        return None

    def log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        """log p_t(x), shape (n,)."""
        common = self.common_time(t)
        if common is not None:
            return self.at(common).log_prob(x)
        x, terms, _ = self._terms(x, t)
        return torch.logsumexp(terms, dim=1).to(x.dtype)

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """grad_x log p_t(x), shape (n, D): the exact time-dependent score."""
        common = self.common_time(t)
        if common is not None:
            return self.at(common).score(x)
        x, terms, sol = self._terms(x, t)
        resp = torch.softmax(terms, dim=1)
        return -(resp[..., None] * sol).sum(1).to(x.dtype)

    def sample(self, n: int, t: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of p_t (forward in closed form: alpha_t x0 + std_t z)."""
        return self.at(t).sample(n, generator=generator)
