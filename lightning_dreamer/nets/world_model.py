"""The Dreamer world model shared by V1 and V2: encoders, RSSM, decoders and prediction heads.

What differs between the two (latent type, GRU, activations, head depths) comes in as
arguments; the KL term and everything about behaviour learning stay in the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dreamer.losses import discount_target, gaussian_nll
from lightning_dreamer.nets.blocks import MLP, ConvDecoder, ConvEncoder, activation
from lightning_dreamer.nets.rssm import RSSM

REWARD_TRANSFORMS = ("identity", "tanh")


class WorldModel(nn.Module):
    """Observation keys ``pixels`` (conv encoder/decoder) and/or ``state`` (MLP encoder/decoder).

    Submodules (their names are the checkpoint keys): ``image_encoder``, ``state_encoder``,
    ``rssm``, ``image_decoder``, ``state_decoder``, ``reward`` and, with ``pred_discount``,
    ``discount``.
    """

    def __init__(self, obs_shapes: dict[str, tuple], action_dim: int, latent, *, deter: int, hidden: int,
                 cnn_depth: int, mlp_units: int, mlp_layers: int, act: str = "elu", cnn_act: str = "elu",
                 layer_norm_gru: bool = True, reward_layers: int | None = None, discount_layers: int | None = None,
                 pred_discount: bool = False, reward_transform: str = "identity"):
        super().__init__()
        if reward_transform not in REWARD_TRANSFORMS:
            raise ValueError(f"model.reward_transform must be one of {', '.join(REWARD_TRANSFORMS)}, got '{reward_transform}'")
        self.obs_shapes, self.action_dim = dict(obs_shapes), action_dim
        self.pred_discount, self.reward_transform = pred_discount, reward_transform
        embed_dim = 0
        if "pixels" in obs_shapes:
            self.image_encoder = ConvEncoder(obs_shapes["pixels"][0], cnn_depth, cnn_act)
            embed_dim += self.image_encoder.out_dim
        if "state" in obs_shapes:
            self.state_encoder = nn.Sequential(MLP(obs_shapes["state"][0], mlp_units, mlp_units, mlp_layers - 1, act), activation(act))
            embed_dim += mlp_units
        self.rssm = RSSM(action_dim, embed_dim, latent, deter, hidden, act, layer_norm_gru)
        feat = self.rssm.feat_dim
        if "pixels" in obs_shapes:
            self.image_decoder = ConvDecoder(feat, obs_shapes["pixels"][0], cnn_depth, cnn_act)
        if "state" in obs_shapes:
            self.state_decoder = MLP(feat, obs_shapes["state"][0], mlp_units, mlp_layers, act)
        self.reward = MLP(feat, 1, mlp_units, mlp_layers if reward_layers is None else reward_layers, act)
        if pred_discount:
            self.discount = MLP(feat, 1, mlp_units, mlp_layers if discount_layers is None else discount_layers, act)

    def loss_terms(self) -> set[str]:
        """Names of the reconstruction/prediction terms ``prediction_losses`` returns."""
        terms = {"reward"} | {"image" if k == "pixels" else k for k in self.obs_shapes}
        return terms | ({"discount"} if self.pred_discount else set())

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if "pixels" in self.obs_shapes:
            parts.append(self.image_encoder(obs["pixels"]))
        if "state" in self.obs_shapes:
            parts.append(self.state_encoder(obs["state"].float()))
        return torch.cat(parts, -1)

    def observe(self, batch: dict[str, torch.Tensor]):
        """Posterior and prior states of a (B, T) batch."""
        return self.rssm.observe(self.encode(batch), batch["action"], batch["is_first"])

    def filter_step(self, obs: dict[str, torch.Tensor], is_first: torch.Tensor, state):
        """Acting: one posterior step on a new observation. ``state`` is (latent, previous action)
        or None at the start; returns the new latent."""
        if state is None:
            batch, device = is_first.shape[0], is_first.device
            state = (self.rssm.initial(batch, device), torch.zeros(batch, self.action_dim, device=device))
        latent, prev_action = state
        return self.rssm.obs_step(latent, prev_action, self.encode(obs), is_first)[0]

    def prediction_losses(self, feat: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(B, T) negative log-likelihoods of the observations, rewards and continuation flags."""
        losses = {}
        if "pixels" in self.obs_shapes:
            target = batch["pixels"].float() / 255.0 - 0.5
            losses["image"] = gaussian_nll(self.image_decoder(feat), target, 3)
        if "state" in self.obs_shapes:
            losses["state"] = gaussian_nll(self.state_decoder(feat), batch["state"], 1)
        reward = batch["reward"].float()
        reward = torch.tanh(reward) if self.reward_transform == "tanh" else reward
        losses["reward"] = gaussian_nll(self.reward(feat).squeeze(-1), reward, 0)
        if self.pred_discount:
            losses["discount"] = F.binary_cross_entropy_with_logits(
                self.discount(feat).squeeze(-1).float(), discount_target(batch["is_terminal"]), reduction="none")
        return losses

    def imagination_starts(self, post: dict[str, torch.Tensor], is_terminal: torch.Tensor):
        """Every posterior state of a (B, T) batch as an imagination start (flattened, detached),
        and its continuation weight: 0 where the real state was terminal (with a discount head)."""
        start = {k: v.detach().reshape(-1, *v.shape[2:]) for k, v in post.items()}
        if self.pred_discount:
            return start, discount_target(is_terminal).reshape(-1)
        return start, torch.ones(start["deter"].shape[0], device=start["deter"].device)

    def imagine(self, start: dict[str, torch.Tensor], policy: Callable, horizon: int):
        """Roll ``policy(feat) -> action`` out in the model for ``horizon`` steps from every start state.

        The policy sees stop-gradient features (as in both papers); gradients reach the actor
        through the actions' effect on the following states. Returns feats (H+1, N, F) for
        s0..sH and actions (H, N, A), a_t taken in s_t.
        """
        state, feats, actions = start, [self.rssm.feat(start)], []
        for _ in range(horizon):
            action = policy(feats[-1].detach())
            state = self.rssm.img_step(state, action.to(feats[-1].dtype))
            feats.append(self.rssm.feat(state))
            actions.append(action)
        return torch.stack(feats, 0), torch.stack(actions, 0)

    def predicted_reward_and_continuation(self, feats: torch.Tensor, discount: float):
        """Reward and ``gamma * P(continue)`` predicted at the given (imagined) features."""
        reward = self.reward(feats).squeeze(-1).float()
        if self.pred_discount:
            cont = discount * torch.sigmoid(self.discount(feats).squeeze(-1).float())
        else:
            cont = torch.full_like(reward, discount)
        return reward, cont

    @torch.no_grad()
    def openloop_video(self, batch, context: int = 5, count: int = 4) -> torch.Tensor:
        """Real frames | model frames | error, side by side for ``count`` sequences.

        The first ``context`` frames are reconstructions from observed frames (posterior);
        the rest are predicted open loop from the recorded actions alone. Returns uint8
        ``(T, H*3, W*count, C)``::

            frames:   x0 ... x_c-1 | x_c      x_c+1   ...        (c = context)
            posterior: observed    |
            prior:                 | a_c -> s_c -> ...           imagined from the last posterior state
                                     with actions[:, c:] (entry t's action leads to x_t)
        """
        if "pixels" not in self.obs_shapes:
            raise ValueError("open-loop videos need pixel observations")
        device = next(self.parameters()).device
        b = {k: v[:count].to(device) for k, v in batch.items()}
        embed = self.encode({k: v[:, :context] for k, v in b.items() if k in self.obs_shapes})
        post, _ = self.rssm.observe(embed, b["action"][:, :context], b["is_first"][:, :context])
        last = {k: v[:, -1] for k, v in post.items()}
        prior = self.rssm.imagine_with_actions(last, b["action"][:, context:])
        model = torch.cat([self.image_decoder(self.rssm.feat(post)), self.image_decoder(self.rssm.feat(prior))], 1).float() + 0.5
        truth = b["pixels"].float() / 255.0
        error = (model - truth + 1) / 2
        video = torch.cat([truth, model.clamp(0, 1), error.clamp(0, 1)], -2)  # (N, T, C, 3H, W)
        video = video.permute(1, 2, 3, 0, 4).reshape(*video.shape[1:4], -1)  # (T, C, 3H, N*W)
        video = (video * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return video.expand(*video.shape[:3], 3) if video.shape[-1] == 1 else video
