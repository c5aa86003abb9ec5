"""Forward SDEs dx = f(x, t) dt + g(t) dw, eq. (6), on t in [0, 1], for data of any
shape (batch first): the variance-exploding (VE), variance-preserving (VP) and
sub-VP SDEs of Song et al. (2021).

All three have affine drift, so the transition kernel p_0t(x(t) | x(0)) is
Gaussian, N(alpha_t x(0), std_t^2 I), given by ``marginal_prob``; that is what
eq. (8) and the exact mixture marginals of ``sg.densities.SDEMarginal`` use.
Introduced in notebooks/06_sdes.ipynb and reused on MNIST in
07_mnist_score_sde.ipynb. The noise-level view (``sigma_of_t``, ``t_of_sigma``, ``denoiser``)
that the samplers of Karras et al. (2022, EDM) work in is introduced in 08_fast_sampling.ipynb.
"""
from __future__ import annotations

import math

import torch

from .. import validate

__all__ = ["SDE", "VESDE", "VPSDE", "SubVPSDE", "SDES", "as_time", "per_sample", "denoiser", "continuity_check",
           "imperfect_score"]

_LOG_2PI = math.log(2 * math.pi)


def as_time(t, x: torch.Tensor | None = None) -> torch.Tensor:
    """t as a float tensor of shape (n,) (or 0-d), checked to lie in [0, 1] (and, given x, one
    time per row of x, on x's device and dtype). Used by every sampler and density that takes t."""
    given = t
    if isinstance(t, torch.Tensor):
        tt = t
    else:
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"t={t!r} must be a float or a tensor of times in [0, 1].")
        if not 0.0 <= float(t) <= 1.0:  # checked before any rounding to float32
            raise ValueError(f"t={t!r} is invalid: expected times in [0, 1].")
        tt = torch.tensor(float(t))
    if x is not None:
        tt = tt.to(device=x.device, dtype=x.dtype if torch.is_floating_point(x) else torch.float32)
    if not torch.is_floating_point(tt):
        tt = tt.float()
    if not torch.isfinite(tt).all() or (tt < 0).any() or (tt > 1).any():
        raise ValueError(f"t={validate.show(given)} is invalid: expected times in [0, 1].")
    if x is not None and tt.dim() == 1 and tt.shape[0] != x.shape[0]:
        raise ValueError(f"t has shape {tuple(tt.shape)}; expected a scalar or ({x.shape[0]},), one per row of x.")
    return tt


def per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample (n,) or scalar coefficient to broadcast against x (n, ...)."""
    if v.dim() == 0:
        return v
    return v.reshape((-1,) + (1,) * (x.dim() - 1))


class SDE:
    """Base class: subclasses define ``beta``-style coefficients; this class gives the shared API.

    Methods (x of shape (n, ...), t a float or a tensor (n,) in [0, 1]):
        drift(x, t) -> f(x, t), diffusion(t) -> g(t), marginal_prob(x0, t) -> (mean, std),
        marginal_coeffs(t) -> (alpha_t, std_t), marginal_std(t), prior_sample(shape, generator),
        prior_log_prob(x) -> (n,), reverse_drift(x, t, score) -> f - g^2 score (eq. (7)).
    """

    T = 1.0
    name = "SDE"

    # -- to implement -------------------------------------------------------
    def _drift_coeff(self, t: torch.Tensor) -> torch.Tensor:  # f(x, t) = coeff(t) * x
        raise NotImplementedError

    def _diffusion(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _coeffs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, std_t) without checking t: for hot loops on a GPU (no host sync)."""
        raise NotImplementedError

    def prior_std(self) -> float:
        raise NotImplementedError

    # -- unchecked internals (no host synchronisation: used inside samplers and training loops) --
    def _drift_raw(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return per_sample(self._drift_coeff(t), x) * x

    def _reverse_drift_raw(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor, ode: bool = False):
        g2 = per_sample(self._diffusion(t) ** 2, x)
        return self._drift_raw(x, t) - (0.5 if ode else 1.0) * g2 * score

    # -- shared API ---------------------------------------------------------
    def marginal_coeffs(self, t, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, std_t) with p_0t(x(t) | x(0)) = N(alpha_t x(0), std_t^2 I), same shape as t.

        ``check=False`` is the fast path for hot loops (training steps, samplers, a network's
        forward pass on a GPU): t must already be a float tensor in [0, 1]; it is not validated,
        which would force a host synchronisation."""
        return self._coeffs(as_time(t) if check else t)

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """f(x, t) of eq. (6) (affine in x for all three SDEs)."""
        x = validate.batch("x", x)
        return self._drift_raw(x, as_time(t, x))

    def diffusion(self, t, *, check: bool = True) -> torch.Tensor:
        """g(t) of eq. (6), same shape as t (``check=False``: the unvalidated fast path, see
        ``marginal_coeffs``)."""
        return self._diffusion(as_time(t) if check else t)

    def marginal_std(self, t) -> torch.Tensor:
        """std_t of the transition kernel, same shape as t (what a score network's output is divided by)."""
        return self.marginal_coeffs(t)[1]

    def marginal_prob(self, x0: torch.Tensor, t):
        """Mean alpha_t x0 and std std_t of p_0t(x(t) | x(0) = x0); std has t's shape."""
        x0 = validate.batch("x0", x0)
        t = as_time(t, x0)
        alpha, std = self._coeffs(t)
        return per_sample(alpha, x0) * x0, std

    def perturb(self, x0: torch.Tensor, t, z: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """x(t) = alpha_t x0 + std_t z, a draw of the transition kernel p_0t(x(t) | x(0) = x0) for the given
        standard normal z (shape of x0); t a float or a tensor (n,). ``check=False``: the unvalidated fast path
        (t a float tensor in [0, 1] on x0's device). Used by eq. (8), inpainting and the noisy classifier."""
        if check:
            x0 = validate.batch("x0", x0)
            t = as_time(t, x0)
            if z.shape != x0.shape:
                raise ValueError(f"z has shape {tuple(z.shape)}; expected x0's shape {tuple(x0.shape)}.")
        alpha, std = self._coeffs(t)
        return per_sample(alpha, x0) * x0 + per_sample(std, x0) * z

    def prior_sample(self, shape, generator: torch.Generator | None = None, device=None, dtype=torch.float32):
        """x(T) ~ p_T = N(0, prior_std^2 I), the tractable prior the reverse samplers start from."""
        shape = validate.shape("shape", shape)
        return self.prior_std() * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_T(x) for the Gaussian prior, summed over all non-batch dimensions: shape (n,)."""
        x = validate.batch("x", x)
        d = x[0].numel()
        s = self.prior_std()
        return -0.5 * d * (_LOG_2PI + 2 * math.log(s)) - x.reshape(len(x), -1).pow(2).sum(1) / (2 * s**2)

    def reverse_drift(self, x: torch.Tensor, t, score: torch.Tensor, ode: bool = False, *,
                      check: bool = True) -> torch.Tensor:
        """Drift of the reverse-time SDE, eq. (7): f - g^2 score; with ``ode``, of the
        probability-flow ODE: f - (1/2) g^2 score. ``check=False``: the unvalidated fast path
        for samplers' inner loops (t a float tensor in [0, 1], x a batch), see ``marginal_coeffs``."""
        if not check:
            return self._reverse_drift_raw(x, t, score, ode)
        x = validate.batch("x", x)
        return self._reverse_drift_raw(x, as_time(t, x), score, ode)

    # -- the noise-level view (notebook 08) -------------------------------------
    def sigma_of_t(self, t) -> torch.Tensor:
        """The noise level sigma(t) = std_t / alpha_t, same shape as t.

        x(t) = alpha_t (x(0) + sigma(t) z): the scaled state x(t) / alpha_t is the data plus Gaussian
        noise of std sigma(t), whichever SDE made it. Karras et al. (2022, EDM, section 2 and
        table 1) write every SDE this way, with s(t) = alpha_t; VE has alpha_t = 1 and sigma(t) = std_t.
        Increasing in t from sigma_of_t(0) = 0."""
        alpha, std = self.marginal_coeffs(t)
        return std / alpha

    def max_noise_level(self) -> float:
        """sigma_of_t(1), the largest noise level of the SDE (where the reverse samplers start)."""
        return float(self.sigma_of_t(torch.tensor(1.0, dtype=torch.float64)))

    def t_of_sigma(self, sigma) -> torch.Tensor:
        """The inverse of ``sigma_of_t``: the time t in [0, 1] at which the noise level is sigma.

        ``sigma``: a float or a tensor in [0, sigma_of_t(1)], computed in float64 and returned in
        sigma's floating dtype (float32 for a Python float). Raises ValueError, naming the SDE's
        largest level, for sigma above it."""
        sig = validate.tensor("sigma", torch.as_tensor(sigma, dtype=torch.float64)
                             if not isinstance(sigma, torch.Tensor) else sigma)
        out_dtype = sig.dtype if isinstance(sigma, torch.Tensor) else torch.float32
        s64 = sig.double()
        top = self.max_noise_level()
        if (s64 < 0).any() or (s64 > top * (1 + 1e-6)).any():
            raise ValueError(f"sigma={validate.show(sigma)} is outside [0, {top:.6g}], the noise levels of "
                             f"{self!r} (sigma_of_t(0) to sigma_of_t(1)); pass sigma_max <= {top:.6g}.")
        return self._t_of_sigma(s64).clamp(0.0, 1.0).to(out_dtype)

    def _t_of_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in vars(self).items() if isinstance(v, float) and not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class VESDE(SDE):
    """Variance-exploding SDE, the continuous limit of NCSN: dx = sqrt(d[sigma^2(t)]/dt) dw with
    sigma(t) = sigma_min (sigma_max / sigma_min)^t, so g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)).

    The kernel is exact from t = 0: alpha_t = 1, std_t^2 = sigma(t)^2 - sigma_min^2. The NCSN
    ladder ``geometric_sigmas(sigma_max, sigma_min, L)`` is sigma(t) at t = 1, ..., 0 in L even
    steps (notebook 06 shows the correspondence). Prior: N(0, sigma_max^2 I).
    """

    name = "VE"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min, self.sigma_max = validate.ordered("sigma_min", sigma_min, "sigma_max", sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    @classmethod
    def tutorial(cls, sigma: float = 25.0) -> "VESDE":
        """The SDE of Song's PyTorch tutorial, dx = sigma^t dw, whose kernel std is
        sqrt((sigma^(2t) - 1) / (2 log sigma)): a VE SDE with sigma_min = 1/sqrt(2 log sigma)
        and sigma_max = sigma * sigma_min (the reference recipe of notebook 07)."""
        sigma = validate.positive("sigma", sigma)
        if sigma <= 1:
            raise ValueError(f"sigma={sigma!r} must be > 1.")
        smin = 1.0 / math.sqrt(2 * math.log(sigma))
        return cls(sigma_min=smin, sigma_max=sigma * smin)

    def sigma(self, t) -> torch.Tensor:
        """sigma(t) = sigma_min (sigma_max / sigma_min)^t."""
        return self.sigma_min * torch.exp(as_time(t) * self._log_ratio)

    def _drift_coeff(self, t):
        return torch.zeros_like(t)

    def _diffusion(self, t):
        return self.sigma_min * torch.exp(t * self._log_ratio) * math.sqrt(2 * self._log_ratio)

    def _coeffs(self, t):
        # sigma(t)^2 - sigma_min^2 = sigma_min^2 (exp(2 t log r) - 1), computed stably for small t
        std = self.sigma_min * torch.sqrt(torch.expm1(2 * t * self._log_ratio))
        return torch.ones_like(t), std

    def _t_of_sigma(self, sigma):
        # sigma^2 = sigma_min^2 (exp(2 t log r) - 1)  =>  t = log(1 + sigma^2 / sigma_min^2) / (2 log r)
        return torch.log1p((sigma / self.sigma_min) ** 2) / (2 * self._log_ratio)

    def prior_std(self) -> float:
        return self.sigma_max


class VPSDE(SDE):
    """Variance-preserving SDE, the continuous limit of DDPM: dx = -(1/2) beta(t) x dt + sqrt(beta(t)) dw,
    beta(t) = beta_min + t (beta_max - beta_min). alpha_t = exp(-(1/4) t^2 (beta_max - beta_min) - (1/2) t beta_min),
    std_t = sqrt(1 - alpha_t^2). Prior: N(0, I).
    """

    name = "VP"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = validate.ordered("beta_min", beta_min, "beta_max", beta_max)

    def beta(self, t) -> torch.Tensor:
        return self.beta_min + as_time(t) * (self.beta_max - self.beta_min)

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _drift_coeff(self, t):
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))

    def _diffusion(self, t):
        return torch.sqrt(self.beta_min + t * (self.beta_max - self.beta_min))

    def _coeffs(self, t):
        log_alpha = self._log_alpha(t)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2 * log_alpha))

    def _log_alpha_of_sigma(self, sigma):
        # sigma^2 = (1 - alpha^2) / alpha^2  =>  log alpha = -(1/2) log(1 + sigma^2)
        return -0.5 * torch.log1p(sigma**2)

    def _t_of_sigma(self, sigma):
        # log alpha = -(1/4) t^2 (beta_max - beta_min) - (1/2) t beta_min: the positive root in t
        la = self._log_alpha_of_sigma(sigma)
        a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
        return 2 * (-la) / (b + torch.sqrt(b * b - 4 * a * la))   # (-b + sqrt(b^2 - 4a la)) / 2a, stably

    def prior_std(self) -> float:
        return 1.0


class SubVPSDE(VPSDE):
    """Sub-VP SDE: the VP drift with g(t)^2 = beta(t) (1 - exp(-2 int_0^t beta)); its variance
    std_t = 1 - alpha_t^2 stays below the VP one at every t. Prior: N(0, I)."""

    name = "sub-VP"

    def _diffusion(self, t):
        beta = self.beta_min + t * (self.beta_max - self.beta_min)
        return torch.sqrt(beta * -torch.expm1(4 * self._log_alpha(t)))

    def _coeffs(self, t):
        log_alpha = self._log_alpha(t)
        return torch.exp(log_alpha), -torch.expm1(2 * log_alpha)

    def _log_alpha_of_sigma(self, sigma):
        # sigma = (1 - alpha^2) / alpha  =>  alpha^2 + sigma alpha - 1 = 0  =>  alpha = 2 / (sigma + sqrt(sigma^2 + 4))
        return torch.log(2.0 / (sigma + torch.sqrt(sigma**2 + 4.0)))


def denoiser(sde: SDE, score_fn):
    """The denoiser D(x; sigma) of a score model, by Tweedie's formula (the optimum of eq. (3);
    Karras et al. 2022, EDM, eq. (3)):

        D(x; sigma) = x + sigma^2 grad_x log p(x; sigma),

    where p(x; sigma) is the data blurred by noise of std sigma, the density of the scaled state
    x = x(t) / alpha_t at t = t_of_sigma(sigma). From a ``score_fn(x, t)`` of the SDE:
    grad_x log p(x; sigma) = alpha_t score_fn(alpha_t x, t), so

        D(x; sigma) = x + sigma^2 alpha_t score_fn(alpha_t x, t).

    D is the posterior mean E[x(0) | x(0) + sigma z = x]: what the network "sees" at noise sigma.
    Returns ``D(x, sigma)`` with x of shape (n, ...) and sigma a float or a tensor (n,) in
    (0, sigma_of_t(1)]. Introduced in notebooks/08_fast_sampling.ipynb; the EDM and DPM-Solver
    samplers of ``sg.samplers`` call it."""
    validate.check_callable("score_fn", score_fn)

    def D(x: torch.Tensor, sigma) -> torch.Tensor:
        if isinstance(sigma, torch.Tensor) and sigma.dim() == 1:
            sig = sigma.to(torch.float64).cpu()
        else:
            sig = torch.tensor(float(sigma), dtype=torch.float64)
        if (sig <= 0).any():
            raise ValueError(f"sigma={validate.show(sigma)} is invalid: D(x; sigma) needs sigma > 0 (at sigma = 0 "
                             f"it is x itself).")
        t = sde.t_of_sigma(sig)
        alpha = sde.marginal_coeffs(t, check=False)[0]
        tv = t.to(device=x.device, dtype=x.dtype).expand(x.shape[0]) if t.dim() == 0 else \
            t.to(device=x.device, dtype=x.dtype)
        a = per_sample(alpha.to(device=x.device, dtype=x.dtype), x)
        k = per_sample((sig**2 * alpha).to(device=x.device, dtype=x.dtype), x)
        return x + k * validate.check_score_output(score_fn(a * x, tv), x)

    return D


def imperfect_score(sde: SDE, score_fn, *, factor: float = 0.7, sigma_above: float = 1.0):
    """A deliberately imperfect score model: ``score_fn`` itself wherever the noise level sigma(t) is at most
    ``sigma_above``, and ``factor`` times it above (a model that under-fits the high noise levels, e.g. a
    network trained too briefly there, has a score of the wrong size there). With an exact ``score_fn`` the
    error is known and confined to those levels, which is what notebook 07's preview of notebook 08 needs:
    it shows the probability-flow ODE carrying an early error to the end while the reverse SDE's fresh
    noise lets the exact score below ``sigma_above`` repair it. Returns ``score(x, t)``."""
    validate.check_callable("score_fn", score_fn)
    factor = float(factor)
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor={factor!r} is invalid: expected a positive number (1 is the score itself, "
                         f"0.7 is 30 % too weak).")
    sigma_above = validate.positive("sigma_above", sigma_above)

    def score(x: torch.Tensor, t) -> torch.Tensor:
        tv = as_time(t, x)
        wrong = per_sample((sde.sigma_of_t(tv.to(torch.float64)) > sigma_above).to(x.dtype), x)
        return score_fn(x, t) * (1 + (factor - 1) * wrong)

    return score


#: Name -> a default-configured SDE for 2D toy data (used by the widgets).
SDES = {
    "VE": lambda: VESDE(sigma_min=0.01, sigma_max=10.0),
    "VP": lambda: VPSDE(beta_min=0.1, beta_max=20.0),
    "sub-VP": lambda: SubVPSDE(beta_min=0.1, beta_max=20.0),
}


def continuity_check(marginal, sde: SDE, x: torch.Tensor, t: float, *, ode_factor: float = 0.5,
                     h: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides of the continuity equation of a deterministic flow dx/dt = v(x, t), divided by p_t:

        d/dt log p_t(x)  =  -div v(x, t) - v(x, t) . grad_x log p_t(x),

    with v = f - ``ode_factor`` g^2 grad_x log p_t, for an exact time-dependent density ``marginal``
    (``log_prob(x, t)``, ``score(x, t)``; e.g. ``sg.densities.SDEMarginal``). The Fokker-Planck equation of
    eq. (6) says that the probability-flow ODE (``ode_factor`` = 1/2; Song et al. 2021, section 4.3) satisfies
    it, so the ODE carries p_t to p_t at every t; the reverse SDE's drift without its noise (``ode_factor`` = 1)
    does not.
    The left side is a central difference in t (step ``h``; its error is O(h^2) for a float64 ``marginal``, a
    float32 one adds rounding of order 1e-7 / h), the divergence is exact (autograd), in float64.
    Returns (lhs, rhs), each of shape (n,). Introduced in notebooks/06_sdes.ipynb."""
    x = validate.batch("x", x).to(torch.float64)
    if not h < t < 1 - h:
        raise ValueError(f"t={t!r} must lie in ({h}, {1 - h}) for the central difference with h={h}.")
    lhs = (marginal.log_prob(x, t + h).to(torch.float64) - marginal.log_prob(x, t - h).to(torch.float64)) / (2 * h)
    xr = x.detach().requires_grad_(True)
    tv = torch.full((x.shape[0],), float(t), dtype=torch.float64)
    score = marginal.score(xr, tv).to(torch.float64)
    g2 = per_sample(sde.diffusion(tv).to(torch.float64) ** 2, xr)
    v = sde.drift(xr, tv).to(torch.float64) - ode_factor * g2 * score
    div = torch.zeros(x.shape[0], dtype=torch.float64)
    for d in range(x.shape[1]):
        div = div + torch.autograd.grad(v[:, d].sum(), xr, retain_graph=True)[0][:, d]
    rhs = -div - (v * score).sum(-1)
    return lhs.detach(), rhs.detach()
