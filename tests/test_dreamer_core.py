"""What V1 and V2 share through the Dreamer core (algos/dreamer.py), tested once for both."""

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, fake_batch, make_agent
from lightning_dreamer.losses import lambda_return

DISCOUNT = ["model.pred_discount=true", "model.loss_scales={kl: 1, image: 1, state: 1, reward: 1, discount: 1}"]
CASES = [  # (algorithm, overrides): continuous and discrete actions, and V2's two actor gradients
    ("dreamer_v1", ["env.name=lightning_dreamer/Point-v0"]),
    ("dreamer_v1", ["env.name=lightning_dreamer/PointDiscrete-v0"]),
    ("dreamer_v2", ["model.actor_reinforce=0.0"]),
    ("dreamer_v2", ["model.actor_reinforce=1.0"]),
    ("dreamer_v2", ["env.name=lightning_dreamer/PointDiscrete-v0"]),
]


def case_id(part):
    """A test id from a case's algorithm and overrides."""
    return part if isinstance(part, str) else "-".join(part)


@pytest.mark.parametrize("algo, overrides", CASES, ids=case_id)
def test_actor_gradient_reaches_the_actor_not_the_world_model_or_value(algo, overrides):
    agent = make_agent(algo, *overrides, *DISCOUNT)
    batch = fake_batch(agent)
    post, losses, _ = agent.world_model_losses(batch)
    assert set(losses) == {"kl", "image", "state", "reward", "discount"} and all(v.shape == (3, 6) for v in losses.values())
    agent.zero_grad()
    behaviour, _ = agent.behaviour_losses(post, batch["is_terminal"])
    assert set(behaviour) == {"actor", agent.VALUE_TERM}
    behaviour["actor"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.world_model.parameters()), "actor loss leaked into the world model"
    assert all(p.grad is None for p in agent.critic.parameters()), "actor loss leaked into the value network"
    assert all(p.requires_grad for p in [*agent.world_model.parameters(), *agent.critic.parameters()]), "left frozen"
    behaviour[agent.VALUE_TERM].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.critic.parameters())
    assert all(p.grad is None for p in agent.world_model.parameters())


@pytest.mark.parametrize("algo, overrides", CASES, ids=case_id)
def test_actor_loss_reuses_the_imagination_pass_and_changes_no_number(algo, overrides):
    """The actor's loss takes the policy's distribution from the pass that chose the imagined
    actions; its loss, entropy and gradients equal those of a second actor pass over the stop-
    gradient features of the trajectories (the textbook formulation, which costs an extra actor
    forward and backward)."""
    agent = make_agent(algo, *overrides, *DISCOUNT, "model.actor_entropy=1e-2")
    batch = fake_batch(agent)
    with torch.no_grad():
        post, _, _ = agent.world_model_losses(batch)
    start, _ = agent.world_model.imagination_starts(post, batch["is_terminal"])

    def actor_loss(second_pass: bool):
        torch.manual_seed(3)
        agent.zero_grad()
        feats, actions, dist = agent.imagine(start)
        if second_pass:
            dist = agent.policy_dist(feats[:-1].detach())
        reward, cont = agent.world_model.predicted_reward_and_continuation(feats[1:], agent.config.discount)
        value = agent.target_value(feats).squeeze(-1).float()
        returns = lambda_return(reward, value[1:], cont, agent.config.lambda_)
        loss, entropy = agent.actor_objective(dist, actions, returns, value, torch.ones_like(returns))
        loss.backward()
        return loss.detach(), entropy.detach(), [p.grad.clone() for p in agent.actor.parameters()]

    reused, twice = actor_loss(False), actor_loss(True)
    torch.testing.assert_close(reused[0], twice[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reused[1], twice[1], rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in reused[2])
    for a, b in zip(reused[2], twice[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algo", ["dreamer_v1", "dreamer_v2", "world_models"])
def test_the_agent_builds_from_its_spec_and_config_alone(algo):
    """No environment, no run config: the agent saves exactly its spec and model config, and an
    agent rebuilt from those hyperparameters holds the same weights."""
    trained = make_agent(algo)
    hparams = dict(trained.hparams)
    assert set(hparams) == {"spec"} | {f.name for f in dataclasses.fields(trained.config)}
    rebuilt = type(trained)(**hparams)
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.run_cfg is None and rebuilt.spec == trained.spec
    for key, value in trained.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key])


ACTOR_OPTIONS = [  # continuous actions: V1's tanh-Normal, V2's truncated Normal by either gradient
    ("dreamer_v1", ["model.actor_entropy=0.0"]),
    ("dreamer_v2", ["model.actor_reinforce=0.0"]),
    ("dreamer_v2", ["model.actor_reinforce=1.0"]),
]


def actor_pass_inputs(agent, seed=0):
    """The policy's distribution at 5 x 8 random features, actions drawn from it, random values
    (6, 8) and trajectory weights (5, 8)."""
    torch.manual_seed(seed)
    feats = torch.randn(6, 8, agent.rssm.feat_dim)
    dist = agent.policy_dist(feats[:-1])
    return dist, dist.sample(), torch.randn(6, 8), torch.rand(5, 8)


def objective(agent, returns, seed=0):
    """The actor loss and entropy on ``actor_pass_inputs(seed)`` (the same draws for every call)."""
    dist, actions, value, weight = actor_pass_inputs(agent, seed)
    torch.manual_seed(seed + 1)  # the tanh-Normal's entropy is a one-sample estimate
    return agent.actor_objective(dist, actions, returns, value, weight)


@pytest.mark.parametrize("algo, overrides", ACTOR_OPTIONS, ids=case_id)
def test_return_normalisation_divides_the_actor_returns_by_their_moving_range(algo, overrides):
    plain, normed = make_agent(algo, *overrides), make_agent(algo, *overrides, "model.actor_return_norm=true")
    assert "return_range" not in plain.state_dict() and float(normed.state_dict()["return_range"]) == 0.0
    normed.load_state_dict(plain.state_dict(), strict=False)
    big = torch.linspace(0, 1000, 40).reshape(5, 8)  # 5th-95th percentile range: 900
    spread = float(torch.quantile(big, 0.95) - torch.quantile(big, 0.05))
    # The first pass divides by 0.01 * spread, the moving average's first value (it starts at 0);
    # with REINFORCE (V2) the baseline as well: the loss of the plain agent on divided returns and values.
    first, _ = objective(normed, big)
    assert float(normed.return_range) == pytest.approx(0.01 * spread)
    dist, actions, value, weight = actor_pass_inputs(plain)
    torch.manual_seed(1)
    torch.testing.assert_close(first, plain.actor_objective(dist, actions, big / (0.01 * spread), value / (0.01 * spread), weight)[0])
    if algo == "dreamer_v1" or "model.actor_reinforce=0.0" in overrides:  # the value is no baseline there
        torch.testing.assert_close(first, objective(plain, big / (0.01 * spread))[0])
    objective(normed, big)
    assert float(normed.return_range) == pytest.approx(0.01 * spread * (1 + 0.99))
    small = big / 1e4  # a range below 1 leaves the returns as they are
    fresh = make_agent(algo, *overrides, "model.actor_return_norm=true")
    fresh.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(objective(fresh, small)[0], objective(plain, small)[0])


@pytest.mark.parametrize("algo, overrides", ACTOR_OPTIONS, ids=case_id)
def test_adaptive_entropy_coefficient_moves_towards_the_target(algo, overrides):
    plain = make_agent(algo, *overrides)
    adaptive = make_agent(algo, *overrides, "model.actor_entropy_target=-1.0", "model.actor_entropy=1e-2")
    assert "log_entropy_scale" not in plain.state_dict()  # off (the papers): the state dict is unchanged
    adaptive.load_state_dict(plain.state_dict(), strict=False)
    returns = torch.randn(5, 8)
    loss, entropy = objective(adaptive, returns)
    # The first pass uses the starting coefficient: the loss of a fixed bonus of 1e-2 on the same draws ...
    plain.config.actor_entropy = 1e-2
    torch.testing.assert_close(loss, objective(plain, returns)[0])
    # ... and then moves log(coefficient) by lr * (target - mean entropy).
    expected = torch.log(torch.tensor(1e-2)) + 1e-2 * (-1.0 - entropy.detach().mean())
    torch.testing.assert_close(adaptive.log_entropy_scale, expected)
    assert torch.equal(adaptive.update_logs()["actor/entropy_scale"], adaptive.log_entropy_scale.exp())
    # Its direction: a fresh V1 actor (pre-tanh std 5) is far less random than -1 nats, a fresh V2
    # actor (std about 1.1 inside [-1, 1]) far more, so the coefficient grows for V1 and decays for V2.
    for _ in range(50):
        objective(adaptive, returns)
    if algo == "dreamer_v1":
        assert float(entropy.detach().mean()) < -2 and float(adaptive.log_entropy_scale.exp()) > 1e-2 * 1.5
    else:
        assert float(entropy.detach().mean()) > 0 and float(adaptive.log_entropy_scale.exp()) < 1e-2 / 1.5
    # The coefficient stays inside its bounds however far the entropy is from the target.
    far = make_agent(algo, *overrides, "model.actor_entropy_target=1000.0", "model.actor_entropy_lr=100")
    objective(far, returns)
    assert float(far.log_entropy_scale) == 5.0
    with pytest.raises(Exception, match="actor_entropy_lr"):
        make_agent(algo, "model.actor_entropy_lr=0")


@pytest.mark.parametrize("algo, overrides", ACTOR_OPTIONS, ids=case_id)
def test_the_adaptive_entropy_bonus_pulls_a_saturated_actor_back(algo, overrides):
    """An actor pushed to the +1 bound with its smallest std: its entropy is under -1.3 nats, so the
    adaptive coefficient grows, and Adam steps on the actor loss (zero returns: the bonus alone)
    bring the entropy back above -1.2, off the bound: the bonus's gradient still reaches the
    saturated tanh and sigmoid. (Adam's steps do not depend on the gradient's scale, so a fixed
    coefficient would do the last part too; the coefficient matters against the returns' gradient.)"""
    agent = make_agent(algo, *overrides, "model.actor_entropy_target=-1.0", "model.actor_entropy=1e-2",
                       "model.actor_entropy_lr=0.1")
    with torch.no_grad():  # the output layer's bias: a large mean, the smallest std
        last = agent.actor[-1]
        last.weight.mul_(0.01)
        last.bias.copy_(torch.tensor([4.0, -10.0]))
    start = float(objective(agent, torch.zeros(5, 8))[1].detach().mean())
    assert start < -1.3
    optimiser = torch.optim.Adam(agent.actor.parameters(), lr=1e-2)
    largest = 0.0
    for step in range(200):
        optimiser.zero_grad()
        loss, entropy = objective(agent, torch.zeros(5, 8), seed=step)
        loss.backward()
        optimiser.step()
        largest = max(largest, float(agent.log_entropy_scale.exp()))
    # The coefficient grew while the actor sat at the bound; the actor left it (and once above the
    # target the coefficient decays again).
    assert largest > 1e-2 * 1.5 and float(entropy.detach().mean()) > -1.2


def test_total_loss_needs_exactly_the_scaled_terms():
    from lightning_dreamer.losses import total_loss

    one = torch.ones(2, 3)
    assert total_loss({"kl": one, "image": 2 * one}, {"kl": 0.5, "image": 1.0}).item() == pytest.approx(2.5)
    with pytest.raises(KeyError, match="unscaled: \\['image'\\]"):
        total_loss({"kl": one, "image": one}, {"kl": 1.0})
    with pytest.raises(KeyError, match="never computed: \\['reward'\\]"):
        total_loss({"kl": one}, {"kl": 1.0, "reward": 1.0})


@pytest.mark.slow
def test_building_an_agent_imports_no_simulator_and_builds_no_env():
    """``DreamerV2(spec, **cfg)`` in a fresh process: dm_control and the ALE stay unimported, and
    make_env (made to fail) is never called."""
    code = """
import sys
import lightning_dreamer.envs as envs
def refuse(*args, **kwargs):
    raise AssertionError("an environment was built")
envs.make_env = refuse
import lightning_dreamer.algos.base as base
base.make_env = refuse
from lightning_dreamer.algos.dreamer_v2 import DreamerV2
from lightning_dreamer.algos.dreamer_v1 import DreamerV1
from lightning_dreamer.algos.world_models import WorldModels
from lightning_dreamer.spec import EnvSpec
spec = EnvSpec(obs_shapes={"pixels": (3, 64, 64)}, action_dim=1, discrete=False, action_low=(-1.0,), action_high=(1.0,))
for algo in (DreamerV2, DreamerV1, WorldModels):
    agent = algo(spec, **({"deter": 32, "hidden": 32, "cnn_depth": 4, "mlp_units": 32} if algo is not WorldModels else {"z_dim": 4}))
loaded = [m for m in ("dm_control", "ale_py") if m in sys.modules]  # (torchrl.envs imports mujoco itself)
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
