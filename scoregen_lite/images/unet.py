"""The course's U-Net for 28 x 28 digits (notebooks 07-10), with the preconditioning of ``sg.recipes``.
Introduced in notebooks/07_mnist_score_sde.ipynb."""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import validate
from ..core.nets import GaussianFourierProjection
from ..core.recipes import PRECONDITIONINGS, precondition

__all__ = ["ScoreUNet"]


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
        self.precond, self.sigma_data = precond, validate.positive("sigma_data", sigma_data)
        if len(channels) != 4 or any((not isinstance(c, int)) or c < 4 for c in channels):
            raise ValueError(f"channels={channels!r} is invalid: expected four ints >= 4, e.g. (32, 64, 128, 256).")
        embed_dim = validate.count("embed_dim", embed_dim, minimum=2)
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
            # divide by std_t (unchecked: no sync)
            return h / self.sde.marginal_coeffs(t, check=False)[1].to(h.dtype)[:, None, None, None]
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
