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
