"""Dreamer V2 (Hafner et al. 2021, "Mastering Atari with Discrete World Models").

What differs from V1 and lives here (the rest is the Dreamer core, algos/dreamer.py): 32x32
categorical latents with a layer-normalised GRU, KL balancing, the actor as a truncated Normal or
one-hot categorical trained by a mix of REINFORCE and dynamics backprop (paper eq. 6) with an
entropy bonus, a slowly updated target critic that bootstraps the λ-returns, and AdamW. The
discount head is the core's (``pred_discount``). Defaults are the paper's DMC settings; configs/
holds the Atari ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch

from lightning_dreamer.algos.dreamer import Dreamer, DreamerConfig
from lightning_dreamer.losses import actor_loss, kl_balanced
from lightning_dreamer.nets.distributions import OneHotCategorical, TruncatedNormal
from lightning_dreamer.nets.rssm import CategoricalLatent
from lightning_dreamer.registry import register_algo


@dataclass
class DreamerV2Config(DreamerConfig):
    """Dreamer V2's model config (Hafner et al. 2021): the keyword arguments of ``DreamerV2(spec, **model)``.
    The shared options (DreamerConfig) keep their defaults: the paper's DMC settings."""

    # 32 categorical latents of 32 classes each (stoch x classes; paper Atari and DMC).
    classes: int = 32
    # KL balancing: the prior learns from alpha of the KL, the posterior from 1 - alpha.
    kl_balance: float = 0.8
    # rho of paper eq. 6: 1 = REINFORCE, 0 = dynamics backprop; null = auto (1 discrete, 0 continuous).
    actor_reinforce: float | None = None
    # Target critic: copy the critic into it every N updates (fraction 1 = hard copy).
    target_update_every: int = 100
    target_fraction: float = 1.0
    # Critic learning rate (AdamW: Adam with decoupled weight decay).
    critic_lr: float = 8e-5

    LIMITS: ClassVar[dict] = {
        **DreamerConfig.LIMITS, "classes": ">=1", "kl_balance": "[0,1]", "actor_reinforce": "[0,1]",
        "target_update_every": ">=1", "target_fraction": "(0,1]", "critic_lr": ">0",
    }


@register_algo("dreamer_v2")
class DreamerV2(Dreamer):
    """Dreamer V2: ``DreamerV2(spec, **model)`` with ``model`` the fields of ``DreamerV2Config``."""

    config_class = DreamerV2Config
    config: DreamerV2Config
    VALUE_TERM = "critic"

    def make_latent(self):
        return CategoricalLatent(self.config.stoch, self.config.classes)

    def world_model_options(self):
        return {"cnn_act": self.config.act, "layer_norm_gru": True}

    def build(self) -> None:
        super().build()
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        m = self.config
        self.reinforce = m.actor_reinforce if m.actor_reinforce is not None else (1.0 if self.discrete else 0.0)

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, eps=self.config.adam_eps, weight_decay=self.config.weight_decay,
                                **self.optimizer_impl())

    def value_lr(self) -> float:
        return self.config.critic_lr

    def action_dist(self, out: torch.Tensor):
        out = out.float()
        if self.discrete:
            return OneHotCategorical(out)
        mean, std = out.chunk(2, -1)
        return TruncatedNormal(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + self.config.actor_min_std)

    def kl_loss(self, post, prior):
        return kl_balanced(post["logits"], prior["logits"], self.config.kl_balance, self.config.kl_free)

    def target_value(self, feats: torch.Tensor) -> torch.Tensor:
        return self.target_critic(feats)

    def actor_objective(self, dist, actions, returns, value, weight):
        """rho * REINFORCE (baseline: the target critic) + (1 - rho) * dynamics backprop + entropy
        (model.actor_return_norm and model.actor_entropy_target, not in V2, as the core says)."""
        entropy = dist.entropy()
        returns, baseline = self.normalised_returns(returns, value[:-1])
        loss = actor_loss(dist.log_prob(actions.detach()), entropy, returns, baseline, weight,
                          self.reinforce, self.entropy_coefficient(entropy)).mean()
        return loss, entropy

    def after_update(self) -> None:
        """Move the target critic towards the critic every ``target_update_every`` updates."""
        m = self.config
        if (self.updates + 1) % m.target_update_every == 0:
            with torch.no_grad():
                for t, s in zip(self.target_critic.parameters(), self.critic.parameters()):
                    t.lerp_(s, m.target_fraction)
