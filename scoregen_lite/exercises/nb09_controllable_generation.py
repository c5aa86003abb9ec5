"""Exercise checks of notebook 09, ``notebooks/09_controllable_generation.ipynb``: the classifier-free guided
score, the label-dropout loss of a classifier-free model, and the replacement step of inpainting."""
from __future__ import annotations

import torch

from .checking import ExerciseFailed, compare, compare_loss, passed, points, points_of

__all__: list[str] = ["check_guided_score", "check_label_dropout_loss", "check_replacement_step"]


@points(1)
def check_guided_score(fn) -> None:
    """Check ``fn(s_cond, s_uncond, scale)``: classifier-free guidance, s_u + scale (s_c - s_u)
    (notebook 09). Scale 0 must give s_u and scale 1 s_c.

    Recognised mistakes: Ho & Salimans' w used as the scale ((1 + scale) s_c - scale s_u, which starts
    from the conditional score), the difference the wrong way round, the unconditional score left out
    (scale s_c), and the direction alone (scale (s_c - s_u))."""
    gen = torch.Generator().manual_seed(9)
    s_c, s_u = (torch.randn(16, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    for scale in (2.5, 0.0, 1.0):        # 2.5 first: there every catalogued mistake differs from the others
        want = s_u + scale * (s_c - s_u)
        mistakes = [(s_c + scale * (s_c - s_u), "that is Ho & Salimans' (1 + w) s_c - w s_u with w = scale, i.e. it "
                                                "starts from the conditional score; here scale = w + 1 and the guidance "
                                                "starts from the unconditional one: s_u + scale (s_c - s_u)"),
                    (s_u + scale * (s_u - s_c), "the difference points the wrong way: guidance moves towards the "
                                                "conditional score, s_c - s_u"),
                    (scale * s_c, "the unconditional score is missing: s_u + scale (s_c - s_u)"),
                    (scale * (s_c - s_u), "that is only the guidance direction (the implied classifier's gradient); "
                                          "add it to the unconditional score")]
        compare("guided_score", fn(s_c, s_u, scale), want, 1e-9, f"scale={scale}", mistakes=mistakes,
                 where=lambda i: f"row {i}")
    passed("guided_score", "scales 0, 1 and 2.5")


class _TinyLabelNet(torch.nn.Module):
    """A small fixed class-conditional network s(x, t, y) for ``check_label_dropout_loss`` (float64), with the
    null label ``n_classes`` as a class-conditional ScoreUNet has it."""

    n_classes = 3
    null_label = 3

    def __init__(self, dim: int):
        super().__init__()
        gen = torch.Generator().manual_seed(16)
        self.w = torch.nn.Parameter(torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim)
        self.e = torch.nn.Parameter(torch.randn(self.n_classes + 1, dim, generator=gen, dtype=torch.float64))

    def forward(self, x, t, y=None):
        y = torch.full((len(x),), self.null_label) if y is None else torch.as_tensor(y).expand(len(x))
        if ((y < 0) | (y > self.n_classes)).any():
            raise ExerciseFailed(f"label_dropout_loss: the network was called with labels {sorted(set(y.tolist()))}; "
                                 f"its labels are 0..{self.n_classes - 1} and the null label net.null_label = "
                                 f"{self.null_label}.")
        return torch.tanh(x @ self.w + self.e[y.long()]) / (0.1 + t[:, None])


@points(2)
def check_label_dropout_loss(fn) -> None:
    """Check ``fn(net, sde, x0, y, t, z, drop) -> loss``: eq. (8) for a class-conditional network trained for
    classifier-free guidance (notebook 09; Ho & Salimans 2022): the labels ``y`` (n,) with the rows where ``drop``
    (n,) is True replaced by the null label ``net.null_label``, x_t = alpha_t x0 + sigma_t z, and the batch mean
    of || sigma_t net(x_t, t, y') + z ||^2 over all rows (summed over coordinates), a 0-d tensor that keeps its
    gradient. The dropped rows teach the network the unconditional score: they stay in the batch.

    Recognised mistakes: no label dropped, ``drop`` read the wrong way round, label 0 (a real class) used as the
    null label, the dropped rows removed from the batch, and eq. (8) without its weighting sigma_t^2."""
    from ..core.sde import VESDE, VPSDE

    gen = torch.Generator().manual_seed(17)
    n = 40
    x0 = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    y = torch.randint(0, 3, (n,), generator=gen)
    y[:3] = 0                                            # some label-0 rows are dropped, others kept
    drop = torch.rand(n, generator=gen) < 0.3
    drop[:2], drop[2] = True, False
    net = _TinyLabelNet(3)
    for sde in (VPSDE(), VESDE(0.01, 10.0)):
        with torch.no_grad():
            alpha, std = (v[:, None] for v in sde.marginal_coeffs(t))
            xt = alpha * x0 + std * z
            per = lambda labels, rows=slice(None): (std[rows] * net(xt[rows], t[rows], labels[rows]) + z[rows]).pow(2).sum(1).mean()  # noqa: E731,E501
            null = torch.full_like(y, net.null_label)
            want = per(torch.where(drop, null, y))
            mistakes = [(per(y), "no label was dropped: the rows where drop is True must use the null label "
                                 "net.null_label, or the network never learns the unconditional score that guidance needs"),
                        (per(torch.where(drop, y, null)), "drop is read the wrong way round: True means this row's label "
                                                          "is replaced by the null label"),
                        (per(torch.where(drop, torch.zeros_like(y), y)), "label 0 is a real class (the digit 0 on "
                                                                         "MNIST): the null label is net.null_label"),
                        (per(y, ~drop), "the dropped rows were removed: they stay in the batch with the null label, "
                                        "which is how the unconditional score is trained"),
                        ((net(xt, t, torch.where(drop, null, y)) + z / std).pow(2).sum(1).mean(),
                         "that is eq. (8) with lambda = 1: weight each term by sigma_t^2, || sigma_t s + z ||^2")]
        got = fn(net, sde, x0, y.clone(), t, z, drop.clone())
        compare_loss("label_dropout_loss", got, want,
                     f"eq. (8) with label dropout for the {sde.name} SDE on a batch of {n}", mistakes=mistakes)
    passed("label_dropout_loss", "eq. (8) with the dropped labels replaced by the null label, VP and VE SDEs")


@points(2)
def check_replacement_step(fn) -> None:
    """Check ``fn(x, known, mask, alpha_t, std_t, z)``: the replacement step of inpainting (notebook 09):
    where ``mask`` is 1 the state becomes the known values noised to time t, alpha_t known + std_t z;
    elsewhere it stays x.

    Recognised mistakes: the known values put in without noise, the noise without the scale alpha_t,
    the mask the wrong way round, and the variance std_t^2 used as the std."""
    gen = torch.Generator().manual_seed(10)
    x, known, z = (torch.randn(8, 1, 4, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(1, 4, 4, generator=gen) < 0.5).double()
    for alpha, std in ((0.6, 0.8), (1.0, 2.5)):
        noisy = alpha * known + std * z
        want = mask * noisy + (1 - mask) * x
        mistakes = [(mask * known + (1 - mask) * x, "the known entries must look like a sample at time t: noise them, "
                                                    "alpha_t known + std_t z, until the last step"),
                    (mask * (known + std * z) + (1 - mask) * x, "the known values are not scaled by alpha_t: at time t "
                                                                "the kernel's mean is alpha_t x(0)"),
                    ((1 - mask) * noisy + mask * x, "the mask is the wrong way round: 1 marks a known entry"),
                    (mask * (alpha * known + std**2 * z) + (1 - mask) * x, "std_t^2 is the variance; the noise is "
                                                                           "std_t z")]
        compare("replacement_step", fn(x, known, mask, alpha, std, z), want, 1e-9,
                 f"alpha_t={alpha}, std_t={std}", mistakes=mistakes,
                 where=lambda i: f"sample {i}")
    passed("replacement_step", "two times, a random mask")


#: nbgrader points of this notebook's checks, each declared beside it with ``@points`` (merged into
#: ``sg.exercises.POINTS``)
POINTS: dict[str, int] = points_of(__name__)
