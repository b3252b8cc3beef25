"""The math of Dreamer V1 and V2, each check able to fail."""

import pytest
import torch

from lightning_dreamer.losses import (
    actor_loss,
    categorical_kl,
    discount_target,
    free_nats,
    gaussian_kl,
    kl_balanced,
    lambda_return,
    total_loss,
    trajectory_weights,
)
from lightning_dreamer.nets.distributions import OneHotCategorical, TanhNormal, TruncatedNormal, straight_through_onehot


def test_lambda_return_hand_computed_with_discounts_and_episode_end():
    # Horizon 3, one trajectory. The episode ends after the second transition (cont = 0 there).
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    next_value = torch.tensor([[10.0], [20.0], [30.0]])  # v(s1), v(s2), v(s3)
    cont = torch.tensor([[0.9], [0.0], [0.9]])
    lam = 0.5
    # R2 = r3 + c3 * v(s3) = 3 + 0.9 * 30 = 30
    # R1 = r2 + c2 * (...) = 2 + 0 = 2       (the episode ended: nothing after it counts)
    # R0 = r1 + c1 * ((1 - lam) * v(s1) + lam * R1) = 1 + 0.9 * (5 + 1) = 6.4
    expected = torch.tensor([[6.4], [2.0], [30.0]])
    torch.testing.assert_close(lambda_return(reward, next_value, cont, lam), expected)


def test_lambda_return_limits():
    reward, value = torch.rand(5, 3), torch.rand(5, 3)
    cont = torch.full((5, 3), 0.9)
    # lam = 0: one-step TD targets r + c * v(next)
    torch.testing.assert_close(lambda_return(reward, value, cont, 0.0), reward + cont * value)
    # lam = 1: discounted Monte-Carlo return bootstrapped with the last value
    mc = value[-1]
    expected = []
    for t in reversed(range(5)):
        mc = reward[t] + cont[t] * mc
        expected.append(mc)
    torch.testing.assert_close(lambda_return(reward, value, cont, 1.0), torch.stack(expected[::-1]))


def test_trajectory_weights_zero_after_terminal_start():
    cont = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    w = trajectory_weights(cont, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(w[:, 0], torch.tensor([1.0, 0.5, 0.25]))
    torch.testing.assert_close(w[:, 1], torch.zeros(3))


def test_kl_balancing_splits_gradient_0_8_prior_0_2_posterior():
    post = torch.randn(6, 4, 5, requires_grad=True)
    prior = torch.randn(6, 4, 5, requires_grad=True)
    loss, value = kl_balanced(post, prior, balance=0.8, free=0.0)
    loss.mean().backward()
    g_post_bal, g_prior_bal = post.grad.clone(), prior.grad.clone()
    post.grad = prior.grad = None
    categorical_kl(post, prior).mean().backward()
    torch.testing.assert_close(g_prior_bal, 0.8 * prior.grad)
    torch.testing.assert_close(g_post_bal, 0.2 * post.grad)
    torch.testing.assert_close(value, categorical_kl(post, prior).detach())


@pytest.mark.parametrize("free", [0.0, 1.0, 1e6])
def test_kl_free_nats(free):
    post = torch.randn(8, 4, 5, requires_grad=True)
    prior = torch.randn(8, 4, 5, requires_grad=True)
    loss, value = kl_balanced(post, prior, balance=0.8, free=free)
    assert loss.shape == (8,)
    torch.testing.assert_close(loss.mean(), torch.clamp(value.mean(), min=free))
    loss.mean().backward()
    if value.mean() < free:
        assert post.grad.abs().sum() == 0 and prior.grad.abs().sum() == 0
    else:
        assert post.grad.abs().sum() > 0 and prior.grad.abs().sum() > 0


def test_categorical_kl_zero_for_equal_and_positive_otherwise():
    logits = torch.randn(3, 4, 5)
    torch.testing.assert_close(categorical_kl(logits, logits), torch.zeros(3), atol=1e-6, rtol=0)
    assert (categorical_kl(logits, torch.randn(3, 4, 5)) > 0).all()


def test_straight_through_is_onehot_forward_and_softmax_gradient_backward():
    logits = torch.randn(64, 7, requires_grad=True)
    sample = straight_through_onehot(logits)
    assert torch.equal(sample.detach().sum(-1), torch.ones(64))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    weights = torch.randn(64, 7)
    (sample * weights).sum().backward()
    expected = torch.autograd.grad((torch.softmax(logits, -1) * weights).sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)


def test_straight_through_samples_follow_the_probabilities():
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(20000, 3)
    freq = straight_through_onehot(logits).detach().mean(0)
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.02, rtol=0)


def test_discount_target_zero_at_terminal_steps():
    is_terminal = torch.tensor([[False, False, True], [False, True, False]])
    torch.testing.assert_close(discount_target(is_terminal), torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))


def test_total_loss_checks_scales():
    losses = {"kl": torch.ones(2, 3), "image": torch.full((2, 3), 2.0)}
    assert total_loss(losses, {"kl": 0.5, "image": 1.0}).item() == pytest.approx(2.5)
    with pytest.raises(KeyError, match="image"):
        total_loss(losses, {"kl": 1.0})


def test_actor_loss_reinforce_vs_dynamics_gradients():
    returns = torch.randn(4, 3, requires_grad=True)
    log_prob = torch.randn(4, 3, requires_grad=True)
    entropy = torch.zeros(4, 3)
    baseline = torch.zeros(4, 3)
    weight = torch.ones(4, 3)
    actor_loss(log_prob, entropy, returns, baseline, weight, reinforce=1.0, entropy_scale=0.0).mean().backward()
    assert returns.grad is None  # REINFORCE: the return is a constant advantage
    torch.testing.assert_close(log_prob.grad, -returns.detach() / 12)
    log_prob.grad = None
    actor_loss(log_prob, entropy, returns, baseline, weight, reinforce=0.0, entropy_scale=0.0).mean().backward()
    assert log_prob.grad is None  # dynamics backprop: only the return's gradient
    torch.testing.assert_close(returns.grad, torch.full((4, 3), -1 / 12))


def test_truncated_normal_bounds_logprob_and_entropy():
    loc = torch.tensor([[0.9, -0.5, 0.0]]).expand(50000, 3)
    scale = torch.tensor([[0.5, 0.2, 2.0]]).expand(50000, 3)
    dist = TruncatedNormal(loc, scale)
    x = dist.rsample()
    assert (x > -1).all() and (x < 1).all()
    # Density integrates to one on [-1, 1] (per dimension, by the trapezoid rule).
    grid = torch.linspace(-1, 1, 4001)
    for d in range(3):
        single = TruncatedNormal(loc[:1, d : d + 1].expand(4001, 1), scale[:1, d : d + 1].expand(4001, 1))
        density = single.log_prob(grid.unsqueeze(-1)).exp()
        assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-3)
    # Entropy matches the Monte-Carlo estimate -E[log p].
    mc = -dist.log_prob(x).mean()
    assert dist.entropy()[0].item() == pytest.approx(mc.item(), abs=0.03)
    # Samples are differentiable in the mean.
    loc_p = torch.zeros(10, 1, requires_grad=True)
    TruncatedNormal(loc_p, torch.ones(10, 1)).rsample().sum().backward()
    assert loc_p.grad.abs().sum() > 0


def test_onehot_categorical_logprob_entropy():
    logits = torch.randn(5, 4)
    dist = OneHotCategorical(logits)
    ref = torch.distributions.Categorical(logits=logits)
    onehot = dist.sample().detach()
    torch.testing.assert_close(dist.log_prob(onehot), ref.log_prob(onehot.argmax(-1)))
    torch.testing.assert_close(dist.entropy(), ref.entropy())


@pytest.mark.parametrize("loc0, scale0", [(0.0, 0.5), (0.9, 0.1), (-0.95, 0.3)])
def test_truncated_normal_reparameterised_gradient_matches_analytic_mean(loc0, scale0):
    def analytic_mean(loc, scale):
        d = TruncatedNormal(loc, scale)
        phi = lambda x: torch.exp(-0.5 * x * x) / (2 * torch.pi) ** 0.5  # noqa: E731
        return loc + scale * (phi(d.alpha) - phi(d.beta)) / d.Z

    loc = torch.tensor([[loc0]], requires_grad=True)
    scale = torch.tensor([[scale0]], requires_grad=True)
    x = TruncatedNormal(loc.expand(200000, 1), scale.expand(200000, 1)).rsample()
    mc = torch.autograd.grad(x.mean(), [loc, scale])
    exact = torch.autograd.grad(analytic_mean(loc, scale).sum(), [loc, scale])
    for a, b in zip(mc, exact):
        assert a.item() == pytest.approx(b.item(), abs=0.01)


# ---------------------------------------------------------------- Dreamer V1: Gaussian KL, free nats, tanh-Normal


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    pm, qm = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ps, qs = torch.rand(5, 7, generator=g) + 0.1, torch.rand(5, 7, generator=g) + 0.1
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(pm, ps), torch.distributions.Normal(qm, qs)).sum(-1)
    torch.testing.assert_close(gaussian_kl(pm, ps, qm, qs), expected)
    assert torch.allclose(gaussian_kl(pm, ps, pm, ps), torch.zeros(5), atol=1e-6)


@pytest.mark.parametrize("free", [0.5, 3.0])
def test_free_nats_clamp_below_and_pass_gradients_above(free):
    # One Gaussian latent of 4 dims; the KL grows with the distance between the means.
    prior_mean = torch.zeros(8, 4)
    std = torch.ones(8, 4)
    for shift, above in ((0.1, False), (2.0, True)):
        post_mean = torch.full((8, 4), shift, requires_grad=True)
        kl = gaussian_kl(post_mean, std, prior_mean, std)  # = 4 * shift^2 / 2 per sample
        loss = free_nats(kl, free)
        assert (kl.mean().item() > free) == above
        loss.mean().backward()
        if above:
            torch.testing.assert_close(loss, kl)
            torch.testing.assert_close(post_mean.grad, torch.full((8, 4), shift / 8))  # d/dmu mean(2 mu^2) per element
        else:
            torch.testing.assert_close(loss, torch.full_like(kl, free))
            assert post_mean.grad.abs().sum() == 0


def test_tanh_normal_samples_in_bounds_and_log_prob_matches_change_of_variables():
    loc = torch.tensor([[0.0, 2.0, -3.0]])
    scale = torch.tensor([[0.5, 5.0, 0.1]])
    dist = TanhNormal(loc, scale)
    samples = torch.stack([dist.rsample() for _ in range(2000)])
    assert (samples.abs() <= 1).all()  # float32 tanh reaches exactly +-1 for |x| > 9: still in bounds
    assert torch.isfinite(dist.log_prob(samples)).all()
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(loc, scale), [torch.distributions.TanhTransform()])
    y = torch.tensor([[0.3, -0.9, 0.99]])
    torch.testing.assert_close(dist.log_prob(y), reference.log_prob(y).sum(-1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dist.median(), torch.tanh(loc))
    # mode: the most likely of 100 samples. Narrow: next to tanh(loc). Wide: the density has a peak
    # near each end, the higher one on the side of loc; far from tanh(loc) = 0.29 either way.
    torch.manual_seed(0)
    torch.testing.assert_close(TanhNormal(loc, torch.full_like(loc, 1e-3)).mode(), torch.tanh(loc), atol=1e-2, rtol=0)
    wide = TanhNormal(torch.full((1000, 1), 0.3), torch.full((1000, 1), 3.0)).mode()
    assert (wide.abs() > 0.99).all() and (wide > 0).float().mean() > 0.6
    # 1-D density integrates to 1 over (-1, 1)
    one = TanhNormal(torch.tensor([[0.7]]), torch.tensor([[0.8]]))
    grid = torch.linspace(-1 + 1e-5, 1 - 1e-5, 200_001).unsqueeze(-1)
    density = one.log_prob(grid).exp()
    assert abs(torch.trapezoid(density, grid.squeeze(-1)).item() - 1) < 1e-3


def test_tanh_normal_entropy_estimate_matches_integral_and_pushes_off_saturation():
    loc, scale = torch.tensor([[0.7, 4.0]]), torch.tensor([[0.8, 0.3]])
    grid = torch.linspace(-1 + 1e-7, 1 - 1e-7, 400_001, dtype=torch.float64).unsqueeze(-1)
    for i in range(2):
        one = TanhNormal(loc[:, i : i + 1].double(), scale[:, i : i + 1].double())
        logp = one.log_prob(grid)  # TanhNormal computes in float32 internally
        exact = -torch.trapezoid(logp.exp() * logp, grid.squeeze(-1)).item()
        torch.manual_seed(i)
        many = TanhNormal(loc[:, i : i + 1].expand(200_000, 1), scale[:, i : i + 1].expand(200_000, 1))
        assert abs(many.entropy().mean().item() - exact) < 0.02, (i, exact)
    # Pathwise gradient: a saturated mean (tanh(4) ~ 0.9993) gains entropy by moving towards 0 and
    # by widening; -log_prob at a detached sample would give a gradient of zero in expectation.
    loc = torch.full((100_000, 1), 4.0, requires_grad=True)
    scale = torch.full((100_000, 1), 0.3, requires_grad=True)
    torch.manual_seed(0)
    TanhNormal(loc, scale).entropy().mean().backward()
    assert loc.grad.sum() < -1.5 and scale.grad.sum() > 0


def test_tanh_normal_rsample_is_differentiable():
    loc = torch.zeros(1, 2, requires_grad=True)
    scale = torch.ones(1, 2, requires_grad=True)
    TanhNormal(loc, scale).rsample().sum().backward()
    assert loc.grad.abs().sum() > 0 and scale.grad is not None
