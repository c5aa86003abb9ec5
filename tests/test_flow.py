"""sg.flow (issue 34, notebook 11): the straight path's exact marginal velocity and score of a Gaussian mixture
against an independent reference (autograd of log p_t built here with torch.distributions, not with
GaussianMixture), the velocity/score/denoiser identities both ways, the conditional flow matching loss and its
minimiser, the Euler and Heun flow samplers (update formulas, convergence order, moments and energy distance),
and the likelihood by the instantaneous change of variables against the exact density."""
import functools
import math

import pytest
import torch

import scoregen_lite as sg

F64 = torch.float64


def full_cov_mixture(dim: int, n_components: int = 3, seed: int = 0) -> sg.densities.GaussianMixture:
    """A mixture with random full covariances (eigenvalues about 0.05 to 2), unequal weights, spread-out means."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n_components, dim, dim, generator=g, dtype=F64)
    covs = a @ a.transpose(-1, -2) / dim * 0.5 + 0.05 * torch.eye(dim, dtype=F64)
    means = 2.5 * torch.randn(n_components, dim, generator=g, dtype=F64)
    w = torch.rand(n_components, generator=g, dtype=F64) + 0.3
    return sg.densities.GaussianMixture(w / w.sum(), means, covs)


def ref_log_pt(target, x, t):
    """log p_t(x) of x_t = (1 - t) x(0) + t z, written independently of sg: one torch MultivariateNormal per
    component with mean (1 - t) mu_k and covariance (1 - t)^2 Sigma_k + t^2 I; t of shape (n,)."""
    a = (1 - t)[:, None, None]
    eye = torch.eye(target.dim, dtype=F64)
    cov = a[..., None] ** 2 * target.covs + t[:, None, None, None] ** 2 * eye          # (n, K, D, D)
    comp = torch.distributions.MultivariateNormal(a * target.means, covariance_matrix=cov)
    return torch.logsumexp(torch.log(target.weights) + comp.log_prob(x[:, None, :]), dim=1)


def ref_score(target, x, t):
    """grad_x log p_t(x) by autograd of ``ref_log_pt``."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(ref_log_pt(target, x, t).sum(), x)
    return g


def points_at(target, t: torch.Tensor, seed: int):
    """x_t for t of shape (n,): samples of p_t, plus a few far from every mode (tails, low responsibilities)."""
    g = torch.Generator().manual_seed(seed)
    n = len(t)
    x0 = target.sample(n, generator=g)
    x = (1 - t)[:, None] * x0 + t[:, None] * torch.randn(n, target.dim, generator=g, dtype=F64)
    x[: n // 8] = 6 * torch.randn(n // 8, target.dim, generator=g, dtype=F64)
    return x


TIMES = (0.02, 0.3, 0.7, 0.97)


@pytest.mark.parametrize("dim", [3, 5])
def test_marginal_velocity_and_score_match_autograd_of_log_pt(dim):
    """3D and 5D, full covariances: the closed-form score equals autograd of the independent log p_t, and the
    closed-form velocity (posterior means of z and x(0), mixed by responsibilities) equals -(x + t s) / (1 - t)
    with that autograd score, for one float t at a time and for one random t per row, to 1e-9."""
    target = full_cov_mixture(dim, seed=dim)
    for t in TIMES + ("per-row",):
        tt = (torch.rand(200, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.98 + 0.01
              if t == "per-row" else torch.full((200,), t, dtype=F64))
        x = points_at(target, tt, seed=dim)
        arg = tt if t == "per-row" else t
        s_ref = ref_score(target, x, tt)
        assert torch.allclose(sg.flow.marginal_score(target, x, arg), s_ref, atol=1e-9, rtol=1e-9), t
        v_ref = -(x + tt[:, None] * s_ref) / (1 - tt[:, None])
        v = sg.flow.marginal_velocity(target, x, arg)
        assert v.shape == x.shape and v.dtype == F64
        assert torch.allclose(v, v_ref, atol=1e-9, rtol=1e-9), t


def test_marginal_velocity_endpoints_and_dtype():
    """Known values at the closed ends: v_0(x) = -x (x is the data point, z has mean 0) and v_1(x) = x - E[x(0)]
    (x is the noise); float32 input gives float32 output close to the float64 one; ``marginal`` is p_t."""
    target = full_cov_mixture(3, seed=7)
    x = points_at(target, torch.full((50,), 0.5, dtype=F64), seed=2)
    assert torch.allclose(sg.flow.marginal_velocity(target, x, 0.0), -x, atol=1e-12)
    mean, _ = target.moments()
    assert torch.allclose(sg.flow.marginal_velocity(target, x, 1.0), x - mean, atol=1e-12)
    v32 = sg.flow.marginal_velocity(target, x.float(), 0.4)
    assert v32.dtype == torch.float32 and torch.allclose(v32.double(), sg.flow.marginal_velocity(target, x, 0.4),
                                                         atol=1e-4)
    p = sg.flow.marginal(target, 0.4)
    assert torch.allclose(p.log_prob(x), ref_log_pt(target, x, torch.full((50,), 0.4, dtype=F64)), atol=1e-10)
    assert torch.allclose(sg.flow.marginal(target, 1.0).log_prob(x), -0.5 * (3 * math.log(2 * math.pi)
                                                                             + x.pow(2).sum(1)), atol=1e-10)


def test_straight_path_known_values():
    x0 = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]], dtype=F64)
    z = torch.tensor([[-1.0, 0.5], [2.0, 2.0], [1.0, -2.0]], dtype=F64)
    assert torch.equal(sg.flow.straight_path(x0, z, 0.0), x0) and torch.equal(sg.flow.straight_path(x0, z, 1), z)
    t = torch.tensor([0.25, 0.5, 1.0], dtype=F64)
    want = torch.tensor([[0.5, 1.625], [2.5, 0.5], [1.0, -2.0]], dtype=F64)
    assert torch.allclose(sg.flow.straight_path(x0, z, t), want)
    imgs = torch.ones(3, 1, 2, 2)
    assert torch.allclose(sg.flow.straight_path(imgs, -imgs, t.float())[:, 0, 0, 0], 1 - 2 * t.float())


@pytest.mark.parametrize("dim", [3, 5])
def test_identities_both_ways_against_exact_score(dim):
    """velocity_from_score(autograd score) is the closed-form velocity; score_from_velocity(closed-form velocity) is
    the autograd score; denoiser_from_velocity is Tweedie's E[x(0) | x_t] = (x + t^2 s) / (1 - t); per-row t too."""
    target = full_cov_mixture(dim, seed=10 + dim)
    for t in TIMES + ("per-row",):
        tt = (torch.rand(120, generator=torch.Generator().manual_seed(3), dtype=F64) * 0.98 + 0.01
              if t == "per-row" else torch.full((120,), t, dtype=F64))
        arg = tt if t == "per-row" else t
        x = points_at(target, tt, seed=dim + 1)
        s = ref_score(target, x, tt)
        v = sg.flow.marginal_velocity(target, x, arg)
        assert torch.allclose(sg.flow.velocity_from_score(s, x, arg), v, atol=1e-9, rtol=1e-9), t
        assert torch.allclose(sg.flow.score_from_velocity(v, x, arg), s, atol=1e-9, rtol=1e-9), t
        tweedie = (x + tt[:, None] ** 2 * s) / (1 - tt[:, None])
        assert torch.allclose(sg.flow.denoiser_from_velocity(v, x, arg), tweedie, atol=1e-9, rtol=1e-9), t


def test_identities_on_images_broadcast_t_per_sample():
    """On (n, C, H, W) the per-sample t multiplies its own image (not a channel or a row)."""
    x = torch.randn(3, 2, 4, 4, dtype=F64)
    v = torch.randn(3, 2, 4, 4, dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    s = sg.flow.score_from_velocity(v, x, t)
    for i in range(3):
        ti = float(t[i])
        assert torch.allclose(s[i], -(x[i] + (1 - ti) * v[i]) / ti)
    assert torch.allclose(sg.flow.velocity_from_score(s, x, t), v)
    assert torch.allclose(sg.flow.denoiser_from_velocity(v, x, t)[2], x[2] - 0.9 * v[2])


@pytest.fixture(scope="module")
def target2d():
    """2D, two components with full (tilted) covariances and unequal weights."""
    covs = torch.tensor([[[0.5, 0.3], [0.3, 0.4]], [[0.3, -0.2], [-0.2, 0.6]]], dtype=F64)
    return sg.densities.GaussianMixture(torch.tensor([0.35, 0.65], dtype=F64),
                                        torch.tensor([[-2.5, 1.0], [2.0, -1.5]], dtype=F64), covs)


def test_cfm_loss_is_the_marginal_velocity_loss_plus_a_constant(target2d):
    """With the same draws (same seed), loss(v + h) - loss(v) = mean ||h||^2 + 2 mean h . (v - (z - x(0))), whose
    last term has expectation 0 because v is the conditional mean of z - x(0) given x_t: the difference is
    mean ||h(x_t, t)||^2 (the marginal-velocity loss of v + h) within 4 standard errors. So the exact velocity
    minimises the loss: every perturbation (scaled, shifted, x-dependent) raises it."""
    x0 = target2d.sample(20_000, generator=torch.Generator().manual_seed(0))
    v_fn = functools.partial(sg.flow.marginal_velocity, target2d)
    seen = {}

    def with_h(h):
        def net(x, t):
            seen.update(x=x, t=t)
            return v_fn(x, t) + h(x, t)
        return net

    def loss(net):
        return sg.flow.cfm_loss(net, x0, generator=torch.Generator().manual_seed(5)).item()

    exact = loss(with_h(lambda x, t: 0 * x))
    for h in (lambda x, t: 0.5 * torch.tanh(x) + 0.2, lambda x, t: 0.3 * x * t[:, None],
              lambda x, t: 0.1 * v_fn(x, t), lambda x, t: torch.tensor([0.2, -0.3], dtype=F64) + 0 * x):
        diff = loss(with_h(h)) - exact
        x, t = seen["x"], seen["t"][:, None]
        hh = h(x, t[:, 0])
        z = (x - (1 - t) * x0) / t
        cross = 2 * (hh * (v_fn(x, t[:, 0]) - (z - x0))).sum(1)
        se = cross.std().item() / len(x0) ** 0.5
        want = hh.pow(2).sum(1).mean().item()
        assert diff > 0 and want > 10 * se
        assert abs(diff - want) < 4 * se, (diff, want, se)


def test_cfm_loss_fixed_t_value_and_gradient():
    """At fixed t the loss is E||v - (z - x0)||^2 summed over dimensions: for net = 0 and x0 = 0 it is E||z||^2 = D
    (within 4 standard errors); for a network it is a 0-d tensor whose gradient reaches the parameters."""
    x0 = torch.zeros(20_000, 3, dtype=F64)
    value = sg.flow.cfm_loss(lambda x, t: 0 * x, x0, generator=torch.Generator().manual_seed(1), t=0.5).item()
    assert abs(value - 3.0) < 4 * math.sqrt(6 / 20_000)
    net = torch.nn.Linear(3, 3)
    loss = sg.flow.cfm_loss(lambda x, t: net(x), torch.randn(64, 3), generator=torch.Generator().manual_seed(2))
    assert loss.dim() == 0 and loss.requires_grad
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_flow_updates_on_a_linear_velocity():
    """dx/dt = x from t = 1 to 0 (x(0) = z / e): Euler gives z (1 - h)^N, Heun z (1 - h + h^2 / 2)^(N - 1) (1 - h)
    (its last step, ending at t = 0, is Euler) and z (1 - h + h^2 / 2)^N when t_min > 0; nfe as documented."""
    z = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=F64)
    calls = []

    def v(x, t):
        calls.append(float(t[0]))
        return x

    n, h = 5, 0.2
    x, nfe = sg.flow.euler_flow(v, z, n)
    assert nfe == n == len(calls) and torch.allclose(x, z * (1 - h) ** n, atol=1e-14)
    assert calls == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    calls.clear()
    x, nfe = sg.flow.heun_flow(v, z, n)
    assert nfe == 2 * n - 1 == len(calls) and 0.0 not in calls
    assert torch.allclose(x, z * (1 - h + h**2 / 2) ** (n - 1) * (1 - h), atol=1e-14)
    calls.clear()
    x, nfe = sg.flow.heun_flow(v, z, 4, t_max=0.9, t_min=0.1)
    assert nfe == 8 == len(calls) and torch.allclose(x, z * (1 - 0.2 + 0.02) ** 4, atol=1e-14)


def test_flow_path_seed_and_progress():
    v = lambda x, t: -x  # noqa: E731
    x, nfe, path = sg.flow.heun_flow(v, (6, 2), 3, generator=torch.Generator().manual_seed(4), dtype=F64,
                                     return_path=True, progress=True)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert path.shape == (4, 6, 2) and torch.equal(path[0], z) and torch.equal(path[-1], x) and nfe == 5
    x2, _ = sg.flow.euler_flow(v, z, 3)
    assert x2.shape == z.shape and not torch.equal(x2, z)


def test_heun_error_shrinks_as_h2_and_euler_as_h(target2d):
    """Against the ODE solved by RK45 at 1e-10: from N = 16 to 64 steps Euler's median error falls about 4x (order
    1), Heun's about 16x (order 2); measured slopes 0.99 and 2.03. The median, since the few paths that start near
    the boundary between the modes are sensitive and make the mean irregular."""
    v = functools.partial(sg.flow.marginal_velocity, target2d)
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    ref, _ = sg.solvers.rk45(lambda t, y: v(y, torch.full((len(y),), t, dtype=F64)), z, 1.0, 0.0,
                             rtol=1e-10, atol=1e-10)
    err = {name: [(fn(v, z, n)[0] - ref).norm(dim=1).median().item() for n in (16, 64)]
           for name, fn in (("euler", sg.flow.euler_flow), ("heun", sg.flow.heun_flow))}
    slope = {name: math.log(e[0] / e[1]) / math.log(4) for name, e in err.items()}
    assert 0.85 < slope["euler"] < 1.15, slope
    assert 1.8 < slope["heun"] < 2.25, slope
    assert err["heun"][0] < 0.1 * err["euler"][0]


def test_samplers_reach_the_target_moments_and_noise_floor(target2d):
    """Exact velocity, 2,000 samples: Heun with 40 steps and Euler with 400 match the mixture's mean, covariance
    and within-component covariance (|z| < 4.5) and sit within 4 std of the energy-distance noise floor; Euler with
    4 steps is told apart (far outside the floor), so the check has power."""
    v = functools.partial(sg.flow.marginal_velocity, target2d)
    gen = torch.Generator().manual_seed(11)
    floor = sg.metrics.energy_noise_floor(target2d, 2000, repeats=8, generator=gen)
    reference = target2d.sample(2000, generator=gen)
    distance = {}
    for name, fn, n in (("heun", sg.flow.heun_flow, 40), ("euler", sg.flow.euler_flow, 400),
                        ("coarse", sg.flow.euler_flow, 4)):
        x, _ = fn(v, (2000, 2), n, generator=gen, dtype=F64)
        distance[name] = sg.metrics.energy_distance(x, reference)
        if name != "coarse":
            assert sg.metrics.moment_z(x, target2d)["max"] < 4.5, name
    bound = floor["mean"] + 4 * floor["std"]
    assert distance["heun"] < bound and distance["euler"] < bound, (distance, floor)
    assert distance["coarse"] > floor["mean"] + 20 * floor["std"], (distance, floor)


@pytest.mark.parametrize("dim", [3, 5])
def test_likelihood_matches_exact_density(dim):
    """log_likelihood_flow of the exact velocity equals log p_{t_min}(x) (``marginal``, exact) to 1e-5 at solver
    tolerance 1e-8 (measured < 1e-6), and the data's own log-density to 2e-3 (p_{t_min} differs by O(D t_min))."""
    target = full_cov_mixture(dim, seed=20 + dim)
    v = functools.partial(sg.flow.marginal_velocity, target)
    x = target.sample(40, generator=torch.Generator().manual_seed(dim))
    ll = sg.flow.log_likelihood_flow(v, x, rtol=1e-8, atol=1e-8)
    assert ll.shape == (40,)
    assert (ll - sg.flow.marginal(target, 1e-5).log_prob(x)).abs().max() < 1e-5
    assert (ll - target.log_prob(x)).abs().max() < 2e-3


def test_bad_inputs_raise_with_the_value_and_the_fix(target2d):
    x = torch.zeros(4, 2, dtype=F64)
    v = functools.partial(sg.flow.marginal_velocity, target2d)
    with pytest.raises(ValueError, match=r"t=1\.5 is outside \[0, 1\].*pass times in \[0, 1\]"):
        sg.flow.marginal_velocity(target2d, x, 1.5)
    with pytest.raises(ValueError, match=r"t=-0\.1 is outside"):
        sg.flow.marginal_score(target2d, x, -0.1)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        sg.flow.marginal_velocity(target2d, x, torch.tensor([0.1, float("nan"), 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"t has shape \(3,\); expected a float or shape \(4,\)"):
        sg.flow.marginal_velocity(target2d, x, torch.rand(3))
    with pytest.raises(ValueError, match=r"t has shape \(4, 1\).*reshape\(-1\)"):
        sg.flow.marginal_velocity(target2d, x, torch.rand(4, 1))
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\); expected \(n, 2\)"):
        sg.flow.marginal_velocity(target2d, torch.zeros(4, 3), 0.5)
    with pytest.raises(TypeError, match=r"target=.* must be a GaussianMixture"):
        sg.flow.marginal_velocity(sg.sde.VESDE(), x, 0.5)
    with pytest.raises(TypeError, match=r"t='0.5' must be a float"):
        sg.flow.marginal_velocity(target2d, x, "0.5")
    with pytest.raises(ValueError, match=r"t=1\.0 reaches 1.*pass t < 1"):
        sg.flow.velocity_from_score(x, x, 1.0)
    with pytest.raises(ValueError, match=r"t=0 reaches 0.*pass t > 0"):
        sg.flow.score_from_velocity(x, x, 0)
    with pytest.raises(ValueError, match=r"v has shape \(4, 3\); expected x's shape \(4, 2\)"):
        sg.flow.denoiser_from_velocity(torch.zeros(4, 3), x, 0.5)
    with pytest.raises(ValueError, match=r"z has shape \(4, 3\); expected x0's shape"):
        sg.flow.straight_path(x, torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match=r"n_steps=0 is invalid"):
        sg.flow.euler_flow(v, x, 0)
    with pytest.raises(ValueError, match=r"t_max=1\.0, t_min=1\.0: expected 0 <= t_min < t_max <= 1"):
        sg.flow.heun_flow(v, x, 4, t_min=1.0)
    with pytest.raises(ValueError, match=r"t_max=2\.0"):
        sg.flow.euler_flow(v, x, 4, t_max=2.0)
    with pytest.raises(TypeError, match=r"velocity_fn=.* must be callable"):
        sg.flow.heun_flow("v", x, 4)
    with pytest.raises(ValueError, match=r"velocity_fn returned \(4,\); expected a tensor of x's shape \(4, 2\)"):
        sg.flow.euler_flow(lambda x, t: t, x, 4)
    with pytest.raises(TypeError, match=r"net=.* must be callable"):
        sg.flow.cfm_loss(None, x)
    with pytest.raises(ValueError, match=r"net returned \(4, 1\); expected a velocity of x's shape \(4, 2\)"):
        sg.flow.cfm_loss(lambda x, t: x[:, :1], x)
    with pytest.raises(ValueError, match=r"t=2\.0 is outside"):
        sg.flow.cfm_loss(lambda x, t: x, x, t=2.0)
    with pytest.raises(ValueError, match=r"t_min=0\.0 is invalid: expected a finite number > 0"):
        sg.flow.log_likelihood_flow(v, x, t_min=0.0)
    with pytest.raises(ValueError, match=r"t_min=1\.0 is invalid: expected 0 < t_min < 1"):
        sg.flow.log_likelihood_flow(v, x, t_min=1.0)
    with pytest.raises(ValueError, match=r"t=1\.2 is outside"):
        sg.flow.marginal(target2d, 1.2)
