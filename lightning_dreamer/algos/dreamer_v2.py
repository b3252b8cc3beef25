"""Dreamer V2 (Hafner et al. 2021, "Mastering Atari with Discrete World Models").

What is specific to V2 and lives here: 32x32 categorical latents (nets/rssm.py), KL balancing,
the discount head, the actor gradient mix of REINFORCE and dynamics backprop with an entropy
bonus, and the slowly updated target critic. Defaults are the paper's DMC settings; configs/
holds the Atari ones.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dreamer.algos.base import RLModule
from lightning_dreamer.losses import (
    actor_loss,
    critic_loss,
    discount_target,
    gaussian_nll,
    kl_balanced,
    lambda_return,
    total_loss,
    trajectory_weights,
)
from lightning_dreamer.nets.blocks import MLP, ConvDecoder, ConvEncoder, activation
from lightning_dreamer.nets.distributions import OneHotCategorical, TruncatedNormal
from lightning_dreamer.nets.rssm import CategoricalRSSM
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


@contextmanager
def frozen(module: nn.Module):
    """Parameters get no gradient inside the block; gradients still flow *through* the module."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@register_algo("dreamer_v2")
class DreamerV2(RLModule):
    config_class = DreamerV2Config

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        m = self.cfg.model
        if m.reward_transform not in ("identity", "tanh"):
            raise ValueError(f"model.reward_transform must be 'identity' or 'tanh', got '{m.reward_transform}'")
        wm = nn.ModuleDict()
        embed_dim = 0
        if "pixels" in self.obs_shapes:
            channels = self.obs_shapes["pixels"][0]
            wm["image_encoder"] = ConvEncoder(channels, m.cnn_depth, m.act)
            embed_dim += wm["image_encoder"].out_dim
        if "state" in self.obs_shapes:
            dim = self.obs_shapes["state"][0]
            wm["state_encoder"] = nn.Sequential(MLP(dim, m.mlp_units, m.mlp_units, m.mlp_layers - 1, m.act), activation(m.act))
            embed_dim += m.mlp_units
        wm["rssm"] = CategoricalRSSM(self.action_dim, embed_dim, m.deter, m.stoch, m.classes, m.hidden, m.act)
        feat = wm["rssm"].feat_dim
        if "pixels" in self.obs_shapes:
            wm["image_decoder"] = ConvDecoder(feat, self.obs_shapes["pixels"][0], m.cnn_depth, m.act)
        if "state" in self.obs_shapes:
            wm["state_decoder"] = MLP(feat, self.obs_shapes["state"][0], m.mlp_units, m.mlp_layers, m.act)
        wm["reward"] = MLP(feat, 1, m.mlp_units, m.mlp_layers, m.act)
        if m.pred_discount:
            wm["discount"] = MLP(feat, 1, m.mlp_units, m.mlp_layers, m.act)
        self.world_model = wm
        self.actor = MLP(feat, self.action_dim * (1 if self.discrete else 2), m.mlp_units, m.mlp_layers, m.act)
        self.critic = MLP(feat, 1, m.mlp_units, m.mlp_layers, m.act)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.reinforce = m.actor_reinforce if m.actor_reinforce is not None else (1.0 if self.discrete else 0.0)
        expected = {"kl", "reward"} | {"image" if k == "pixels" else k for k in self.obs_shapes}
        expected |= {"discount"} if m.pred_discount else set()
        unknown = sorted(set(m.loss_scales) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"model.loss_scales has unknown terms {unknown}; allowed: {', '.join(LOSS_TERMS)}")
        missing = sorted(expected - set(m.loss_scales))
        if missing:
            raise ValueError(f"model.loss_scales lacks {missing}; this agent's loss terms are {sorted(expected)}")
        self.loss_scales = {k: float(m.loss_scales[k]) for k in expected}

    @property
    def rssm(self) -> CategoricalRSSM:
        return self.world_model["rssm"]

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
        parts = []
        if "pixels" in self.obs_shapes:
            parts.append(self.world_model["image_encoder"](obs["pixels"]))
        if "state" in self.obs_shapes:
            parts.append(self.world_model["state_encoder"](obs["state"].float()))
        return torch.cat(parts, -1)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, is_first, state, explore: bool = True):
        """One filtering step and an action. ``state`` is (latent, previous action) or None."""
        if state is None:
            state = (self.rssm.initial(is_first.shape[0], self.device), torch.zeros(is_first.shape[0], self.action_dim, device=self.device))
        latent, prev_action = state
        latent, _ = self.rssm.obs_step(latent, prev_action, self.encode(obs), is_first)
        dist = self.policy_dist(self.rssm.feat(latent))
        action = dist.sample() if explore else dist.mode()
        return action, (latent, action)

    # ------------------------------------------------------------------ learning
    def world_model_losses(self, batch):
        """Posterior states and the (B, T) loss dict of the world model."""
        m = self.cfg.model
        post, prior = self.rssm.observe(self.encode(batch), batch["action"], batch["is_first"])
        feat = self.rssm.feat(post)
        wm = self.world_model
        losses, metrics = {}, {}
        losses["kl"], metrics["kl"] = kl_balanced(post["logits"], prior["logits"], m.kl_balance, m.kl_free)
        if "pixels" in self.obs_shapes:
            target = batch["pixels"].float() / 255.0 - 0.5
            losses["image"] = gaussian_nll(wm["image_decoder"](feat), target, 3)
        if "state" in self.obs_shapes:
            losses["state"] = gaussian_nll(wm["state_decoder"](feat), batch["state"], 1)
        reward = batch["reward"].float()
        reward = torch.tanh(reward) if m.reward_transform == "tanh" else reward
        losses["reward"] = gaussian_nll(wm["reward"](feat).squeeze(-1), reward, 0)
        if m.pred_discount:
            losses["discount"] = F.binary_cross_entropy_with_logits(
                wm["discount"](feat).squeeze(-1).float(), discount_target(batch["is_terminal"]), reduction="none")
        return post, losses, metrics

    def imagine(self, start: dict[str, torch.Tensor]):
        """Roll the policy out in the model for ``horizon`` steps from every start state.

        Returns feats (H+1, N, F) for s0..sH and actions (H, N, A), a_t taken in s_t.
        """
        state, feats, actions = start, [self.rssm.feat(start)], []
        for _ in range(self.cfg.model.horizon):
            action = self.policy_dist(feats[-1].detach()).rsample()
            state = self.rssm.img_step(state, action.to(feats[-1].dtype))
            feats.append(self.rssm.feat(state))
            actions.append(action)
        return torch.stack(feats, 0), torch.stack(actions, 0)

    def behaviour_losses(self, post, is_terminal):
        m = self.cfg.model
        start = {k: v.detach().reshape(-1, *v.shape[2:]) for k, v in post.items()}
        start_cont = discount_target(is_terminal).reshape(-1) if m.pred_discount else torch.ones(start["deter"].shape[0], device=self.device)
        with frozen(self.world_model):
            feats, actions = self.imagine(start)
            reward = self.world_model["reward"](feats[1:]).squeeze(-1).float()
            if m.pred_discount:
                cont = m.discount * torch.sigmoid(self.world_model["discount"](feats[1:]).squeeze(-1).float())
            else:
                cont = torch.full_like(reward, m.discount)
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

    def _optimise(self, optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.cfg.model.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, batch, batch_idx):
        opt_model, opt_actor, opt_critic = self.optimizers()
        post, losses, metrics = self.world_model_losses(batch)
        model_loss = total_loss(losses, self.loss_scales)
        self._optimise(opt_model, model_loss)
        a_loss, c_loss, behaviour = self.behaviour_losses(post, batch["is_terminal"])
        self._optimise(opt_actor, a_loss)
        self._optimise(opt_critic, c_loss)
        if (self.updates + 1) % self.cfg.model.target_update_every == 0:
            with torch.no_grad():
                for t, s in zip(self.target_critic.parameters(), self.critic.parameters()):
                    t.lerp_(s, self.cfg.model.target_fraction)
        logs = {f"loss/{k}": v.detach().float().mean() for k, v in losses.items()}
        logs.update({"loss/model": model_loss.detach(), "loss/actor": a_loss.detach(), "loss/critic": c_loss.detach(),
                     "kl/value": metrics["kl"].mean(), **behaviour})
        self.log_dict(logs, on_step=True, on_epoch=False)
        return model_loss.detach()

    # ------------------------------------------------------------------ videos
    @torch.no_grad()
    def openloop_video(self, batch, context: int = 5, count: int = 4) -> torch.Tensor:
        """Real frames | model frames | error, side by side for ``count`` sequences.

        The first ``context`` frames are reconstructions from observed frames (posterior);
        the rest are predicted open loop from the recorded actions alone. Returns uint8
        ``(T, H*3, W*count, C)``.
        """
        if "pixels" not in self.obs_shapes:
            raise ValueError("open-loop videos need pixel observations")
        b = {k: v[:count].to(self.device) for k, v in batch.items()}
        embed = self.encode({k: v[:, :context] for k, v in b.items() if k in self.obs_keys})
        post, _ = self.rssm.observe(embed, b["action"][:, :context], b["is_first"][:, :context])
        last = {k: v[:, -1] for k, v in post.items()}
        prior = self.rssm.imagine_with_actions(last, b["action"][:, context:])
        decode = self.world_model["image_decoder"]
        model = torch.cat([decode(self.rssm.feat(post)), decode(self.rssm.feat(prior))], 1).float() + 0.5
        truth = b["pixels"].float() / 255.0
        error = (model - truth + 1) / 2
        video = torch.cat([truth, model.clamp(0, 1), error.clamp(0, 1)], -2)  # (N, T, C, 3H, W)
        video = video.permute(1, 2, 3, 0, 4).reshape(*video.shape[1:4], -1)  # (T, C, 3H, N*W)
        video = (video * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return video.expand(*video.shape[:3], 3) if video.shape[-1] == 1 else video
