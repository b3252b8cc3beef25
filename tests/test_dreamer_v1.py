"""Dreamer V1 networks: Gaussian RSSM, where the actor's gradient goes, exploration."""

import pytest
import torch

from conftest import fake_batch
from conftest import make_agent as make_tiny


def make_agent(*overrides):
    return make_tiny("dreamer_v1", *overrides)


def test_gaussian_rssm_shapes_and_is_first_reset():
    agent = make_agent()
    rssm = agent.rssm
    assert isinstance(rssm.gru, torch.nn.GRUCell)  # V1: a plain GRU, no layer norm
    batch = fake_batch(agent)
    post, prior = rssm.observe(agent.encode(batch), batch["action"], batch["is_first"])
    assert post["stoch"].shape == (3, 6, 4) and post["mean"].shape == (3, 6, 4) and post["deter"].shape == (3, 6, 32)
    assert (post["std"] >= 0.1).all() and (prior["std"] >= 0.1).all()  # softplus + min_std
    assert rssm.feat({k: v[:, 0] for k, v in post.items()}).shape == (3, 32 + 4)
    embed = agent.encode({k: v[:, 0] for k, v in batch.items()})
    first = torch.ones(3, dtype=torch.bool)
    noisy = {k: torch.randn_like(v) for k, v in rssm.initial(3).items()}
    out_a, _ = rssm.obs_step(noisy, torch.randn(3, agent.action_dim), embed, first)
    out_b, _ = rssm.obs_step(rssm.initial(3), torch.zeros(3, agent.action_dim), embed, first)
    torch.testing.assert_close(out_a["mean"], out_b["mean"])
    torch.testing.assert_close(out_a["std"], out_b["std"])


def test_world_model_losses_have_free_nats_kl():
    agent = make_agent("model.kl_free=1000")
    _, losses, metrics = agent.world_model_losses(fake_batch(agent))
    assert set(losses) == {"kl", "image", "state", "reward"}
    assert torch.equal(losses["kl"], torch.full((3, 6), 1000.0))  # clamped: the KL is far below 1000 nats
    assert (metrics["kl"] >= 0).all() and metrics["kl"].mean() < 1000


def test_cutting_the_dynamics_cuts_the_actor_gradient_but_not_the_entropy_bonus():
    agent = make_agent()
    batch = fake_batch(agent)
    post, _, _ = agent.world_model_losses(batch)
    # V1 has no REINFORCE term: with the imagined dynamics cut, no gradient reaches the actor ...
    original = agent.rssm.img_step
    agent.rssm.img_step = lambda state, action: {k: v.detach() for k, v in original(state, action).items()}
    assert not agent.behaviour_losses(post, batch["is_terminal"])[0]["actor"].requires_grad
    # ... except the optional entropy bonus (not in the paper), which needs no dynamics.
    agent.config.actor_entropy = 1e-2
    agent.zero_grad()
    agent.behaviour_losses(post, batch["is_terminal"])[0]["actor"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.world_model.parameters())


def test_exploration_noise_continuous_and_epsilon_greedy():
    agent = make_agent("model.expl_amount=0.3")
    obs = {"pixels": torch.zeros(512, 3, 64, 64, dtype=torch.uint8), "state": torch.zeros(512, 3)}
    first = torch.ones(512, dtype=torch.bool)
    torch.manual_seed(0)
    explored, _ = agent.act(obs, first, None, explore=True)
    mode, _ = agent.act(obs, first, None, explore=False)
    assert explored.shape == (512, agent.action_dim) and (explored.abs() <= 1).all()
    noise = agent.explore(torch.zeros(20_000, 1))
    assert abs(noise.std().item() - 0.3) < 0.01 and abs(noise.mean().item()) < 0.01  # additive N(0, 0.3)
    assert agent.explore(torch.full((10, 1), 0.9)).max() <= 1  # clipped to the bounds
    quiet = make_agent("model.expl_amount=0")
    assert torch.equal(quiet.explore(torch.full((10, 1), 0.5)), torch.full((10, 1), 0.5))
    discrete = make_agent("env.name=lightning_dreamer/PointDiscrete-v0", "model.expl_amount=1.0")
    actions, _ = discrete.act(obs, first, None, explore=True)
    assert torch.equal(actions.sum(-1), torch.ones(512))  # one-hot
    counts = actions.sum(0)
    assert (counts > 512 / 3 * 0.75).all()  # epsilon 1: uniform over the 3 actions
    decaying = make_agent("model.expl_amount=0.4", "model.expl_decay=1000", "model.expl_min=0.1")
    assert decaying.exploration_amount() == pytest.approx(0.4)
    decaying.policy_steps = 500  # = 500 env frames: the tiny config repeats each action once
    assert decaying.exploration_amount() == pytest.approx(0.4 * 0.5 ** (500 / 1000))
    decaying.policy_steps = 10**6
    assert decaying.exploration_amount() == pytest.approx(0.1)


def test_the_deterministic_action_mode_or_median():
    # A fresh actor has a pre-tanh std near actor_init_std (5): the tanh-Normal's density then peaks
    # at +-1, so the paper's "mode" plays saturated actions; "median" plays tanh(mean), inside (-1, 1).
    obs = {"pixels": torch.zeros(256, 3, 64, 64, dtype=torch.uint8), "state": torch.randn(256, 3)}
    first = torch.ones(256, dtype=torch.bool)
    paper, median = make_agent(), make_agent("model.eval_action=median")
    median.load_state_dict(paper.state_dict())
    torch.manual_seed(0)
    saturated, _ = paper.act(obs, first, None, explore=False)
    assert (saturated.abs() > 0.99).float().mean() > 0.9
    played, (latent, _) = median.act(obs, first, None, explore=False)
    expected = median.policy_dist(median.rssm.feat(latent)).median()
    torch.testing.assert_close(played, expected)
    assert played.abs().max() < 0.99  # tanh of the actor's mean, given the filtered latent


def test_return_normalisation_divides_the_actor_returns_by_their_moving_range():
    plain, normed = make_agent(), make_agent("model.actor_return_norm=true")
    assert "return_range" not in plain.state_dict() and float(normed.state_dict()["return_range"]) == 0.0
    normed.load_state_dict(plain.state_dict(), strict=False)
    feats = torch.randn(6, 8, normed.rssm.feat_dim)
    weight = torch.rand(5, 8)
    big = torch.linspace(0, 1000, 40).reshape(5, 8)  # 5th-95th percentile range: 900
    spread = float(torch.quantile(big, 0.95) - torch.quantile(big, 0.05))
    loss_plain, _ = plain.actor_objective(plain.policy_dist(feats[:-1]), None, big, None, weight)
    loss_first, _ = normed.actor_objective(normed.policy_dist(feats[:-1]), None, big, None, weight)
    assert float(normed.return_range) == pytest.approx(0.01 * spread)  # the average starts at 0
    torch.testing.assert_close(loss_first, loss_plain / (0.01 * spread))
    normed.actor_objective(normed.policy_dist(feats[:-1]), None, big, None, weight)
    assert float(normed.return_range) == pytest.approx(0.01 * spread * (1 + 0.99))
    small = big / 1e4  # a range below 1 leaves the returns as they are
    fresh = make_agent("model.actor_return_norm=true")
    fresh.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(fresh.actor_objective(fresh.policy_dist(feats[:-1]), None, small, None, weight)[0],
                               plain.actor_objective(plain.policy_dist(feats[:-1]), None, small, None, weight)[0])


def test_adaptive_entropy_coefficient_moves_towards_the_target():
    plain, adaptive = make_agent(), make_agent("model.actor_entropy_target=-1.0", "model.actor_entropy=1e-2")
    assert "log_entropy_scale" not in plain.state_dict()  # off (the paper): the state dict is unchanged
    adaptive.load_state_dict(plain.state_dict(), strict=False)
    feats = torch.randn(6, 8, adaptive.rssm.feat_dim)
    weight, returns = torch.rand(5, 8), torch.randn(5, 8)
    torch.manual_seed(0)
    loss, entropy = adaptive.actor_objective(adaptive.policy_dist(feats[:-1]), None, returns, None, weight)
    # The first pass uses the starting coefficient: the loss of a fixed bonus of 1e-2 on the same draw.
    plain.config.actor_entropy = 1e-2
    torch.manual_seed(0)
    torch.testing.assert_close(loss, plain.actor_objective(plain.policy_dist(feats[:-1]), None, returns, None, weight)[0])
    # ... and then moves log(coefficient) by lr * (target - mean entropy).
    expected = torch.log(torch.tensor(1e-2)) + 1e-2 * (-1.0 - entropy.mean())
    torch.testing.assert_close(adaptive.log_entropy_scale, expected)
    # A fresh actor (pre-tanh std 5) is far less random than -1 nats: the coefficient grows, and the
    # gradient of the bonus lowers that std, towards the most random tanh-Normal.
    assert float(entropy.detach().mean()) < -2
    for _ in range(50):
        adaptive.actor_objective(adaptive.policy_dist(feats[:-1]), None, returns, None, weight)
    assert float(adaptive.log_entropy_scale.exp()) > 1e-2 * 1.5
    # The coefficient stays inside its bounds however far the entropy is from the target.
    far = make_agent("model.actor_entropy_target=1000.0", "model.actor_entropy_lr=100")
    far.actor_objective(far.policy_dist(feats[:-1]), None, returns, None, weight)
    assert float(far.log_entropy_scale) == 5.0
    with pytest.raises(Exception, match="actor_entropy_lr"):
        make_agent("model.actor_entropy_lr=0")
