"""Score networks: small MLPs for low-dimensional data, and their noise- or
time-conditional variants.

Every network maps x of shape (n, D) (plus, for the conditional ones, a noise
level sigma or a time t) to a score estimate of the same shape. Introduced in
notebooks/02_score_matching.ipynb (``MLPScore``); the conditional variant is
used from notebooks/04_ncsn.ipynb on.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .. import validate

__all__ = ["LinearScore", "MLPScore", "GaussianFourierProjection", "ConditionalMLPScore", "TimeMLPScore",
           "LabelTimeMLPScore", "count_parameters"]


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (trained weights; fixed buffers such as Fourier frequencies excluded)."""
    return sum(p.numel() for p in net.parameters())


def _mlp_sizes(name_hidden, hidden, n_layers):
    hidden = validate.count(name_hidden, hidden)
    n_layers = validate.count("n_layers", n_layers)
    return hidden, n_layers


class LinearScore(nn.Module):
    """s_theta(x) = -A (x - b): the score family of Gaussians N(b, A^{-1}) when A is symmetric
    positive-definite. With it, score-matching losses can be compared to closed forms.

    Introduced in notebooks/02_score_matching.ipynb.
    """

    def __init__(self, dim: int = 2, A: torch.Tensor | None = None, b: torch.Tensor | None = None):
        super().__init__()
        self.dim = validate.count("dim", dim)
        self.A = nn.Parameter(torch.eye(self.dim) if A is None else torch.as_tensor(A).clone().float())
        self.b = nn.Parameter(torch.zeros(self.dim) if b is None else torch.as_tensor(b).clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x - self.b.to(x.dtype)) @ self.A.to(x.dtype).T


class MLPScore(nn.Module):
    """s_theta(x): an MLP R^D -> R^D with SiLU activations (smooth, so the Jacobian trace of
    eq. (2) is well defined).

    Args:
        dim: data dimension D.
        hidden: width of each hidden layer.
        n_layers: number of hidden layers.

    Introduced in notebooks/02_score_matching.ipynb.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, n_layers: int = 3):
        super().__init__()
        self.dim = validate.count("dim", dim)
        hidden, n_layers = _mlp_sizes("hidden", hidden, n_layers)
        layers, width = [], self.dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, self.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; this network expects (n, {self.dim}).")
        return self.net(x)


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of a scalar: [sin(2 pi omega c), cos(2 pi omega c)] with
    omega ~ N(0, scale^2 I) drawn once and kept fixed (a buffer, not a parameter).

    How Song et al. (2021, "Score-based generative modeling through stochastic differential
    equations", appendix H) embed the continuous time t (random Fourier features, Tancik et al.
    2020); also used for log(sigma). Output shape (n, embed_dim).
    """

    def __init__(self, embed_dim: int = 64, scale: float = 16.0, seed: int = 0):
        super().__init__()
        embed_dim = validate.count("embed_dim", embed_dim, minimum=2)
        if embed_dim % 2:
            raise ValueError(f"embed_dim={embed_dim} must be even (half sines, half cosines).")
        scale = validate.positive("scale", scale)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("omega", torch.randn(embed_dim // 2, generator=gen) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * c[:, None] * self.omega[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class ConditionalMLPScore(nn.Module):
    """s_theta(x, c): an MLP conditioned on a scalar c (a noise level sigma or a time t).

    c is embedded with fixed Gaussian Fourier features (of log c when ``log_input``,
    natural for a geometric sigma ladder) and injected into every hidden layer
    (added after the linear map). With ``output_divisor`` the output is divided
    by ``output_divisor(c)``: by sigma for an NCSN (``||s|| ~ 1/sigma``: the rescaling of
    Song & Ermon 2020, "Improved techniques for training score-based generative models",
    technique 3, here on a sigma-conditioned network) or by the marginal std of an SDE.

    Args:
        dim: data dimension D.
        hidden, n_layers: MLP size.
        embed_dim, scale: Fourier embedding size and frequency scale.
        log_input: embed log(c) instead of c (c must then be > 0).
        output_divisor: c (n,) -> (n,) positive tensor, or None.

    ``forward(x, c)`` takes c as a float, a 0-d tensor or a tensor of shape (n,).
    Introduced in notebooks/04_ncsn.ipynb.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, n_layers: int = 3, embed_dim: int = 32,
                 scale: float = 1.0, log_input: bool = True, output_divisor: Callable | None = None):
        super().__init__()
        self.dim = validate.count("dim", dim)
        hidden, n_layers = _mlp_sizes("hidden", hidden, n_layers)
        self.embed = GaussianFourierProjection(embed_dim, scale)
        self.log_input = log_input
        self.output_divisor = output_divisor
        self.inputs = nn.ModuleList([nn.Linear(self.dim, hidden)] + [nn.Linear(hidden, hidden) for _ in range(n_layers - 1)])
        self.conds = nn.ModuleList([nn.Linear(embed_dim, hidden) for _ in range(n_layers)])
        self.out = nn.Linear(hidden, self.dim)
        self.act = nn.SiLU()

    def _cond(self, x, c):
        c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
        if c.dim() == 0:
            c = c.expand(x.shape[0])
        if c.shape != (x.shape[0],):
            raise ValueError(f"c has shape {tuple(c.shape)}; expected a scalar or ({x.shape[0]},), one per row of x.")
        return c

    def forward(self, x: torch.Tensor, c) -> torch.Tensor:
        return self._forward(x, c, None)

    def _forward(self, x: torch.Tensor, c, extra: torch.Tensor | None) -> torch.Tensor:
        """The network, with ``extra`` (n, embed_dim) added to the embedding of c (a label's, or None)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; this network expects (n, {self.dim}).")
        c = self._cond(x, c)
        emb = self.embed(torch.log(c) if self.log_input else c)
        if extra is not None:
            emb = emb + extra
        h = x
        for lin, cond in zip(self.inputs, self.conds):
            h = self.act(lin(h) + cond(emb))
        out = self.out(h)
        if self.output_divisor is not None:
            out = out / self.output_divisor(c)[:, None]
        return out


class TimeMLPScore(ConditionalMLPScore):
    """s_theta(x, t) for an SDE: a ``ConditionalMLPScore`` on the time t in [0, 1] (Fourier
    features of t with frequency scale ``scale``) whose output is divided by the SDE's
    marginal std_t, so that its norm matches the true score's (Song & Ermon 2020's technique 3
    with std_t for sigma, on a t-conditioned network).

    Introduced in notebooks/06_sdes.ipynb.
    """

    def __init__(self, sde, dim: int = 2, hidden: int = 128, n_layers: int = 3, embed_dim: int = 32,
                 scale: float = 4.0):
        super().__init__(dim, hidden=hidden, n_layers=n_layers, embed_dim=embed_dim, scale=scale, log_input=False,
                         output_divisor=sde.marginal_std)
        self.sde = sde


class LabelTimeMLPScore(TimeMLPScore):
    """s_theta(x, t, y): a ``TimeMLPScore`` that also sees a class label y in 0..n_classes - 1, or the null
    label ``n_classes`` ("no label"), as a learned vector added to the time embedding. Called like a
    class-conditional ``ScoreUNet``: ``net(x, t)`` (y = None) or ``net(x, t, null_label)`` is the unconditional
    score, ``net(x, t, y)`` the conditional one, so ``sg.guidance.classifier_free_net`` works on it. Trained with
    label dropout (classifier-free guidance, Ho & Salimans 2022) in notebooks/09_controllable_generation.ipynb."""

    def __init__(self, sde, n_classes: int, dim: int = 2, hidden: int = 128, n_layers: int = 3, embed_dim: int = 32,
                 scale: float = 4.0):
        super().__init__(sde, dim, hidden=hidden, n_layers=n_layers, embed_dim=embed_dim, scale=scale)
        self.n_classes = validate.count("n_classes", n_classes)
        self.label_embed = nn.Embedding(self.n_classes + 1, embed_dim)

    @property
    def null_label(self) -> int:
        """The label that means "no label": the unconditional score."""
        return self.n_classes

    def forward(self, x: torch.Tensor, t, y=None) -> torch.Tensor:
        given = self.null_label if y is None else y
        y = torch.as_tensor(given, device=x.device, dtype=torch.long)
        if y.dim() == 0:
            y = y.expand(x.shape[0])
        if y.shape != (x.shape[0],) or ((y < 0) | (y > self.n_classes)).any():
            raise ValueError(f"y={validate.show(given)} is invalid: expected labels 0..{self.n_classes - 1}, or the null "
                             f"label {self.null_label}, one per row of x ({x.shape[0]}).")
        return self._forward(x, t, self.label_embed(y))


