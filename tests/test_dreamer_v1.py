"""Dreamer V1 networks: Gaussian RSSM, where the actor's gradient goes, exploration."""

import pytest
import torch

from lightning_dreamer.config import load_config, to_dict
from lightning_dreamer.registry import get_algo

from conftest import ROOT
from test_model import fake_batch


def make_agent(*overrides):
    cfg = load_config([f"{ROOT}/configs/tiny_point_v1.yaml"], list(overrides))
    return get_algo("dreamer_v1")(to_dict(cfg))


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


@pytest.mark.parametrize("env", ["lightning_dreamer/Point-v0", "lightning_dreamer/PointDiscrete-v0"])
def test_actor_gradient_through_imagined_dynamics_not_into_world_model_or_value(env):
    agent = make_agent(f"env.name={env}", "model.pred_discount=true",
                       "model.loss_scales={kl: 1, image: 1, state: 1, reward: 1, discount: 10}")
    batch = fake_batch(agent)
    post, losses, _ = agent.world_model_losses(batch)
    assert set(losses) == {"kl", "image", "state", "reward", "discount"}
    agent.zero_grad()
    actor_loss, value_loss, _ = agent.behaviour_losses(post, batch["is_terminal"])
    actor_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.world_model.parameters()), "actor loss leaked into the world model"
    assert all(p.grad is None for p in agent.critic.parameters()), "actor loss leaked into the value network"
    assert all(p.requires_grad for p in agent.world_model.parameters()) and all(p.requires_grad for p in agent.critic.parameters())
    value_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.critic.parameters())
    assert all(p.grad is None for p in agent.world_model.parameters())
    # Cut the imagined dynamics: V1 has no REINFORCE or entropy term, so the actor's gradient disappears.
    original = agent.rssm.img_step
    agent.rssm.img_step = lambda state, action: {k: v.detach() for k, v in original(state, action).items()}
    actor_loss, _, _ = agent.behaviour_losses(post, batch["is_terminal"])
    assert not actor_loss.requires_grad
    # The optional entropy bonus (not in the paper) reaches the actor without the dynamics.
    agent.cfg.model.actor_entropy = 1e-2
    agent.zero_grad()
    actor_loss, _, _ = agent.behaviour_losses(post, batch["is_terminal"])
    actor_loss.backward()
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
