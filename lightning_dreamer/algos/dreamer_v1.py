"""Dreamer V1 (Hafner et al. 2020, "Dream to Control: Learning Behaviors by Latent Imagination").

What is specific to V1 and lives here: the RSSM with diagonal-Gaussian latents and a plain GRU
(nets/rssm.py), KL(posterior || prior) with free nats and no balancing, a tanh-Normal actor
(one-hot straight-through for discrete actions) trained only by backpropagating λ-returns
through the learned dynamics, a value network regressed on those returns (no target network),
and additive Gaussian (continuous) or ε-greedy (discrete) exploration noise when acting.
Defaults are the paper's DMC settings (the authors' ``define_config``).

Imagination and return indices follow losses/returns.py, shared with V2: the actor and the
value at imagined state s_t are trained towards R_t, which starts with the reward of the
transition a_t causes. (DreamerV1's code drops s0 and pairs s_t with the reward of arriving
there; the objective is the same up to that one-step shift.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from lightning_dreamer.algos.base import RLModule
from lightning_dreamer.losses import (
    actor_loss,
    critic_loss,
    free_nats,
    gaussian_kl,
    lambda_return,
    loss_scales_for,
    total_loss,
    trajectory_weights,
)
from lightning_dreamer.nets.blocks import ACTIVATIONS, MLP, frozen
from lightning_dreamer.nets.distributions import OneHotCategorical, TanhNormal, exploration_noise
from lightning_dreamer.nets.rssm import RSSM, GaussianLatent
from lightning_dreamer.nets.world_model import REWARD_TRANSFORMS, WorldModel
from lightning_dreamer.registry import register_algo

LOSS_TERMS = ("kl", "image", "state", "reward", "discount")


@dataclass
class DreamerV1Config:
    # --- world model (paper: deter 200, stoch 30, hidden 200, CNN depth 32 with ReLU, 400-unit ELU MLPs)
    deter: int = 200
    hidden: int = 200
    stoch: int = 30
    # Minimum standard deviation of the latent Gaussians (std = softplus(raw) + min_std).
    latent_min_std: float = 0.1
    act: str = "elu"
    cnn_act: str = "relu"
    cnn_depth: int = 32
    mlp_units: int = 400
    # Hidden layers of the state encoder/decoder (state observations; not in the paper).
    mlp_layers: int = 3
    # Hidden layers of the heads (paper: reward 2, continuation 3, value 3, actor 4).
    reward_layers: int = 2
    discount_layers: int = 3
    value_layers: int = 3
    actor_layers: int = 4
    # --- world-model loss
    # Continuation head ("pcont"; the paper's Atari/DMLab runs), its loss scaled by loss_scales.discount.
    pred_discount: bool = False
    reward_transform: str = "identity"
    # Free nats: the KL term is max(mean KL, kl_free).
    kl_free: float = 3.0
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {"kl": 1.0, "image": 1.0, "state": 1.0, "reward": 1.0, "discount": 10.0}
    )
    # --- behaviour
    horizon: int = 15
    discount: float = 0.99
    lambda_: float = 0.95
    # tanh-Normal actor: mean = mean_scale * tanh(raw / mean_scale), std = softplus(raw + c) + min_std
    # with c chosen so that std = init_std at raw = 0.
    actor_init_std: float = 5.0
    actor_min_std: float = 1e-4
    actor_mean_scale: float = 5.0
    # Entropy bonus on the actor objective (not in V1, which has none: 0.0 is the paper). The
    # tanh-Normal entropy includes log(1 - tanh(x)^2), so a small bonus keeps the actor off the
    # saturated +-1 actions where tanh passes almost no gradient.
    actor_entropy: float = 0.0
    # Exploration while collecting: additive Gaussian noise (continuous) or the probability of a
    # uniformly random action (discrete). amount * 0.5 ** (env_steps / expl_decay) if expl_decay > 0,
    # never below expl_min.
    expl_amount: float = 0.3
    expl_decay: float = 0.0
    expl_min: float = 0.0
    # --- optimisation (Adam, epsilon of TF2's default as in the authors' code; norm clipping)
    model_lr: float = 6e-4
    actor_lr: float = 8e-5
    value_lr: float = 8e-5
    adam_eps: float = 1e-7
    weight_decay: float = 0.0
    grad_clip: float = 100.0

    LIMITS: ClassVar[dict] = {
        "deter": ">=1", "hidden": ">=1", "stoch": ">=1", "latent_min_std": ">=0", "act": tuple(ACTIVATIONS),
        "cnn_act": tuple(ACTIVATIONS), "cnn_depth": ">=1", "mlp_units": ">=1", "mlp_layers": ">=0", "reward_layers": ">=0",
        "discount_layers": ">=0", "value_layers": ">=0", "actor_layers": ">=0", "reward_transform": REWARD_TRANSFORMS,
        "kl_free": ">=0", "loss_scales": ">=0", "horizon": ">=1", "discount": "(0,1]", "lambda_": "[0,1]",
        "actor_init_std": ">0", "actor_min_std": ">=0", "actor_mean_scale": ">0", "actor_entropy": ">=0",
        "expl_amount": ">=0", "expl_decay": ">=0", "expl_min": ">=0", "model_lr": ">0", "actor_lr": ">0",
        "value_lr": ">0", "adam_eps": ">0", "weight_decay": ">=0", "grad_clip": ">=0",
    }


@register_algo("dreamer_v1")
class DreamerV1(RLModule):
    config_class = DreamerV1Config

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        m = self.cfg.model
        self.world_model = WorldModel(
            self.obs_shapes, self.action_dim, GaussianLatent(m.stoch, m.latent_min_std), deter=m.deter,
            hidden=m.hidden, cnn_depth=m.cnn_depth, mlp_units=m.mlp_units, mlp_layers=m.mlp_layers, act=m.act,
            cnn_act=m.cnn_act, layer_norm_gru=False, reward_layers=m.reward_layers, discount_layers=m.discount_layers,
            pred_discount=m.pred_discount, reward_transform=m.reward_transform)
        feat = self.world_model.rssm.feat_dim
        self.actor = MLP(feat, self.action_dim * (1 if self.discrete else 2), m.mlp_units, m.actor_layers, m.act)
        self.critic = MLP(feat, 1, m.mlp_units, m.value_layers, m.act)
        self.loss_scales = loss_scales_for(m.loss_scales, {"kl"} | self.world_model.loss_terms(), LOSS_TERMS)
        self._raw_init_std = math.log(math.expm1(m.actor_init_std))

    @property
    def rssm(self) -> RSSM:
        return self.world_model.rssm

    def configure_optimizers(self):
        m = self.cfg.model
        adam = lambda params, lr: torch.optim.Adam(params, lr=lr, eps=m.adam_eps, weight_decay=m.weight_decay)  # noqa: E731
        return [adam(self.world_model.parameters(), m.model_lr), adam(self.actor.parameters(), m.actor_lr),
                adam(self.critic.parameters(), m.value_lr)]

    def policy_dist(self, feat: torch.Tensor):
        out = self.actor(feat).float()
        if self.discrete:
            return OneHotCategorical(out)
        m = self.cfg.model
        mean, std = out.chunk(2, -1)
        mean = m.actor_mean_scale * torch.tanh(mean / m.actor_mean_scale)
        std = F.softplus(std + self._raw_init_std) + m.actor_min_std
        return TanhNormal(mean, std)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.world_model.encode(obs)

    # ------------------------------------------------------------------ acting
    def exploration_amount(self) -> float:
        m = self.cfg.model
        amount = m.expl_amount
        if m.expl_decay > 0:
            amount *= 0.5 ** (self.env_steps / m.expl_decay)
        return max(amount, m.expl_min)

    def explore(self, action: torch.Tensor) -> torch.Tensor:
        """Additive Gaussian noise clipped to [-1, 1], or an ε-greedy random one-hot action."""
        return exploration_noise(action, self.exploration_amount(), self.discrete)

    @torch.no_grad()
    def act(self, obs, is_first, state, explore: bool = True):
        """One filtering step and an action. ``state`` is (latent, previous action) or None."""
        latent = self.world_model.filter_step(obs, is_first, state)
        dist = self.policy_dist(self.rssm.feat(latent))
        action = self.explore(dist.sample()) if explore else dist.mode()
        return action, (latent, action)

    # ------------------------------------------------------------------ learning
    def world_model_losses(self, batch):
        """Posterior states and the (B, T) loss dict of the world model."""
        post, prior = self.world_model.observe(batch)
        losses = self.world_model.prediction_losses(self.rssm.feat(post), batch)
        kl = gaussian_kl(post["mean"], post["std"], prior["mean"], prior["std"])
        losses["kl"] = free_nats(kl, self.cfg.model.kl_free)
        return post, losses, {"kl": kl.detach()}

    def imagine(self, start: dict[str, torch.Tensor]):
        """Feats (H+1, N, F) of s0..sH and actions (H, N, A) of the policy in the model."""
        return self.world_model.imagine(start, lambda feat: self.policy_dist(feat).rsample(), self.cfg.model.horizon)

    def behaviour_losses(self, post, is_terminal):
        """Actor loss ``-E[w_t R_t]`` with gradients through the imagined dynamics, reward and
        value (their parameters frozen), and the value regression on sg(R_t)."""
        m = self.cfg.model
        start, start_cont = self.world_model.imagination_starts(post, is_terminal)
        with frozen(self.world_model), frozen(self.critic):
            feats, _ = self.imagine(start)
            reward, cont = self.world_model.predicted_reward_and_continuation(feats[1:], m.discount)
            value = self.critic(feats).squeeze(-1).float()
            returns = lambda_return(reward, value[1:], cont, m.lambda_)
            weight = trajectory_weights(cont, start_cont).detach()
            with torch.set_grad_enabled(m.actor_entropy != 0):  # otherwise only logged
                entropy = self.policy_dist(feats[:-1].detach()).entropy()
            a_loss = actor_loss(None, entropy, returns, None, weight, reinforce=0.0,
                                entropy_scale=m.actor_entropy).mean()
        c_loss = critic_loss(self.critic(feats[:-1].detach()).squeeze(-1), returns, weight).mean()
        metrics = {"imag/return": returns.mean().detach(), "imag/reward": reward.mean().detach(),
                   "imag/value": value.mean().detach(), "actor/entropy": entropy.mean().detach()}
        return a_loss, c_loss, metrics

    def training_step(self, batch, batch_idx):
        m = self.cfg.model
        opt_model, opt_actor, opt_value = self.optimizers()
        post, losses, metrics = self.world_model_losses(batch)
        model_loss = total_loss(losses, self.loss_scales)
        self.optimise(opt_model, model_loss, m.grad_clip)
        a_loss, c_loss, behaviour = self.behaviour_losses(post, batch["is_terminal"])
        self.optimise(opt_actor, a_loss, m.grad_clip)
        self.optimise(opt_value, c_loss, m.grad_clip)
        logs = {f"loss/{k}": v.detach().float().mean() for k, v in losses.items()}
        logs.update({"loss/model": model_loss.detach(), "loss/actor": a_loss.detach(), "loss/value": c_loss.detach(),
                     "kl/value": metrics["kl"].mean(), "expl/amount": self.exploration_amount(), **behaviour})
        self.log_update(logs)
        return model_loss.detach()
