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

from . import _checks
from .recipes import PRECONDITIONINGS, precondition

__all__ = ["LinearScore", "MLPScore", "GaussianFourierProjection", "ConditionalMLPScore", "TimeMLPScore",
           "LabelTimeMLPScore", "ScoreUNet", "count_parameters"]


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (trained weights; fixed buffers such as Fourier frequencies excluded)."""
    return sum(p.numel() for p in net.parameters())


def _mlp_sizes(name_hidden, hidden, n_layers):
    hidden = _checks.count(name_hidden, hidden)
    n_layers = _checks.count("n_layers", n_layers)
    return hidden, n_layers


class LinearScore(nn.Module):
    """s_theta(x) = -A (x - b): the score family of Gaussians N(b, A^{-1}) when A is symmetric
    positive-definite. With it, score-matching losses can be compared to closed forms.

    Introduced in notebooks/02_score_matching.ipynb.
    """

    def __init__(self, dim: int = 2, A: torch.Tensor | None = None, b: torch.Tensor | None = None):
        super().__init__()
        self.dim = _checks.count("dim", dim)
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
        self.dim = _checks.count("dim", dim)
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
        embed_dim = _checks.count("embed_dim", embed_dim, minimum=2)
        if embed_dim % 2:
            raise ValueError(f"embed_dim={embed_dim} must be even (half sines, half cosines).")
        scale = _checks.positive("scale", scale)
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
        self.dim = _checks.count("dim", dim)
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
        self.n_classes = _checks.count("n_classes", n_classes)
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
            raise ValueError(f"y={_checks.show(given)} is invalid: expected labels 0..{self.n_classes - 1}, or the null "
                             f"label {self.null_label}, one per row of x ({x.shape[0]}).")
        return self._forward(x, t, self.label_embed(y))


def _groups(channels: int, first: bool) -> int:
    return math.gcd(4 if first else 32, channels)


class ScoreUNet(nn.Module):
    """Time-conditional U-Net score model s_theta(x, t) for 1 x 28 x 28 images (notebook 07).

    The architecture of Song's score-SDE PyTorch tutorial (about 1.1M parameters with the default
    channels): Gaussian random Fourier features of t (fixed omega ~ N(0, scale^2)) and a linear
    layer give a time embedding that is added at every level of the encoder (3x3 convolutions,
    stride 2) and decoder (transposed convolutions with skip connections from the encoder), each
    followed by GroupNorm and SiLU. With ``precond="none"`` (the tutorial's) the output is divided by
    the SDE's std_t so that its norm matches the true score's (Song & Ermon 2020, "Improved techniques
    for training score-based generative models", technique 3, with std_t for sigma; that technique
    divides an unconditional network, this one is also conditioned on t). With ``precond="edm"`` (the
    shipped ``mnist_ve`` and ``mnist_cond`` and ``train-mnist --cpu``) the same layers are EDM's raw
    network F and the score comes from the preconditioned denoiser (Karras et al. 2022, table 1).

    Args:
        sde: gives ``marginal_std(t)``.
        channels: widths of the four levels.
        embed_dim: size of the time embedding.
        scale: frequency scale of the Fourier features.
        n_classes: 0 for an unconditional network; else a label embedding with ``n_classes + 1``
            entries, the last being the null label, added to the time embedding, so one network gives
            conditional and unconditional scores (trained with label dropout; Ho & Salimans 2022,
            classifier-free guidance, section 3.2).
        precond: ``"none"`` (the layers above see x(t) and t, the output is divided by std_t) or
            ``"edm"`` (EDM's preconditioning, ``sg.recipes.precondition``: the layers see c_in x(t) / alpha_t
            and c_noise = ln(sigma) / 4, and the score comes from the denoiser; notebook 10).
        sigma_data: the data's std assumed by ``"edm"``.
    """

    def __init__(self, sde, channels=(32, 64, 128, 256), embed_dim: int = 256, scale: float = 30.0,
                 n_classes: int = 0, precond: str = "none", sigma_data: float = 0.5):
        super().__init__()
        if precond not in PRECONDITIONINGS:
            raise ValueError(f"precond={precond!r} is invalid: expected one of {PRECONDITIONINGS}.")
        self.precond, self.sigma_data = precond, _checks.positive("sigma_data", sigma_data)
        if len(channels) != 4 or any((not isinstance(c, int)) or c < 4 for c in channels):
            raise ValueError(f"channels={channels!r} is invalid: expected four ints >= 4, e.g. (32, 64, 128, 256).")
        embed_dim = _checks.count("embed_dim", embed_dim, minimum=2)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes={n_classes!r} is invalid: expected 0 (unconditional) or the number of "
                             f"classes, e.g. 10 for MNIST digits.")
        self.sde = sde
        self.channels = tuple(channels)
        self.n_classes = n_classes
        c1, c2, c3, c4 = channels
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, scale), nn.Linear(embed_dim, embed_dim))
        # class-conditional: one learned vector per label plus the null label n_classes (classifier-free guidance)
        self.label_embed = nn.Embedding(n_classes + 1, embed_dim) if n_classes else None
        self.conv1 = nn.Conv2d(1, c1, 3, stride=1, bias=False)          # 28 -> 26
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, bias=False)         # 26 -> 12
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=2, bias=False)         # 12 -> 5
        self.conv4 = nn.Conv2d(c3, c4, 3, stride=2, bias=False)         # 5 -> 2
        self.tconv4 = nn.ConvTranspose2d(c4, c3, 3, stride=2, bias=False)                        # 2 -> 5
        self.tconv3 = nn.ConvTranspose2d(2 * c3, c2, 3, stride=2, bias=False, output_padding=1)  # 5 -> 12
        self.tconv2 = nn.ConvTranspose2d(2 * c2, c1, 3, stride=2, bias=False, output_padding=1)  # 12 -> 26
        self.tconv1 = nn.ConvTranspose2d(2 * c1, 1, 3, stride=1)                                 # 26 -> 28
        widths = [c1, c2, c3, c4, c3, c2, c1]
        self.dense = nn.ModuleList([nn.Linear(embed_dim, w) for w in widths])          # time injection per level
        self.norms = nn.ModuleList([nn.GroupNorm(_groups(w, i == 0), w) for i, w in enumerate(widths)])
        self.act = nn.SiLU()

    def _block(self, h, i, emb):
        return self.act(self.norms[i](h + self.dense[i](emb)[:, :, None, None]))

    @property
    def null_label(self) -> int:
        """The label that means "no label" (unconditional score) in a class-conditional network."""
        return self.n_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """s_theta(x, t) (unconditional network), or s_theta(x, t, y) with labels y (n,) or one int for the
        whole batch; y = None or ``null_label`` gives the conditional network's unconditional score."""
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"x has shape {tuple(x.shape)}; ScoreUNet expects (n, 1, 28, 28).")
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if self.label_embed is not None:
            y = self.null_label if y is None else y
            y = torch.as_tensor(y, device=x.device, dtype=torch.long)
            if y.dim() == 0:
                y = y.expand(x.shape[0])
        elif y is not None:
            raise ValueError("this ScoreUNet is unconditional (n_classes=0); call it as net(x, t), or use a "
                             "class-conditional checkpoint (train-mnist --conditional).")
        if self.precond == "none":
            h = self._body(x, t, y)
            return h / self.sde.marginal_coeffs(t, check=False)[1].to(h.dtype)[:, None, None, None]   # divide by std_t (unchecked: no sync)
        alpha, std = self.sde.marginal_coeffs(t, check=False)
        return precondition(self.precond, lambda x_in, c_noise: self._body(x_in, c_noise, y), x, alpha.to(x.dtype),
                            std.to(x.dtype), t, self.sigma_data)

    def _body(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The raw network F(x_in, c_noise): the U-Net of the class docstring, before any output scaling."""
        emb = self.embed(c_noise)
        if self.label_embed is not None:
            emb = emb + self.label_embed(y)
        emb = self.act(emb)
        h1 = self._block(self.conv1(x), 0, emb)
        h2 = self._block(self.conv2(h1), 1, emb)
        h3 = self._block(self.conv3(h2), 2, emb)
        h4 = self._block(self.conv4(h3), 3, emb)
        h = self._block(self.tconv4(h4), 4, emb)
        h = self._block(self.tconv3(torch.cat([h, h3], dim=1)), 5, emb)
        h = self._block(self.tconv2(torch.cat([h, h2], dim=1)), 6, emb)
        return self.tconv1(torch.cat([h, h1], dim=1))
