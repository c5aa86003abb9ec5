"""Part 7 (notebook 09): guided scores, inpainting, and the exact 2D answers they are checked against."""
import pytest
import torch

import scoregen_lite as sg
from scoregen_lite.core.densities import SDEMarginal

VE = sg.sde.VESDE(0.01, 10.0)
VP = sg.sde.VPSDE()


def test_guided_score_arithmetic():
    """scale 0 and 1 give the unconditional and conditional scores; other scales are the stated combination."""
    x, t = torch.randn(5, 2), torch.full((5,), 0.3)
    cond = lambda x, t: 2 * x + 1          # noqa: E731
    uncond = lambda x, t: -x               # noqa: E731
    grad = lambda x, t: x**2               # noqa: E731
    cf = sg.guidance.classifier_free
    assert torch.equal(cf(cond, uncond, 0.0)(x, t), uncond(x, t))
    assert torch.equal(cf(cond, uncond, 1.0)(x, t), cond(x, t))
    assert torch.allclose(cf(cond, uncond, 3.0)(x, t), -x + 3 * (3 * x + 1))   # s_u + 3 (s_c - s_u)
    cg = sg.guidance.classifier_guided
    assert torch.equal(cg(uncond, grad, 0.0)(x, t), uncond(x, t))
    assert torch.allclose(cg(uncond, grad, 2.5)(x, t), -x + 2.5 * x**2)
    with pytest.raises(ValueError, match="scale=-1.0"):
        cf(cond, uncond, -1.0)
    with pytest.raises(TypeError, match="classifier_grad_fn"):
        cg(uncond, None)


def test_mixture_classifier_is_bayes():
    """p_t(y | x) sums to 1, groups responsibilities, and its gradient is the class score minus the mixture
    score, which equals autograd of log p_t(y | x)."""
    p = sg.densities.ring(dtype=torch.float64)
    clf = sg.guidance.MixtureClassifier(p, VP, classes=[[0, 1], [2, 3, 4], [5, 6, 7]])
    x = p.sample(50, generator=torch.Generator().manual_seed(0))
    probs = clf.probs(x, 0.2)
    assert probs.shape == (50, 3) and torch.allclose(probs.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(clf.class_prior(), torch.tensor([2, 3, 3], dtype=torch.float64) / 8)
    xg = x.clone().requires_grad_(True)
    logp = torch.log(clf.probs(xg, 0.2)[:, 1]).sum()
    (auto,) = torch.autograd.grad(logp, xg)
    assert torch.allclose(clf.grad_log_prob(x, torch.full((50,), 0.2, dtype=torch.float64), 1), auto, atol=1e-8)
    with pytest.raises(ValueError, match="must split the 8 components"):
        sg.guidance.MixtureClassifier(p, VP, classes=[[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="y=3 is invalid"):
        clf.grad_fn(3)


@pytest.mark.parametrize("sde", [VE, VP], ids=["VE", "VP"])
def test_exact_classifier_guidance_at_scale_one_samples_the_class(sde):
    """Unconditional exact score + exact grad log p_t(y | x) = the class's score: samples of the class,
    at the energy-distance noise floor (mean 0.0000, std 0.0009 for 4000 vs 4000) and with its moments
    (measured: 0.0000 and max |z| 1.9). Euler-Maruyama, because this class's mean sits 3.7 from the origin,
    which the VE prior N(0, 10^2 I) ignores: the reverse SDE forgets that error, a deterministic ODE
    sampler carries it to the end (notebook 09 shows it)."""
    p = sg.densities.ring()
    clf = sg.guidance.MixtureClassifier(p, sde, classes=[[0, 1], [2, 3, 4, 5, 6, 7]])
    score = sg.guidance.classifier_guided(SDEMarginal(p, sde).score, clf.grad_fn(0), scale=1.0)
    g = torch.Generator().manual_seed(0)
    x = sg.samplers.euler_maruyama(sde, score, (4000, 2), 500, generator=g)
    target = clf.class_mixture(0)
    assert sg.metrics.energy_distance(x, target.sample(4000, generator=g)) < 0.004
    assert sg.metrics.moment_z(x, target)["max"] < 4
    assert (p.mode_weights(x)[2:]).sum() < 0.01      # nothing from the other class
    # scale 0 ignores the label: the whole ring
    x0 = sg.samplers.euler_maruyama(sde, sg.guidance.classifier_guided(SDEMarginal(p, sde).score, clf.grad_fn(0), 0.0),
                                    (4000, 2), 500, generator=g)
    assert (p.mode_weights(x0) - p.weights).abs().max() < 0.03


def test_exact_conditional_of_a_mixture():
    """Closed form against Monte Carlo: samples of the joint near x_1 = 1.5 have the conditional's moments."""
    g = sg.densities.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    c = sg.guidance.conditional(g, [0], [1.5])
    assert c.means[0, 0].item() == pytest.approx(1.35, abs=1e-6) and c.covs[0, 0, 0].item() == pytest.approx(0.19)
    mix = sg.densities.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 1.0], [2.0, -1.0]]),
                                       torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]]))
    cm = sg.guidance.conditional(mix, [1], [0.0])
    x = mix.sample(400_000, generator=torch.Generator().manual_seed(0))
    near = x[(x[:, 1]).abs() < 0.02, 0]
    mean, var = cm.moments()
    assert abs(near.mean().item() - mean.item()) < 4 * near.std().item() / len(near) ** 0.5
    assert near.var().item() == pytest.approx(var.item(), rel=0.05)
    with pytest.raises(ValueError, match="known_dims"):
        sg.guidance.conditional(mix, [0, 1], [0.0, 0.0])


@pytest.mark.parametrize("dim,known", [(3, [0, 2]), (3, [2, 0]), (5, [4, 1, 3]), (5, [1, 3, 4]), (5, [3, 0])])
def test_conditional_in_higher_dimensions_any_order(dim, known):
    """Several known coordinates, given in any order: the closed-form Gaussian conditional
    mu_u + S_uk S_kk^-1 (v - mu_k), S_uu - S_uk S_kk^-1 S_ku, computed here by hand with numpy-style indexing."""
    gen = torch.Generator().manual_seed(dim)
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(dim, dtype=torch.float64)
    mu = torch.randn(dim, generator=gen, dtype=torch.float64)
    value = torch.linspace(-2.0, 1.0, len(known), dtype=torch.float64)   # value[i] belongs to known[i]
    c = sg.guidance.conditional(sg.densities.Gaussian(mu, cov), known, value)
    unknown = [i for i in range(dim) if i not in known]
    k, u = torch.tensor(known), torch.tensor(unknown)
    s_kk, s_uk = cov[k][:, k], cov[u][:, k]
    mean = mu[u] + s_uk @ torch.linalg.solve(s_kk, value - mu[k])
    var = cov[u][:, u] - s_uk @ torch.linalg.solve(s_kk, s_uk.T)
    torch.testing.assert_close(c.means[0].double(), mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c.covs[0].double(), var, rtol=1e-5, atol=1e-5)


def test_conditional_mixture_weights_follow_the_evidence_in_any_order():
    """Two separated 3D components; x0 = 3, x2 = -3 is the second's evidence whichever order it is given in."""
    mix = sg.densities.GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-3.0, 0.0, 3.0], [3.0, 0.0, -3.0]]),
                                       torch.ones(2, 3))
    for known, value in (([0, 2], [3.0, -3.0]), ([2, 0], [-3.0, 3.0])):
        w = sg.guidance.conditional(mix, known, value).weights
        assert w[1].item() > 0.999, (known, w)


def test_inpainting_keeps_known_entries_bit_exactly():
    torch.manual_seed(0)
    known = torch.rand(3, 1, 28, 28)
    mask = sg.guidance.make_mask("top")
    score = lambda x, t: -x / (1 + VE.marginal_coeffs(t, check=False)[1][:, None, None, None] ** 2)  # noqa: E731
    for resample in (1, 3):
        x, nfe = sg.guidance.inpaint(VE, score, known, mask, 5, resample=resample,
                                     generator=torch.Generator().manual_seed(1))
        assert torch.equal(x[:, :, :14], known[:, :, :14]) and not torch.equal(x[:, :, 14:], known[:, :, 14:])
        assert nfe == {1: 5, 3: 13}[resample] * 2        # RePaint redoes every step but the first and the last
    assert {k: float(sg.guidance.make_mask(k).mean()) for k in ("top", "left", "centre")} == \
        {"top": 0.5, "left": 0.5, "centre": 0.75}
    with pytest.raises(ValueError, match="mask has shape"):
        sg.guidance.inpaint(VE, score, known, torch.ones(28, 28), 5)
    with pytest.raises(ValueError, match="only 0 and 1"):
        sg.guidance.inpaint(VE, score, known, mask * 0.5, 5)
    with pytest.raises(ValueError, match="kind='middle'"):
        sg.guidance.make_mask("middle")


def test_inpainting_against_the_exact_conditional():
    """A correlated Gaussian (rho = 0.9), x_1 = 1.5 known: the exact conditional of x_2 is N(1.35, 0.19).
    Replacement is biased towards the prior (measured mean 0.95 with 100 steps and still 0.93-0.95 with
    1,000, so it is not discretisation); RePaint with 10 resamplings: mean 1.31, variance 0.19 (VE SDE;
    the VP SDE is test_repaint_with_vp_against_the_exact_conditional)."""
    g = sg.densities.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    known = torch.tensor([1.5, 0.0]).repeat(3000, 1)
    mask = torch.tensor([1.0, 0.0])
    score = SDEMarginal(g, VE).score
    rep, nfe = sg.guidance.inpaint(VE, score, known, mask, 100, sampler="em", generator=torch.Generator().manual_seed(0))
    rp, nfe_rp = sg.guidance.repaint(VE, score, known, mask, 100, resample=10, sampler="em",
                                     generator=torch.Generator().manual_seed(0))
    assert (nfe, nfe_rp) == (100, 991)          # every step 10 times but the first and the last
    bias_rep, bias_rp = abs(rep[:, 1].mean().item() - 1.35), abs(rp[:, 1].mean().item() - 1.35)
    assert bias_rep > 0.3 and bias_rp < 0.05 and bias_rp < bias_rep / 5      # SE of the mean: 0.008
    assert rp[:, 1].var().item() == pytest.approx(0.19, rel=0.1) and rep[:, 1].var().item() > 0.25


@pytest.mark.parametrize("sde", [VE, VP], ids=["VE", "VP"])
def test_replacement_noises_the_known_part_with_the_forward_kernel(sde):
    """Every score call sees the known entry as a fresh draw of the forward kernel at that time,
    N(alpha_t known, std_t^2): not the clean value (the classic mistake), not unscaled by alpha_t."""
    g = sg.densities.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    exact = SDEMarginal(g, sde).score
    seen = []

    def score(x, t):
        seen.append((float(t[0]), x[:, 0].clone()))
        return exact(x, t)

    known = torch.tensor([1.5, 0.0]).repeat(4000, 1)
    sg.guidance.inpaint(sde, score, known, torch.tensor([1.0, 0.0]), 20, sampler="em",
                        generator=torch.Generator().manual_seed(0))
    for t, x1 in seen[1:]:   # the first call sees the prior start, replaced at t = 1 too
        alpha, std = (float(v) for v in sde.marginal_coeffs(t))
        se = std / len(x1) ** 0.5
        assert abs(x1.mean().item() - alpha * 1.5) < 4 * se + 1e-6, (t, x1.mean().item(), alpha * 1.5)
        assert x1.std().item() == pytest.approx(std, rel=0.1), (t, x1.std().item(), std)


@pytest.mark.parametrize("sde", [VE, VP], ids=["VE", "VP"])
def test_repaint_jump_is_the_forward_transition_kernel(sde):
    """RePaint's jump back up from t_i to t_j > t_i must be the SDE's exact transition kernel,
    x <- (alpha_j / alpha_i) x + sqrt(std_j^2 - (alpha_j / alpha_i)^2 std_i^2) z, so that it maps samples of p_{t_i}
    to samples of p_{t_j}. The known entry shows it: before the jump it is a draw of N(alpha_i known, std_i^2)
    (replacement), so after it, when the score sees it at t_j, it must be a draw of N(alpha_j known, std_j^2).
    Jumps of 5 steps on a 20-step grid make the kernel's two terms far apart on VP; dropping the alpha ratio
    inside the std (sqrt(std_j^2 - std_i^2), mean kept) leaves VE unchanged but shrinks VP's variance after a jump
    to std_j^2 - (1 - ratio^2) std_i^2 (measured with that mutant: std 0.115 after the first jump, where it must be
    1.000)."""
    g = sg.densities.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    exact = SDEMarginal(g, sde).score
    seen = []

    def score(x, t):
        seen.append((float(t[0]), x[:, 0].clone()))
        return exact(x, t)

    n_steps, resample, jump = 20, 2, 5
    schedule = sg.guidance.repaint_schedule(n_steps, resample, jump)
    moves = list(zip(schedule[:-1], schedule[1:]))
    after_jump = [k > 0 and moves[k - 1][1] < moves[k - 1][0] for k, (i, j) in enumerate(moves) if j > i]
    known = torch.tensor([1.5, 0.0]).repeat(4000, 1)
    sg.guidance.repaint(sde, score, known, torch.tensor([1.0, 0.0]), n_steps, resample=resample, jump=jump,
                        sampler="em", generator=torch.Generator().manual_seed(0))
    assert len(seen) == len(after_jump) and sum(after_jump) == 3        # one score call per reverse step
    for (t, x1), jumped in zip(seen, after_jump):
        if not jumped:
            continue
        alpha, std = (float(v) for v in sde.marginal_coeffs(t))
        se = std / len(x1) ** 0.5
        assert abs(x1.mean().item() - alpha * 1.5) < 4 * se + 1e-6, (t, x1.mean().item(), alpha * 1.5)
        assert x1.std().item() == pytest.approx(std, rel=0.05), (t, x1.std().item(), std)   # SE 1.1 %


def test_repaint_with_vp_against_the_exact_conditional():
    """The VP SDE (alpha_t < 1): RePaint's backward jump is x <- (alpha_j / alpha_i) x + noise. On 100 steps with
    U = 10 it recovers N(1.35, 0.19) (measured mean 1.316, variance 0.187; a jump without the alpha ratio
    gives 1.45); replacement stays biased (0.95)."""
    g = sg.densities.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    known = torch.tensor([1.5, 0.0]).repeat(3000, 1)
    score = SDEMarginal(g, VP).score
    rp, _ = sg.guidance.repaint(VP, score, known, torch.tensor([1.0, 0.0]), 100, resample=10, sampler="em",
                                generator=torch.Generator().manual_seed(0))
    rep, _ = sg.guidance.inpaint(VP, score, known, torch.tensor([1.0, 0.0]), 100, sampler="em",
                                 generator=torch.Generator().manual_seed(0))
    assert abs(rp[:, 1].mean().item() - 1.35) < 0.06 and rp[:, 1].var().item() == pytest.approx(0.19, rel=0.1)
    assert abs(rep[:, 1].mean().item() - 1.35) > 0.3


def test_noisy_classifier_sees_the_scaled_state_at_unit_variance():
    """NoisyClassifier's CNN gets c_in x(t) / alpha_t (EDM's c_in, sigma_data = 0.5): for the VP SDE the
    1 / alpha_t matters. Checked on its first convolution's input."""
    clf = sg.image_guidance.NoisyClassifier(VP)
    got = {}
    clf.conv1.register_forward_hook(lambda mod, inp, out: got.setdefault("x", inp[0]))
    y = torch.rand(4, 1, 28, 28)
    t = torch.full((4,), 0.7)
    alpha, std = VP.marginal_coeffs(t)
    sigma = std / alpha
    clf(alpha[:, None, None, None] * y, t)
    torch.testing.assert_close(got["x"], y / torch.sqrt(0.25 + sigma**2)[:, None, None, None])


def test_inpainting_recovers_the_conditional_of_a_separated_mixture():
    """Modes at (-3, -3) and (3, 3) (covariance 0.5 I), x_1 = 2.5 known: the exact conditional is the upper
    mode, x_2 ~ N(3, 0.5). RePaint recovers it (measured: 100 % upper, mean 2.994, variance 0.487);
    replacement does not (96.5 % upper, mean 2.76, variance 0.69)."""
    mix = sg.densities.GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-3.0, -3.0], [3.0, 3.0]]),
                                       (0.5 * torch.eye(2))[None].repeat(2, 1, 1))
    cm = sg.guidance.conditional(mix, [0], [2.5])
    assert cm.weights[1].item() > 0.999 and cm.means[1, 0].item() == pytest.approx(3.0)
    known = torch.tensor([2.5, 0.0]).repeat(3000, 1)
    out = {}
    for resample in (1, 10):
        x, _ = sg.guidance.inpaint(VE, SDEMarginal(mix, VE).score, known, torch.tensor([1.0, 0.0]), 100,
                                   resample=resample, sampler="em", generator=torch.Generator().manual_seed(0))
        up = x[:, 1] > 0
        out[resample] = (up.float().mean().item(), x[up, 1].mean().item(), x[up, 1].var().item())
    assert out[10][0] > 0.99 and abs(out[10][1] - 3.0) < 0.05 and out[10][2] == pytest.approx(0.5, rel=0.1)
    assert out[1][0] < 0.98 and abs(out[1][1] - 3.0) > 0.15 and out[1][2] > 0.6


def test_repaint_schedule():
    assert sg.guidance.repaint_schedule(4) == [0, 1, 2, 3, 4]
    assert sg.guidance.repaint_schedule(4, 3, 1) == [0, 1, 0, 1, 0, 1, 2, 1, 2, 1, 2, 3, 2, 3, 2, 3, 4]
    assert sg.guidance.repaint_schedule(6, 2, 2) == [0, 1, 2, 1, 0, 1, 2, 3, 4, 3, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="jump=0"):
        sg.guidance.repaint_schedule(4, 2, 0)


def test_tilted_density_grid_and_histogram():
    p = sg.densities.ring()
    clf = sg.guidance.MixtureClassifier(p, VE)
    bounds = p.bounds()
    probs = sg.guidance.grid_probabilities(sg.guidance.tilted_log_density(clf, 0, 1.0), bounds, 50)
    exact = sg.guidance.grid_probabilities(clf.class_mixture(0).log_prob, bounds, 50)
    assert torch.allclose(probs, exact) and probs.sum().item() == pytest.approx(1.0)
    hist = sg.guidance.histogram_on_grid(clf.class_mixture(0).sample(20_000, generator=torch.Generator().manual_seed(0)),
                                         bounds, 50)
    assert sg.guidance.total_variation(hist, exact) < 0.1       # Monte Carlo noise only (measured 0.07)
    assert sg.guidance.total_variation(hist, sg.guidance.grid_probabilities(p.log_prob, bounds, 50)) > 0.8


@pytest.mark.slow
def test_noisy_classifier_learns_caches_and_guides(shared_mnist, classifier_cache, monkeypatch):
    """A short run (300 steps) already reads most clean held-out digits (measured 93 % at t = 0.01) and is near
    chance at t = 1; the second call loads the cache; grad_fn gives grad_x log p_t(y | x) of x's shape, and
    following it raises log p_t(y | x)."""
    monkeypatch.setenv("SCOREGEN_CACHE", str(classifier_cache))
    split = sg.data.mnist_split(root=shared_mnist)
    sde = sg.sde.VESDE.tutorial(25.0)
    clf = sg.image_guidance.noisy_classifier(split.x_train, split.y_train, sde, n_steps=300, device="cpu")
    g = torch.Generator().manual_seed(0)
    assert sg.image_guidance.noisy_accuracy(clf, split.x_held, split.y_held, 0.01, generator=g) > 0.8
    assert sg.image_guidance.noisy_accuracy(clf, split.x_held, split.y_held, 1.0, generator=g) < 0.35
    again = sg.image_guidance.noisy_classifier(split.x_train, split.y_train, sde, n_steps=300, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(clf.state_dict().values(), again.state_dict().values()))
    x, t = split.x_held[:8], torch.full((8,), 0.3)
    grad = clf.grad_fn(3)(x, t)
    assert grad.shape == x.shape
    with torch.no_grad():
        before = torch.log_softmax(clf(x, t), 1)[:, 3]
        after = torch.log_softmax(clf(x + 0.01 * grad / grad.flatten(1).norm(dim=1)[:, None, None, None], t), 1)[:, 3]
    assert (after > before).all()


def test_label_time_mlp_score_is_called_like_a_conditional_unet():
    """LabelTimeMLPScore: net(x, t) is the null label; labels change the output; classifier_free_net works on it
    (scale 1: the conditional score; scale 0: the unconditional); bad labels are refused by name."""
    torch.manual_seed(0)
    vp = sg.sde.VPSDE()
    net = sg.nets.LabelTimeMLPScore(vp, n_classes=2, dim=2, hidden=16, n_layers=2)
    x, t = torch.randn(5, 2), torch.full((5,), 0.4)
    assert net.null_label == 2 and net(x, t).shape == (5, 2)
    assert torch.equal(net(x, t), net(x, t, 2)) and torch.equal(net(x, t, 0), net(x, t, torch.zeros(5, dtype=torch.long)))
    assert not torch.allclose(net(x, t, 0), net(x, t, 1))
    assert torch.allclose(sg.guidance.classifier_free_net(net, 1, 1.0)(x, t), net(x, t, 1))
    assert torch.allclose(sg.guidance.classifier_free_net(net, 1, 0.0)(x, t), net(x, t))
    two = sg.guidance.classifier_free_net(net, 1, 2.0)(x, t)
    assert torch.allclose(two, net(x, t) + 2.0 * (net(x, t, 1) - net(x, t)), atol=1e-6)
    with pytest.raises(ValueError, match="y=3 is invalid"):
        net(x, t, 3)
