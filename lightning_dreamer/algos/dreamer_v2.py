"""Dreamer V2 (Hafner et al. 2021, "Mastering Atari with Discrete World Models").

What is specific to V2 and lives here: 32x32 categorical latents (nets/rssm.py), KL balancing,
the discount head, the actor gradient mix of REINFORCE and dynamics backprop with an entropy
bonus, and the slowly updated target critic. Defaults are the paper's DMC settings; configs/
holds the Atari ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from lightning_dreamer.algos.base import RLModule
from lightning_dreamer.losses import (
    actor_loss,
    critic_loss,
    kl_balanced,
    lambda_return,
    loss_scales_for,
    total_loss,
    trajectory_weights,
)
from lightning_dreamer.nets.blocks import ACTIVATIONS, MLP, frozen
from lightning_dreamer.nets.distributions import OneHotCategorical, TruncatedNormal
from lightning_dreamer.nets.rssm import RSSM, CategoricalLatent
from lightning_dreamer.nets.world_model import REWARD_TRANSFORMS, WorldModel
from lightning_dreamer.registry import register_algo


LOSS_TERMS = ("kl", "image", "state", "reward", "discount")


@dataclass
class DreamerV2Config:
    # --- world model sizes (paper DMC: deter 200, hidden 200; Atari: 600; 32 x 32 latents)
    deter: int = 200
    hidden: int = 200
    stoch: int = 32
    classes: int = 32
    act: str = "elu"
    # Conv encoder/decoder depth multiplier (paper: 48).
    cnn_depth: int = 48
    # Units and hidden layers of every MLP: state encoder/decoder, reward, discount, actor, critic.
    mlp_units: int = 400
    mlp_layers: int = 4
    # --- world-model loss
    # Predict episode ends with a discount head (paper: on for Atari, off for DMC).
    pred_discount: bool = False
    # Transform rewards before the reward head learns them: "identity" or "tanh" (Atari).
    reward_transform: str = "identity"
    kl_balance: float = 0.8
    kl_free: float = 1.0
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {"kl": 1.0, "image": 1.0, "state": 1.0, "reward": 1.0, "discount": 1.0}
    )
    # --- behaviour
    horizon: int = 15
    discount: float = 0.99
    lambda_: float = 0.95
    # rho of paper eq. 6: 1 = REINFORCE, 0 = dynamics backprop; null = auto (1 discrete, 0 continuous).
    actor_reinforce: float | None = None
    # eta: entropy bonus (paper: 1e-3 Atari, 1e-4 DMC).
    actor_entropy: float = 1e-4
    actor_min_std: float = 0.1
    # Target critic: copy the critic into it every N updates (fraction 1 = hard copy).
    target_update_every: int = 100
    target_fraction: float = 1.0
    # --- optimisation (Adam with decoupled weight decay, gradient norm clipping)
    model_lr: float = 3e-4
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    adam_eps: float = 1e-5
    weight_decay: float = 1e-6
    grad_clip: float = 100.0

    LIMITS: ClassVar[dict] = {
        "deter": ">=1", "hidden": ">=1", "stoch": ">=1", "classes": ">=1", "act": tuple(ACTIVATIONS), "cnn_depth": ">=1",
        "mlp_units": ">=1", "mlp_layers": ">=0", "reward_transform": REWARD_TRANSFORMS, "kl_balance": "[0,1]",
        "kl_free": ">=0", "loss_scales": ">=0", "horizon": ">=1", "discount": "(0,1]", "lambda_": "[0,1]",
        "actor_reinforce": "[0,1]", "actor_entropy": ">=0", "actor_min_std": ">=0", "target_update_every": ">=1",
        "target_fraction": "(0,1]", "model_lr": ">0", "actor_lr": ">0", "critic_lr": ">0", "adam_eps": ">0",
        "weight_decay": ">=0", "grad_clip": ">=0",
    }


@register_algo("dreamer_v2")
class DreamerV2(RLModule):
    config_class = DreamerV2Config

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        m = self.cfg.model
        self.world_model = WorldModel(
            self.obs_shapes, self.action_dim, CategoricalLatent(m.stoch, m.classes), deter=m.deter, hidden=m.hidden,
            cnn_depth=m.cnn_depth, mlp_units=m.mlp_units, mlp_layers=m.mlp_layers, act=m.act, cnn_act=m.act,
            layer_norm_gru=True, pred_discount=m.pred_discount, reward_transform=m.reward_transform)
        feat = self.world_model.rssm.feat_dim
        self.actor = MLP(feat, self.action_dim * (1 if self.discrete else 2), m.mlp_units, m.mlp_layers, m.act)
        self.critic = MLP(feat, 1, m.mlp_units, m.mlp_layers, m.act)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.reinforce = m.actor_reinforce if m.actor_reinforce is not None else (1.0 if self.discrete else 0.0)
        self.loss_scales = loss_scales_for(m.loss_scales, {"kl"} | self.world_model.loss_terms(), LOSS_TERMS)

    @property
    def rssm(self) -> RSSM:
        return self.world_model.rssm

    def configure_optimizers(self):
        m = self.cfg.model
        adam = lambda params, lr: torch.optim.AdamW(params, lr=lr, eps=m.adam_eps, weight_decay=m.weight_decay)  # noqa: E731
        return [adam(self.world_model.parameters(), m.model_lr), adam(self.actor.parameters(), m.actor_lr),
                adam(self.critic.parameters(), m.critic_lr)]

    def policy_dist(self, feat: torch.Tensor):
        out = self.actor(feat).float()
        if self.discrete:
            return OneHotCategorical(out)
        mean, std = out.chunk(2, -1)
        return TruncatedNormal(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + self.cfg.model.actor_min_std)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.world_model.encode(obs)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, is_first, state, explore: bool = True):
        """One filtering step and an action. ``state`` is (latent, previous action) or None."""
        latent = self.world_model.filter_step(obs, is_first, state)
        dist = self.policy_dist(self.rssm.feat(latent))
        action = dist.sample() if explore else dist.mode()
        return action, (latent, action)

    # ------------------------------------------------------------------ learning
    def world_model_losses(self, batch):
        """Posterior states and the (B, T) loss dict of the world model."""
        m = self.cfg.model
        post, prior = self.world_model.observe(batch)
        losses = self.world_model.prediction_losses(self.rssm.feat(post), batch)
        losses["kl"], kl_value = kl_balanced(post["logits"], prior["logits"], m.kl_balance, m.kl_free)
        return post, losses, {"kl": kl_value}

    def imagine(self, start: dict[str, torch.Tensor]):
        """Feats (H+1, N, F) of s0..sH and actions (H, N, A) of the policy in the model."""
        return self.world_model.imagine(start, lambda feat: self.policy_dist(feat).rsample(), self.cfg.model.horizon)

    def behaviour_losses(self, post, is_terminal):
        m = self.cfg.model
        start, start_cont = self.world_model.imagination_starts(post, is_terminal)
        with frozen(self.world_model):
            feats, actions = self.imagine(start)
            reward, cont = self.world_model.predicted_reward_and_continuation(feats[1:], m.discount)
            value = self.target_critic(feats).squeeze(-1).float()
            returns = lambda_return(reward, value[1:], cont, m.lambda_)
            weight = trajectory_weights(cont, start_cont).detach()
            dist = self.policy_dist(feats[:-1].detach())
            entropy = dist.entropy()
            a_loss = actor_loss(dist.log_prob(actions.detach()), entropy, returns, value[:-1], weight,
                                self.reinforce, m.actor_entropy).mean()
        c_loss = critic_loss(self.critic(feats[:-1].detach()).squeeze(-1), returns, weight).mean()
        metrics = {"imag/return": returns.mean().detach(), "imag/reward": reward.mean().detach(),
                   "actor/entropy": entropy.mean().detach()}
        return a_loss, c_loss, metrics

    def training_step(self, batch, batch_idx):
        m = self.cfg.model
        opt_model, opt_actor, opt_critic = self.optimizers()
        post, losses, metrics = self.world_model_losses(batch)
        model_loss = total_loss(losses, self.loss_scales)
        self.optimise(opt_model, model_loss, m.grad_clip)
        a_loss, c_loss, behaviour = self.behaviour_losses(post, batch["is_terminal"])
        self.optimise(opt_actor, a_loss, m.grad_clip)
        self.optimise(opt_critic, c_loss, m.grad_clip)
        if (self.updates + 1) % m.target_update_every == 0:
            with torch.no_grad():
                for t, s in zip(self.target_critic.parameters(), self.critic.parameters()):
                    t.lerp_(s, m.target_fraction)
        logs = {f"loss/{k}": v.detach().float().mean() for k, v in losses.items()}
        logs.update({"loss/model": model_loss.detach(), "loss/actor": a_loss.detach(), "loss/critic": c_loss.detach(),
                     "kl/value": metrics["kl"].mean(), **behaviour})
        self.log_update(logs)
        return model_loss.detach()
