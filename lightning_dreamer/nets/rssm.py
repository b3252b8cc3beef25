"""Recurrent state-space model (RSSM) with categorical latents (DreamerV2).

A state is a dict of tensors::

    deter:  (..., deter)            deterministic GRU state h_t
    stoch:  (..., stoch, classes)   one-hot sample z_t (straight-through gradients)
    logits: (..., stoch, classes)   the distribution z_t was drawn from

Time indices, as stored in replay (entry t holds the action that *led to* obs t)::

    # action:       0      a1     a2     a3      (a_t taken before x_t; zero at episode start)
    # observation:  x0     x1     x2     x3
    # deter:        h0 --> h1 --> h2 --> h3      h_t = GRU(h_{t-1}, [z_{t-1}, a_t])
    # prior:        ^z0    ^z1    ^z2    ^z3     p(z_t | h_t)
    # posterior:    z0     z1     z2     z3      q(z_t | h_t, x_t)

``is_first[t]`` resets (h, z, a) to zero before step t, so a sequence may start an episode.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_dreamer.nets.blocks import MLP, LayerNormGRUCell, activation
from lightning_dreamer.nets.distributions import straight_through_onehot


class CategoricalRSSM(nn.Module):
    def __init__(self, action_dim: int, embed_dim: int, deter: int = 1024, stoch: int = 32, classes: int = 32,
                 hidden: int = 1024, act: str = "elu"):
        super().__init__()
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.img_in = nn.Sequential(nn.Linear(stoch * classes + action_dim, hidden), activation(act))
        self.gru = LayerNormGRUCell(hidden, deter)
        self.prior_net = MLP(deter, stoch * classes, hidden, 1, act)
        self.post_net = MLP(deter + embed_dim, stoch * classes, hidden, 1, act)

    @property
    def feat_dim(self) -> int:
        return self.deter + self.stoch * self.classes

    def initial(self, batch: int, device=None) -> dict[str, torch.Tensor]:
        dtype = torch.get_default_dtype()
        return {
            "deter": torch.zeros(batch, self.deter, device=device, dtype=dtype),
            "stoch": torch.zeros(batch, self.stoch, self.classes, device=device, dtype=dtype),
            "logits": torch.zeros(batch, self.stoch, self.classes, device=device, dtype=dtype),
        }

    @staticmethod
    def feat(state: dict[str, torch.Tensor]) -> torch.Tensor:
        stoch = state["stoch"]
        return torch.cat([state["deter"], stoch.reshape(*stoch.shape[:-2], -1).to(state["deter"].dtype)], -1)

    def _latent(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logits.reshape(*logits.shape[:-1], self.stoch, self.classes)
        return {"logits": logits, "stoch": straight_through_onehot(logits)}

    def img_step(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        stoch = state["stoch"].reshape(*state["stoch"].shape[:-2], -1)
        x = self.img_in(torch.cat([stoch.to(action.dtype), action], -1))
        deter = self.gru(x, state["deter"].to(x.dtype))
        return {"deter": deter, **self._latent(self.prior_net(deter))}

    def obs_step(self, state, action, embed, is_first):
        """One filtering step. Returns (posterior, prior)."""
        keep = (~is_first).to(action.dtype).unsqueeze(-1)
        action = action * keep
        state = {
            "deter": state["deter"] * keep,
            "stoch": state["stoch"] * keep.unsqueeze(-1),
            "logits": state["logits"] * keep.unsqueeze(-1),
        }
        prior = self.img_step(state, action)
        logits = self.post_net(torch.cat([prior["deter"], embed.to(prior["deter"].dtype)], -1))
        post = {"deter": prior["deter"], **self._latent(logits)}
        return post, prior

    def observe(self, embed, action, is_first, state=None):
        """Filter a (B, T) sequence. Returns posterior and prior states stacked as (B, T, ...)."""
        batch, length = embed.shape[:2]
        if state is None:
            state = self.initial(batch, embed.device)
        posts, priors = [], []
        for t in range(length):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        stack = lambda seq: {k: torch.stack([s[k] for s in seq], 1) for k in seq[0]}  # noqa: E731
        return stack(posts), stack(priors)

    def imagine_with_actions(self, state, actions):
        """Open-loop prediction from ``state`` with given actions (B, T, A): priors stacked (B, T, ...)."""
        priors = []
        for t in range(actions.shape[1]):
            state = self.img_step(state, actions[:, t])
            priors.append(state)
        return {k: torch.stack([s[k] for s in priors], 1) for k in priors[0]}
