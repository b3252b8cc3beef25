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

from lightning_dreamer.algos.dreamer import Dreamer, DreamerConfig
from lightning_dreamer.losses import actor_loss, free_nats, gaussian_kl
from lightning_dreamer.nets.blocks import ACTIVATIONS
from lightning_dreamer.nets.distributions import OneHotCategorical, TanhNormal, exploration_noise
from lightning_dreamer.nets.rssm import GaussianLatent
from lightning_dreamer.registry import register_algo


@dataclass
class DreamerV1Config(DreamerConfig):
    """Dreamer V1's model config (Hafner et al. 2020): the keyword arguments of ``DreamerV1(spec, **model)``.
    Defaults are the authors' DMC settings (``define_config``)."""

    # Gaussian latents of 30 dims, std = softplus(raw) + latent_min_std; ReLU convolutions of depth 32.
    stoch: int = 30
    latent_min_std: float = 0.1
    cnn_act: str = "relu"
    cnn_depth: int = 32
    # Hidden layers of the state encoder/decoder (state observations; not in the paper) and of the
    # heads (paper: reward 2, continuation 3, value 3, actor 4).
    mlp_layers: int = 3
    reward_layers: int = 2
    discount_layers: int = 3
    value_layers: int = 3
    actor_layers: int = 4
    # Free nats 3; the continuation loss ("pcont") scaled by 10 as in the authors' Atari/DMLab code.
    kl_free: float = 3.0
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {"kl": 1.0, "image": 1.0, "state": 1.0, "reward": 1.0, "discount": 10.0}
    )
    # tanh-Normal actor: mean = mean_scale * tanh(raw / mean_scale), std = softplus(raw + c) + min_std
    # with c chosen so that std = init_std at raw = 0.
    actor_init_std: float = 5.0
    actor_min_std: float = 1e-4
    actor_mean_scale: float = 5.0
    # The deterministic action (evaluation, the zoo) of the continuous actor: "mode" is DreamerV1's,
    # the most likely of 100 samples under the tanh-Normal density; "median" is tanh(mean), SAC's
    # choice. Once the pre-tanh std exceeds about 1, that density peaks at +-1 wherever the mean
    # is, so "mode" plays saturated bang-bang actions (see TanhNormal.mode).
    eval_action: str = "mode"
    # Entropy bonus on the actor objective (not in V1, which has none: 0.0 is the paper). The
    # tanh-Normal entropy includes log(1 - tanh(x)^2), so a small bonus keeps the actor off the
    # saturated +-1 actions where tanh passes almost no gradient.
    actor_entropy: float = 0.0
    # model.actor_return_norm and model.actor_entropy_target (the Dreamer core's; not in V1) keep that
    # bonus's weight whatever the returns' scale, and make its coefficient adaptive.
    # Exploration while collecting: additive Gaussian noise (continuous) or the probability of a
    # uniformly random action (discrete). amount * 0.5 ** (env_steps / expl_decay) if expl_decay > 0,
    # never below expl_min.
    expl_amount: float = 0.3
    expl_decay: float = 0.0
    expl_min: float = 0.0
    # Adam (epsilon of TF2's default, as in the authors' code), no weight decay; value learning rate.
    model_lr: float = 6e-4
    value_lr: float = 8e-5
    adam_eps: float = 1e-7
    weight_decay: float = 0.0

    LIMITS: ClassVar[dict] = {
        **DreamerConfig.LIMITS, "latent_min_std": ">=0", "cnn_act": tuple(ACTIVATIONS), "reward_layers": ">=0",
        "discount_layers": ">=0", "value_layers": ">=0", "actor_layers": ">=0", "actor_init_std": ">0",
        "actor_mean_scale": ">0", "eval_action": ("mode", "median"), "expl_amount": ">=0", "expl_decay": ">=0", "expl_min": ">=0", "value_lr": ">0",
    }


@register_algo("dreamer_v1")
class DreamerV1(Dreamer):
    """Dreamer V1: ``DreamerV1(spec, **model)`` with ``model`` the fields of ``DreamerV1Config``."""

    config_class = DreamerV1Config
    config: DreamerV1Config
    VALUE_TERM = "value"

    def make_latent(self):
        return GaussianLatent(self.config.stoch, self.config.latent_min_std)

    def world_model_options(self):
        m = self.config
        return {"cnn_act": m.cnn_act, "layer_norm_gru": False, "reward_layers": m.reward_layers,
                "discount_layers": m.discount_layers}

    def head_layers(self) -> tuple[int, int]:
        return self.config.actor_layers, self.config.value_layers

    def build(self) -> None:
        super().build()
        self._raw_init_std = math.log(math.expm1(self.config.actor_init_std))

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, eps=self.config.adam_eps, weight_decay=self.config.weight_decay,
                                **self.optimizer_impl())

    def value_lr(self) -> float:
        return self.config.value_lr

    def action_dist(self, out: torch.Tensor):
        out = out.float()
        if self.discrete:
            return OneHotCategorical(out)
        m = self.config
        mean, std = out.chunk(2, -1)
        mean = m.actor_mean_scale * torch.tanh(mean / m.actor_mean_scale)
        std = F.softplus(std + self._raw_init_std) + m.actor_min_std
        return TanhNormal(mean, std)

    # ------------------------------------------------------------------ acting
    def deterministic_action(self, dist) -> torch.Tensor:
        if self.config.eval_action == "median" and not self.discrete:
            return dist.median()
        return dist.mode()

    def exploration_amount(self) -> float:
        m = self.config
        amount = m.expl_amount
        if m.expl_decay > 0:
            amount *= 0.5 ** (self.env_steps / m.expl_decay)
        return max(amount, m.expl_min)

    def explore(self, action: torch.Tensor) -> torch.Tensor:
        """Additive Gaussian noise clipped to [-1, 1], or an ε-greedy random one-hot action."""
        return exploration_noise(action, self.exploration_amount(), self.discrete)

    # ------------------------------------------------------------------ learning
    def kl_loss(self, post, prior):
        kl = gaussian_kl(post["mean"], post["std"], prior["mean"], prior["std"])
        return free_nats(kl, self.config.kl_free), kl.detach()

    def actor_objective(self, dist, actions, returns, value, weight):
        """``-E[w_t R_t]``, its gradient through the imagined dynamics, reward and value alone."""
        m = self.config
        with torch.set_grad_enabled(m.actor_entropy != 0 or m.actor_entropy_target is not None):  # otherwise only logged
            entropy = dist.entropy()
        returns, _ = self.normalised_returns(returns)
        loss = actor_loss(None, entropy, returns, None, weight, reinforce=0.0,
                          entropy_scale=self.entropy_coefficient(entropy)).mean()
        return loss, entropy

    def update_logs(self):
        return {"expl/amount": self.exploration_amount(), **super().update_logs()}
