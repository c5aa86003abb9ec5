"""Evaluating generated digits against held-out ones (notebooks 07-10): the course's MNIST classifier, the
Frechet distance in its feature space, accuracy and class histograms, and memorisation (nearest training
digits). Introduced in notebooks/07_mnist_score_sde.ipynb."""
from __future__ import annotations

import torch
from torch import nn

from .. import artifacts, validate
from ..core.train import train_loop

__all__ = ["MNISTClassifier", "mnist_classifier", "features_and_classes", "frechet_distance", "accuracy", "class_histogram",
           "histogram_ok", "evaluate_images", "nearest_neighbours", "memorisation_ratio", "memorised_fraction"]


class MNISTClassifier(nn.Module):
    """A small CNN for 1 x 28 x 28 digits in [0, 1]. ``features(x)`` gives the 128-dimensional
    penultimate activations that the Frechet distance compares."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def mnist_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 5, cache: bool = True,
                     device=None, seed: int = 0, progress: bool = False) -> MNISTClassifier:
    """Train (or load from the cache) the evaluation classifier on ``images`` (n, 1, 28, 28) in [0, 1].

    The cache file (``$SCOREGEN_CACHE`` or ``~/.cache/scoregen-lite``) is keyed by a hash of the
    training data, the epochs and the seed, so a different dataset never reuses it. Adam 1e-3,
    batch 128; each batch is shifted randomly by up to one pixel, for robustness.
    Trained by ``sg.train.train_loop`` (a NaN loss stops it with ``TrainingDiverged``). Returns the classifier in
    eval mode on ``device``.
    """
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    images = validate.batch("images", images)
    path = artifacts.cache_path("mnist_classifier", images, labels, f"{epochs}-{seed}-v2")
    with torch.random.fork_rng(devices=[]):  # seeded init; the caller's global RNG state is left alone
        torch.manual_seed(seed)
        net = MNISTClassifier()
    if cache and path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu"))
        return net.to(device).eval()
    gen = torch.Generator().manual_seed(seed)  # batches and shifts: a local generator
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_all, y_all = images.to(device), labels.to(device)
    n = len(x_all)

    def batches():                             # 128 digits, shifted together by up to one pixel
        idx = torch.randint(n, (128,), generator=gen).to(device)
        shift = [int(v) for v in torch.randint(-1, 2, (2,), generator=gen)]
        return torch.roll(x_all[idx], shifts=shift, dims=(2, 3)), y_all[idx]

    train_loop(net, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), batches, epochs * ((n + 127) // 128),
               opt, sync_every=50, progress=progress, desc="classifier")
    if cache:
        artifacts.save_to_cache(net, path)
    return net


@torch.no_grad()
def features_and_classes(classifier, x, batch_size=1000):
    """(features (n, 128), predicted classes (n,)) of images ``x`` under the evaluation ``classifier``, in
    batches of ``batch_size``: the feature space of ``frechet_distance`` (notebooks 07-10, the benchmarks)."""
    feats, classes = [], []
    dev = next(classifier.parameters()).device
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev).float().clamp(0, 1)
        f = classifier.features(xb)
        feats.append(f.double().cpu())
        classes.append(classifier.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(classes)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, d):
    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}), computed in float64 with
    symmetric eigendecompositions (no scipy). 0 for identical sets."""
    a, b = feats_a.double(), feats_b.double()
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets have shapes {tuple(a.shape)} and {tuple(b.shape)}; expected (n, d) and (m, d).")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    evals, evecs = torch.linalg.eigh(cov_a)
    sqrt_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    middle = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt).item()


@torch.no_grad()
def accuracy(classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` the classifier labels as ``labels`` (use held-out digits)."""
    _, preds = features_and_classes(classifier, images)
    return (preds == labels.cpu()).double().mean().item()


def class_histogram(classes: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Fraction of samples per predicted class, shape (n_classes,)."""
    return torch.bincount(classes.flatten(), minlength=n_classes).double() / classes.numel()


def histogram_ok(hist: torch.Tensor, reference: torch.Tensor, rel: float = 0.10, abs_points: float = 0.02) -> bool:
    """Every class fraction within rel * reference + abs_points of the reference (10% +- 2 points)."""
    return bool(((hist - reference).abs() <= rel * reference + abs_points).all())


def evaluate_images(samples: torch.Tensor, real: torch.Tensor, classifier) -> dict:
    """Frechet distance (classifier features), class histograms and their check, for samples vs real images.

    Samples are clamped to [0, 1] first. Returns {"frechet", "histogram", "real_histogram",
    "histogram_ok", "max_histogram_gap", "n_samples"}.
    """
    fs, cs = features_and_classes(classifier, samples)
    fr, cr = features_and_classes(classifier, real)
    hist, ref = class_histogram(cs), class_histogram(cr)
    return {"frechet": frechet_distance(fs, fr), "histogram": hist.tolist(), "real_histogram": ref.tolist(),
            "histogram_ok": histogram_ok(hist, ref), "max_histogram_gap": (hist - ref).abs().max().item(),
            "n_samples": len(samples)}


def nearest_neighbours(samples: torch.Tensor, reference: torch.Tensor, k: int = 2, batch_size: int = 512) -> torch.Tensor:
    """The Euclidean distances (n, k) from each sample to its k nearest points of ``reference``, ascending
    (pixels flattened; computed in float64 in batches)."""
    samples = validate.batch("samples", samples).reshape(len(samples), -1).double()
    reference = validate.batch("reference", reference).reshape(len(reference), -1).double()
    if samples.shape[1] != reference.shape[1]:
        raise ValueError(f"samples have {samples.shape[1]} values each and reference {reference.shape[1]}; "
                         f"expected the same shape.")
    k = validate.count("k", k)
    if k > len(reference):
        raise ValueError(f"k={k} is more than the {len(reference)} reference points.")
    out = []
    for i in range(0, len(samples), batch_size):
        d = torch.cdist(samples[i:i + batch_size], reference)
        out.append(d.topk(k, dim=1, largest=False).values)
    return torch.cat(out).float()


def memorisation_ratio(samples: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """Per sample, d1 / d2: the distance to its nearest training point over the distance to the second
    nearest (n,). Near 0: the sample sits on one training point, a copy; near 1: it is no closer to one
    than to another. The ratio test for memorisation of Yoon et al. (2023, "Diffusion probabilistic models
    generalize when they fail to memorize") and Gu et al. (2023, "On memorization in diffusion models"),
    who call a sample memorised when d1 / d2 < 1/3; Carlini et al. (2023, "Extracting training data from
    diffusion models", section 5) use a relative nearest-neighbour distance the same way."""
    d = nearest_neighbours(samples, train, k=2)
    return d[:, 0] / d[:, 1].clamp_min(1e-12)


def memorised_fraction(samples: torch.Tensor, train: torch.Tensor, threshold: float = 1 / 3) -> float:
    """The fraction of samples whose ``memorisation_ratio`` is below ``threshold`` (1/3): copies of training
    points. Notebook 10 shows it near 1 for a model trained on 100 digits and near 0 for the shipped one."""
    return float((memorisation_ratio(samples, train) < threshold).float().mean())
