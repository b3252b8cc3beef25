"""Recurrent state-space model (RSSM), shared by Dreamer V1 (Gaussian latents) and V2
(categorical latents). Only the stochastic part differs; it is a small ``Latent`` object.

A state is a dict of tensors::

    deter:  (..., deter)     deterministic GRU state h_t
    stoch:  (..., *shape)    sample z_t: one-hot (stoch, classes) with straight-through
                             gradients (V2), or a reparameterised Gaussian sample (stoch,) (V1)
    + the parameters z_t was drawn from: logits (V2), or mean and std (V1)

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
import torch.nn.functional as F
from torch import nn

from lightning_dreamer.nets.blocks import MLP, LayerNormGRUCell, activation
from lightning_dreamer.nets.distributions import straight_through_onehot


class CategoricalLatent:
    """``stoch`` independent categoricals of ``classes`` classes (DreamerV2: 32 x 32)."""

    def __init__(self, stoch: int = 32, classes: int = 32):
        self.stoch, self.classes = stoch, classes
        self.param_dim = self.flat_dim = stoch * classes
        self.shape = (stoch, classes)

    def params_keys(self) -> tuple[str, ...]:
        return ("logits",)

    def __call__(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
        return {"logits": logits, "stoch": straight_through_onehot(logits)}


class GaussianLatent:
    """A diagonal Gaussian of ``stoch`` dims with ``std = softplus(raw) + min_std`` (DreamerV1: 30, 0.1)."""

    def __init__(self, stoch: int = 30, min_std: float = 0.1):
        self.stoch, self.min_std = stoch, min_std
        self.param_dim, self.flat_dim = 2 * stoch, stoch
        self.shape = (stoch,)

    def params_keys(self) -> tuple[str, ...]:
        return ("mean", "std")

    def __call__(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, std = raw.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        stoch = mean + std * torch.randn_like(std)
        return {"mean": mean, "std": std, "stoch": stoch.to(raw.dtype)}


class RSSM(nn.Module):
    """``img_step``: [z, a] -> dense -> GRU -> dense -> prior; ``obs_step`` adds the posterior
    from [h, embed]. ``layer_norm_gru`` selects V2's normalised GRU (V1: torch's GRUCell)."""

    def __init__(self, action_dim: int, embed_dim: int, latent, deter: int = 200, hidden: int = 200,
                 act: str = "elu", layer_norm_gru: bool = True):
        super().__init__()
        self.latent, self.deter = latent, deter
        self.img_in = nn.Sequential(nn.Linear(latent.flat_dim + action_dim, hidden), activation(act))
        self.gru = LayerNormGRUCell(hidden, deter) if layer_norm_gru else nn.GRUCell(hidden, deter)
        self.prior_net = MLP(deter, latent.param_dim, hidden, 1, act)
        self.post_net = MLP(deter + embed_dim, latent.param_dim, hidden, 1, act)

    @property
    def feat_dim(self) -> int:
        return self.deter + self.latent.flat_dim

    def initial(self, batch: int, device=None) -> dict[str, torch.Tensor]:
        zeros = lambda *shape: torch.zeros(batch, *shape, device=device, dtype=torch.get_default_dtype())  # noqa: E731
        state = {"deter": zeros(self.deter), "stoch": zeros(*self.latent.shape)}
        state.update({k: zeros(*self.latent.shape) for k in self.latent.params_keys()})
        return state

    def feat(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        stoch = state["stoch"]
        stoch = stoch.reshape(*state["deter"].shape[:-1], self.latent.flat_dim)
        return torch.cat([state["deter"], stoch.to(state["deter"].dtype)], -1)

    def img_step(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        stoch = state["stoch"].reshape(*state["deter"].shape[:-1], self.latent.flat_dim)
        x = self.img_in(torch.cat([stoch.to(action.dtype), action], -1))
        deter = self.gru(x, state["deter"].to(x.dtype))
        return {"deter": deter, **self.latent(self.prior_net(deter))}

    def obs_step(self, state, action, embed, is_first):
        """One filtering step. Returns (posterior, prior)."""
        keep = (~is_first).to(action.dtype).unsqueeze(-1)
        action = action * keep
        state = {k: v * keep.reshape(keep.shape + (1,) * (v.dim() - keep.dim())) for k, v in state.items()}
        prior = self.img_step(state, action)
        raw = self.post_net(torch.cat([prior["deter"], embed.to(prior["deter"].dtype)], -1))
        post = {"deter": prior["deter"], **self.latent(raw)}
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

