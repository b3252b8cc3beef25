"""The Dreamer core: what Dreamer V1 (Hafner et al. 2020, "Dream to Control") and V2 (Hafner et al.
2021, "Mastering Atari with Discrete World Models") share.

Both learn a world model (nets/world_model.py: encoders, RSSM, decoders, reward and continuation
heads) from replayed ``(B, T)`` sequences, and an actor and a value function inside it, on imagined
trajectories that start from every posterior state of the batch. One update is three optimiser
steps: world model, actor, value. What differs lives in dreamer_v1.py and dreamer_v2.py, the way a
diff of the two papers reads: the latent (``make_latent``), the KL term (``kl_loss``), the actor's
distribution (``action_dist``) and objective (``actor_objective``), the value target network
(``target_value``, ``after_update``), exploration (``explore``) and the optimiser (``optimizer``).

Time indices of one imagined trajectory (losses/returns.py has the λ-return's own diagram)::

    states:   [s0] -> [s1] -> ... -> [sH]       feats (H+1, N, F), s0 = a posterior state
    actions:     a0      a1  ...  aH-1          actions (H, N, A); a_t leads from s_t to s_t+1
    rewards:         r1      r2  ...  rH        reward of arriving at s_t+1, paired with a_t
    returns:   R0      R1    ...  RH-1          the actor at s_t and the value v(s_t) learn R_t
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch

from lightning_dreamer.algos.base import RLModule
from lightning_dreamer.losses import critic_loss, lambda_return, loss_scales_for, total_loss, trajectory_weights
from lightning_dreamer.nets.blocks import ACTIVATIONS, MLP, frozen
from lightning_dreamer.nets.rssm import RSSM
from lightning_dreamer.nets.world_model import REWARD_TRANSFORMS, WorldModel

# World-model loss terms a Dreamer may have (which ones an agent has depends on its observations
# and on model.pred_discount); model.loss_scales holds a scale for each.
LOSS_TERMS = ("kl", "image", "state", "reward", "discount")


@dataclass
class DreamerConfig:
    """The model options V1 and V2 share; each paper's config (dreamer_v1.py, dreamer_v2.py) adds its
    own and sets its defaults. Defaults here are both papers' DMC settings where they agree."""

    # --- world model: GRU state (deter), hidden layer, stochastic latent size, activation
    deter: int = 200
    hidden: int = 200
    stoch: int = 32
    act: str = "elu"
    # Conv encoder/decoder depth multiplier.
    cnn_depth: int = 48
    # Units and hidden layers of the MLPs (state encoder/decoder and, unless set apart, the heads).
    mlp_units: int = 400
    mlp_layers: int = 4
    # --- world-model loss
    # Predict episode ends with a continuation/discount head (the papers' Atari runs; off for DMC).
    pred_discount: bool = False
    # Transform rewards before the reward head learns them: "identity" or "tanh" (Atari).
    reward_transform: str = "identity"
    # Free nats: the KL term is max(KL, kl_free).
    kl_free: float = 1.0
    # A scale for each world-model loss term (LOSS_TERMS); the agent's active terms must all have one.
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {"kl": 1.0, "image": 1.0, "state": 1.0, "reward": 1.0, "discount": 1.0}
    )
    # --- behaviour: imagination horizon, discount, lambda of the λ-returns, actor entropy bonus and min std
    horizon: int = 15
    discount: float = 0.99
    lambda_: float = 0.95
    actor_entropy: float = 1e-4
    actor_min_std: float = 0.1
    # Two actor options that neither paper has (off by default: the papers). actor_return_norm:
    # DreamerV3's return normalisation; the λ-returns the actor maximises (and, with REINFORCE, its
    # baseline) are divided by max(1, S), S an exponential moving average (decay 0.99) of their
    # 5th-95th percentile range, so that the entropy bonus keeps its weight whatever the scale of the
    # returns. The value network still regresses the raw returns.
    actor_return_norm: bool = False
    # An adaptive entropy coefficient (SAC's automatic temperature, Haarnoja et al. 2018). None: the
    # coefficient is actor_entropy, fixed. A number H*: actor_entropy is where the coefficient starts
    # (at least 1e-6), and after each actor pass log(coefficient) moves by
    # actor_entropy_lr * (H* - the mean entropy of the imagined states), so it grows while the policy
    # is less random than H* and decays while it is more. SAC's choice is H* = -(action dims). For
    # scale, per action dimension: V1's tanh-Normal saturated at +-1 about -12; V2's truncated Normal
    # at its 0.1 minimum std -0.88 inside [-1, 1] and -1.57 with its mean at a bound (half a Normal).
    actor_entropy_target: float | None = None
    actor_entropy_lr: float = 1e-2
    # --- optimisation: world model and actor learning rates, Adam epsilon, weight decay, norm clipping
    model_lr: float = 3e-4
    actor_lr: float = 8e-5
    adam_eps: float = 1e-5
    weight_decay: float = 1e-6
    grad_clip: float = 100.0

    LIMITS: ClassVar[dict] = {
        "deter": ">=1", "hidden": ">=1", "stoch": ">=1", "act": tuple(ACTIVATIONS), "cnn_depth": ">=1",
        "mlp_units": ">=1", "mlp_layers": ">=0", "reward_transform": REWARD_TRANSFORMS, "kl_free": ">=0",
        "loss_scales": ">=0", "horizon": ">=1", "discount": "(0,1]", "lambda_": "[0,1]", "actor_entropy": ">=0",
        "actor_min_std": ">=0", "actor_entropy_lr": ">0", "model_lr": ">0", "actor_lr": ">0", "adam_eps": ">0", "weight_decay": ">=0",
        "grad_clip": ">=0",
    }


class Dreamer(RLModule):
    """World model + actor + value trained in imagination; subclasses hold the paper's differences."""

    # Name of the value loss term: "critic" (V2) or "value" (V1), logged as loss/<name>.
    VALUE_TERM: ClassVar[str] = "value"

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        m = self.config
        self.world_model = WorldModel(
            self.obs_shapes, self.action_dim, self.make_latent(), deter=m.deter, hidden=m.hidden, cnn_depth=m.cnn_depth,
            mlp_units=m.mlp_units, mlp_layers=m.mlp_layers, act=m.act, pred_discount=m.pred_discount,
            reward_transform=m.reward_transform, **self.world_model_options())
        feat = self.world_model.rssm.feat_dim
        actor_layers, value_layers = self.head_layers()
        self.actor = MLP(feat, self.action_dim * (1 if self.discrete else 2), m.mlp_units, actor_layers, m.act)
        self.critic = MLP(feat, 1, m.mlp_units, value_layers, m.act)
        self.loss_scales = loss_scales_for(m.loss_scales, {"kl"} | self.world_model.loss_terms(), LOSS_TERMS)
        self.behaviour_terms = {"actor", self.VALUE_TERM}
        # Buffers only when the options are on, so that the papers' state dicts stay as they are.
        if m.actor_return_norm:
            self.register_buffer("return_range", torch.zeros(()))
        if m.actor_entropy_target is not None:  # the log of the adaptive coefficient
            self.register_buffer("log_entropy_scale", torch.tensor(math.log(max(m.actor_entropy, 1e-6))))

    def make_latent(self):
        raise NotImplementedError

    def world_model_options(self) -> dict[str, Any]:
        """Keyword arguments of WorldModel beyond the shared sizes."""
        return {}

    def head_layers(self) -> tuple[int, int]:
        """Hidden layers of the actor and of the value network."""
        return self.config.mlp_layers, self.config.mlp_layers

    @property
    def rssm(self) -> RSSM:
        return self.world_model.rssm

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError

    def optimizer_impl(self) -> dict[str, Any]:
        """Adam's implementation: multi-tensor (foreach) kernels on a GPU, torch's default elsewhere.
        (Not ``fused``: Lightning's mixed-precision plugins refuse to clip a fused optimizer's gradients.)"""
        return {"foreach": True} if self.device.type == "cuda" else {}

    def value_lr(self) -> float:
        """Learning rate of the value network (its config key differs between the papers)."""
        raise NotImplementedError

    def configure_optimizers(self):
        m = self.config
        return [self.optimizer(self.world_model.parameters(), m.model_lr), self.optimizer(self.actor.parameters(), m.actor_lr),
                self.optimizer(self.critic.parameters(), self.value_lr())]

    def policy_dist(self, feat: torch.Tensor):
        """The actor's action distribution at ``feat``."""
        return self.action_dist(self.actor(feat))

    def action_dist(self, out: torch.Tensor):
        """The action distribution that the actor's raw output ``out`` parameterises."""
        raise NotImplementedError

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.world_model.encode(obs)

    def openloop_video(self, batch, context: int = 5, count: int = 4) -> torch.Tensor:
        """Real | predicted | error frames as uint8 (T, 3H, count*W, C); see the world model."""
        return self.world_model.openloop_video(batch, context, count)

    # ------------------------------------------------------------------ acting
    def explore(self, action: torch.Tensor) -> torch.Tensor:
        """Exploration on top of a sampled action while collecting (V2: none, the sample is it)."""
        return action

    @torch.no_grad()
    def act(self, obs, is_first, state, explore: bool = True):
        """One filtering step and an action. ``state`` is (latent, previous action) or None."""
        latent = self.world_model.filter_step(obs, is_first, state)
        dist = self.policy_dist(self.rssm.feat(latent))
        action = self.explore(dist.sample()) if explore else self.deterministic_action(dist)
        return action, (latent, action)

    def deterministic_action(self, dist) -> torch.Tensor:
        """The action of the deterministic policy (evaluation, the zoo): the distribution's mode."""
        return dist.mode()

    # ------------------------------------------------------------------ learning
    def kl_loss(self, post: dict, prior: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(the KL loss term, the KL value for logging) of posterior and prior."""
        raise NotImplementedError

    def world_model_losses(self, batch):
        """Posterior states, the (B, T) loss dict of the world model, and metrics."""
        post, prior = self.world_model.observe(batch)
        losses = self.world_model.prediction_losses(self.rssm.feat(post), batch)
        losses["kl"], kl_value = self.kl_loss(post, prior)
        return post, losses, {"kl": kl_value}

    def imagine(self, start: dict[str, torch.Tensor]):
        """Feats (H+1, N, F) of s0..sH, actions (H, N, A) of the policy in the model, and the
        policy's distribution at s0..s(H-1), (H, N).

        The actor runs once per imagined state: the actor's loss reuses the outputs that chose the
        actions (on the same stop-gradient features) instead of a second actor pass over the
        trajectories. That saves an actor forward, and with dynamics backprop an actor backward as
        well, and changes no number (tests/test_dreamer_core.py). On a 2-core CPU: 10 % of an update
        of the V1 and V2 state recipes, 2 % of an Atari-size V2 update (REINFORCE)."""
        outs: list[torch.Tensor] = []

        def policy(feat: torch.Tensor) -> torch.Tensor:
            outs.append(self.actor(feat))
            return self.action_dist(outs[-1]).rsample()

        feats, actions = self.world_model.imagine(start, policy, self.config.horizon)
        return feats, actions, self.action_dist(torch.stack(outs, 0))

    def target_value(self, feats: torch.Tensor) -> torch.Tensor:
        """The value network whose estimates bootstrap the λ-returns (V1: the value itself)."""
        return self.critic(feats)

    def actor_objective(self, dist, actions, returns, value, weight) -> tuple[torch.Tensor, torch.Tensor]:
        """(the actor loss, the policy entropy per imagined state), given the policy's distribution
        ``dist`` at s0..s(H-1) on stop-gradient features (``imagine``'s third output)."""
        raise NotImplementedError

    def entropy_coefficient(self, entropy: torch.Tensor) -> float | torch.Tensor:
        """The entropy bonus's coefficient for this actor pass: ``model.actor_entropy``, or with
        ``model.actor_entropy_target`` the adaptive one, which this pass's entropy then updates (a
        gradient step on SAC's temperature loss, in log space, bounded to [e^-15, e^5])."""
        m = self.config
        if m.actor_entropy_target is None:
            return m.actor_entropy
        log_scale = cast(torch.Tensor, self.log_entropy_scale)
        scale = log_scale.exp()  # a new tensor: the in-place update below leaves it as it is
        log_scale.add_(m.actor_entropy_lr * (m.actor_entropy_target - entropy.detach().float().mean())).clamp_(-15.0, 5.0)
        return scale

    def normalised_returns(self, returns: torch.Tensor, baseline: torch.Tensor | None = None):
        """(returns, baseline) for the actor, divided by max(1, S) with ``model.actor_return_norm``
        (S: the moving average of the returns' 5th-95th percentile range, updated here; DreamerV3's
        ``Moments``, decay 0.99, starting from 0), as they are otherwise."""
        if not self.config.actor_return_norm:
            return returns, baseline
        flat = returns.detach().float().flatten()
        spread = torch.quantile(flat, 0.95) - torch.quantile(flat, 0.05)
        moving = cast(torch.Tensor, self.return_range)
        moving.mul_(0.99).add_(0.01 * spread)
        scale = moving.clamp(min=1.0)
        return returns / scale, (None if baseline is None else baseline / scale)

    def behaviour_losses(self, post, is_terminal):
        """The actor and value losses on trajectories imagined from every posterior state, and metrics.

        The world model and the value network are frozen for the actor's pass: gradients flow
        through them to the actor (dynamics backprop) but do not change them."""
        start, start_cont = self.world_model.imagination_starts(post, is_terminal)
        with frozen(self.world_model), frozen(self.critic):
            a_loss, feats, returns, weight, metrics = self.passes["actor"](start, start_cont)
        losses = {"actor": a_loss, self.VALUE_TERM: self.passes["value"](feats, returns, weight)}
        if set(losses) != self.behaviour_terms:
            raise KeyError(f"behaviour losses {sorted(losses)} differ from this agent's terms {sorted(self.behaviour_terms)}")
        return losses, metrics

    # ------------------------------------------------------------------ the three passes of an update
    # Each is tensor work alone (no Python decision on a tensor's value, no host synchronisation),
    # so that ``compile_passes`` can hand each to torch.compile (and, on a GPU, CUDA graphs).
    def model_pass(self, batch):
        """World-model forward: (posterior states, the scaled total loss, logs of its terms)."""
        post, losses, metrics = self.world_model_losses(batch)
        model_loss = total_loss(losses, self.loss_scales)
        logs = {f"loss/{k}": v.detach().float().mean() for k, v in losses.items()}
        logs.update({"loss/model": model_loss.detach(), "kl/value": metrics["kl"].mean()})
        return post, model_loss, logs

    def actor_pass(self, start, start_cont):
        """Imagination from the start states, λ-returns and the actor loss: (loss, detached feats,
        returns, trajectory weights, metrics). The caller freezes the world model and the value."""
        m = self.config
        feats, actions, dist = self.imagine(start)
        reward, cont = self.world_model.predicted_reward_and_continuation(feats[1:], m.discount)
        value = self.target_value(feats).squeeze(-1).float()
        returns = lambda_return(reward, value[1:], cont, m.lambda_)
        weight = trajectory_weights(cont, start_cont).detach()
        a_loss, entropy = self.actor_objective(dist, actions, returns, value, weight)
        metrics = {"imag/return": returns.mean().detach(), "imag/reward": reward.mean().detach(),
                   "imag/value": value.mean().detach(), "actor/entropy": entropy.mean().detach()}
        return a_loss, feats.detach(), returns.detach(), weight, metrics

    def value_pass(self, feats, returns, weight):
        """The value network's regression on the λ-returns at s0..s(H-1)."""
        return critic_loss(self.critic(feats[:-1]).squeeze(-1), returns, weight).mean()

    @property
    def passes(self) -> dict[str, Any]:
        """The three passes an update runs: the methods above, or their compiled versions."""
        return self.__dict__.get("_compiled_passes") or {"model": self.model_pass, "actor": self.actor_pass, "value": self.value_pass}

    def compile_passes(self, mode: str | None, backend: str = "inductor") -> None:
        """Run the update's passes through ``torch.compile(mode=mode)`` from now on (None: eager).

        ``mode="reduce-overhead"`` on a GPU also captures each pass (forward and backward) in CUDA
        graphs. Losses and gradients are those of the eager passes (tests/test_fast_path.py); the
        random draws differ unless ``torch._inductor.config.fallback_random`` is set."""
        if mode is None:
            self.__dict__.pop("_compiled_passes", None)
            return
        eager: dict[str, Callable[..., Any]] = {"model": self.model_pass, "actor": self.actor_pass, "value": self.value_pass}
        # Kept out of nn.Module's attributes (and so out of state_dict, deepcopy and pickling).
        self.__dict__["_compiled_passes"] = {k: torch.compile(f, mode=mode, backend=backend) for k, f in eager.items()}

    def after_update(self) -> None:
        """Called after each update's three optimiser steps (V2: the target critic)."""

    def update_logs(self) -> dict[str, Any]:
        """Scalars of this algorithm to log with every update's losses."""
        if self.config.actor_entropy_target is not None:
            return {"actor/entropy_scale": cast(torch.Tensor, self.log_entropy_scale).exp()}
        return {}

    def training_step(self, batch, batch_idx):
        m = self.config
        opt_model, opt_actor, opt_value = self.optimizers()
        if "_compiled_passes" in self.__dict__ and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # last update's graph outputs are no longer read
        post, model_loss, logs = self.passes["model"](batch)
        self.optimise(opt_model, model_loss, m.grad_clip)
        behaviour, behaviour_metrics = self.behaviour_losses(post, batch["is_terminal"])
        self.optimise(opt_actor, behaviour["actor"], m.grad_clip)
        self.optimise(opt_value, behaviour[self.VALUE_TERM], m.grad_clip)
        self.after_update()
        logs.update({f"loss/{k}": v.detach() for k, v in behaviour.items()})
        logs.update({**behaviour_metrics, **self.update_logs()})
        self.log_update(logs)
        return model_loss.detach()
