"""Score-matching losses. Each returns a scalar (the mean over the batch) and
rejects bad input with a ValueError before any work is done.

Conventions: ``score_net(x)`` maps (n, D) -> (n, D); squared norms are summed
over dimensions and averaged over the batch; every loss keeps the 1/2 of
eqs. (2)-(4), so eq. (2) and eq. (3) differ from the Fisher divergence
(1/2) E||s - grad log p||^2 only by a constant that does not depend on the net.
"""
from __future__ import annotations

import torch

from .. import validate

__all__ = ["explicit_score_matching", "sliced_score_matching", "denoising_score_matching", "dsm_target", "ncsn_loss", "sde_dsm"]


def _check_net(score_net):
    if not callable(score_net):
        raise TypeError(f"score_net={score_net!r} must be callable: score_net(x) -> tensor shaped like x.")


def _check_out(s, x):
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_net returned {got}; expected x's shape {tuple(x.shape)}.")
    return s


def explicit_score_matching(score_net, x: torch.Tensor) -> torch.Tensor:
    """Eq. (2): E_p_data[ tr(grad_x s_theta(x)) + (1/2) ||s_theta(x)||^2 ], with the exact Jacobian trace.

    The trace takes one backward pass per dimension (D passes in all), which is
    what makes eq. (2) prohibitive for images. The graph is kept so the loss can
    be differentiated again for training.

    Introduced in notebooks/02_score_matching.ipynb.
    """
    _check_net(score_net)
    x = validate.points("x", x).detach().requires_grad_(True)
    with torch.enable_grad():
        s = _check_out(score_net(x), x)
        trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):  # d s_i / d x_i, one backward pass each
            trace = trace + torch.autograd.grad(s[:, i].sum(), x, create_graph=True)[0][:, i]
        return (trace + 0.5 * s.pow(2).sum(1)).mean()


def sliced_score_matching(score_net, x: torch.Tensor, n_projections: int = 1, variance_reduction: bool = True,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced score matching: eq. (2) with the trace replaced by random projections.

    For v ~ N(0, I), E[v^T (grad_x s) v] = tr(grad_x s) (Hutchinson), and
    v^T (grad_x s) v = v . grad_x (v . s) costs one backward pass whatever D is:

        E_x E_v [ v^T (grad_x s) v + (1/2) ||s||^2 ]              (variance_reduction=True, "SSM-VR")
        E_x E_v [ v^T (grad_x s) v + (1/2) (v^T s)^2 ]            (variance_reduction=False)

    Both have the expectation of eq. (2). ``n_projections`` vectors are drawn per
    point (from ``generator`` on x's device, else the global torch RNG).

    Introduced in notebooks/02_score_matching.ipynb.
    """
    _check_net(score_net)
    x = validate.points("x", x).detach()
    n_projections = validate.count("n_projections", n_projections)
    xr = x.repeat(n_projections, 1).requires_grad_(True)
    v = torch.randn(xr.shape, generator=generator, device=x.device, dtype=x.dtype)
    with torch.enable_grad():
        s = _check_out(score_net(xr), xr)
        vs = (v * s).sum()
        grad_vs = torch.autograd.grad(vs, xr, create_graph=True)[0]
        vjv = (v * grad_vs).sum(1)
        norm = s.pow(2).sum(1) if variance_reduction else (v * s).sum(1).pow(2)
        return (vjv + 0.5 * norm).mean()


def dsm_target(x_tilde: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
    """grad_{x~} log q_sigma(x~ | x) = -(x~ - x) / sigma^2 for Gaussian noise (eq. (3), eq. (4))."""
    return -(x_tilde - x) / sigma**2


def denoising_score_matching(score_net, x: torch.Tensor, sigma, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. (3) with Gaussian noise: (1/2) E || s_theta(x~) + (x~ - x) / sigma^2 ||^2, x~ = x + sigma z.

    The optimum is the score of the perturbed density q_sigma = p_data * N(0, sigma^2 I)
    (``GaussianMixture.perturb(sigma).score`` when p_data is a mixture), close to
    the data score only when sigma is small. Unweighted: the loss scales like
    1/sigma^2 (notebook 04 adds the lambda(sigma) = sigma^2 weight).

    Introduced in notebooks/03_denoising_score_matching.ipynb.
    """
    _check_net(score_net)
    x = validate.batch("x", x)
    sigma = validate.positive("sigma", sigma)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_tilde = x + sigma * z
    s = _check_out(score_net(x_tilde), x)
    return 0.5 * (s - dsm_target(x_tilde, x, sigma)).pow(2).reshape(len(x), -1).sum(1).mean()


def _weight_fn(weighting):
    if callable(weighting):
        return weighting
    if isinstance(weighting, bool) or not isinstance(weighting, (int, float)):
        raise TypeError(f"weighting={weighting!r} must be a power p (lambda = sigma^p) or a callable sigma -> lambda.")
    return lambda sig: sig ** float(weighting)


def ncsn_loss(score_net, x: torch.Tensor, sigmas: torch.Tensor, weighting=2.0, per_level: bool = False,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The NCSN objective, eqs. (4)-(5): (1/L) sum_i lambda(sigma_i) l(theta; sigma_i) with

        l(theta; sigma) = (1/2) E || s_theta(x~, sigma) + (x~ - x) / sigma^2 ||^2,   x~ = x + sigma z.

    Each data point gets one level drawn uniformly from ``sigmas`` (an unbiased estimate of
    the 1/L sum, as in the NCSN code), so the cost does not grow with L.

    Args:
        score_net: (x, sigma) -> score, sigma a tensor of shape (n,).
        x: data batch (n, ...).
        sigmas: the noise ladder (L,), e.g. ``sg.schedules.geometric_sigmas(...)``.
        weighting: lambda(sigma) = sigma^weighting (default 2, which makes every term O(1)
            because ||s|| ~ 1/sigma), or a callable sigma -> lambda.
        per_level: instead of the scalar loss, return the unweighted l(theta; sigma_i) for
            every level (shape (L,)), each estimated on the whole batch (diagnostics).
        generator: seeds the levels and the noise (on x's device).

    Introduced in notebooks/04_ncsn.ipynb.
    """
    if not callable(score_net):
        raise TypeError(f"score_net={score_net!r} must be callable: score_net(x, sigma) -> tensor shaped like x.")
    x = validate.batch("x", x)
    sigmas = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device)
    if sigmas.dim() != 1 or len(sigmas) < 1 or not torch.isfinite(sigmas).all() or (sigmas <= 0).any():
        raise ValueError(f"sigmas={validate.show(sigmas)} is invalid: expected a 1D tensor of positive noise levels.")
    lam = _weight_fn(weighting)
    n = len(x)
    view = (n,) + (1,) * (x.dim() - 1)
    if per_level:
        out = []
        for sig in sigmas:
            sig_n = sig.expand(n)
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            s = _check_out(score_net(x + sig * z, sig_n), x)
            out.append(_ncsn_per_point(s, z, sig.expand(view)).mean())
        return torch.stack(out)
    idx = torch.randint(len(sigmas), (n,), generator=generator, device=x.device)
    sig = sigmas[idx]
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_tilde = x + sig.view(view) * z
    s = _check_out(score_net(x_tilde, sig), x)
    return (lam(sig) * _ncsn_per_point(s, z, sig.view(view))).mean()              # eq. (5)


def _ncsn_per_point(s, z, sig):
    """(1/2) ||s + z / sigma||^2 per point: eq. (4) with x~ = x + sigma z, whose target -(x~ - x)/sigma^2 = -z/sigma."""
    return 0.5 * (s + z / sig).pow(2).reshape(len(s), -1).sum(1)


def sde_dsm(score_net, x0: torch.Tensor, sde, eps: float = 1e-5, generator: torch.Generator | None = None, *,
            check: bool = True) -> torch.Tensor:
    """Time-dependent denoising score matching, eq. (8), with lambda(t) = std_t^2 and t ~ U(eps, 1):

        E_t E_x0 E_z || std_t s_theta(x_t, t) + z ||^2,   x_t = alpha_t x0 + std_t z,

    since grad log p_0t(x_t | x0) = -z / std_t. As in eq. (8) there is no 1/2 in front. Any data
    shape (batch first); ``score_net(x, t)`` gets t of shape (n,).

    ``check=False`` skips the argument checks (no host synchronisation): the fast path of the GPU
    training loop, ``sg.image_training.train_images``.

    Introduced in notebooks/06_sdes.ipynb, used for MNIST in 07_mnist_score_sde.ipynb.
    """
    if not check:
        return _sde_dsm(score_net, x0, sde, eps, generator)
    if not callable(score_net):
        raise TypeError(f"score_net={score_net!r} must be callable: score_net(x, t) -> tensor shaped like x.")
    x0 = validate.batch("x0", x0)
    eps = validate.positive("eps", eps)
    if eps >= 1:
        raise ValueError(f"eps={eps!r} is invalid: expected 0 < eps < 1 (e.g. 1e-5).")
    return _sde_dsm(score_net, x0, sde, eps, generator)


def _sde_dsm(score_net, x0, sde, eps, generator=None):
    """Eq. (8) without argument checks (no host synchronisation): the GPU training loop's version."""
    n = len(x0)
    t = eps + (1 - eps) * torch.rand(n, generator=generator, device=x0.device, dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    alpha, std = sde.marginal_coeffs(t, check=False)
    view = (-1,) + (1,) * (x0.dim() - 1)
    std = std.reshape(view)
    s = _check_out(score_net(alpha.reshape(view) * x0 + std * z, t), x0)
    return (std * s + z).pow(2).reshape(n, -1).sum(1).mean()
