"""World Models' C: a linear controller, and rollouts of whole CMA-ES populations inside M.

C maps [z_t, h_t] to an action: ``a = tanh(W [z, h] + b)`` for continuous actions (in [-1, 1],
rescaled to the env's bounds by the collector), or the one-hot argmax of ``W [z, h] + b`` for
discrete ones. Its parameters are a flat vector so that CMA-ES can search over them; a
population of P parameter vectors acts on a batch of features in one ``einsum``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_dreamer.nets.mdnrnn import MDNRNN


class LinearController:
    """World Models' C (Ha & Schmidhuber 2018): ``a = tanh(W [z, h] + b)`` (argmax one-hot if discrete),
    its parameters a flat vector that CMA-ES searches; ``act`` evaluates a whole population at once."""

    def __init__(self, in_dim: int, action_dim: int, discrete: bool = False):
        self.in_dim, self.action_dim, self.discrete = in_dim, action_dim, discrete
        self.num_params = action_dim * in_dim + action_dim

    def act(self, params: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """``params (P, n)``, ``feat (P, N, in_dim)`` -> actions ``(P, N, action_dim)``."""
        if params.shape[-1] != self.num_params:
            raise ValueError(f"controller expects {self.num_params} parameters, got {params.shape[-1]}")
        weight = params[:, : self.action_dim * self.in_dim].reshape(-1, self.action_dim, self.in_dim)
        bias = params[:, self.action_dim * self.in_dim :]
        out = torch.einsum("paf,pnf->pna", weight.to(feat.dtype), feat) + bias.to(feat.dtype).unsqueeze(1)
        if self.discrete:
            return F.one_hot(out.argmax(-1), self.action_dim).to(feat.dtype)
        return torch.tanh(out)


@torch.no_grad()
def dream_rollouts(mdnrnn: MDNRNN, controller: LinearController, params: torch.Tensor, z0: torch.Tensor,
                   seeds: torch.Tensor, horizon: int, tau: float = 1.0, use_done: bool = True, chunk: int = 100) -> torch.Tensor:
    """Returns of P candidates x R rollouts each, all stepped together through M (the dream).

    ``params (P, n)``; ``z0 (P, R, z_dim)`` start latents; ``seeds (P, R)`` one integer per rollout.
    Every random number a rollout uses (mixture choice, Gaussian sample, episode end) comes from its
    own generator seeded with its seed, drawn in fixed-size chunks, so a rollout's result does not
    depend on what else is in the batch: P candidates batched equal P separate calls.
    At each step: ``a_t = C([z_t, h_t])``; ``h_{t+1} = LSTM([z_t, a_t], h_t)``; the reward and the
    episode end are predicted from ``h_{t+1}`` and ``z_{t+1}`` is sampled with temperature ``tau``.
    A rollout stops earning reward once it ends (``use_done``).

    The dream runs in float32 whatever autocast is on (the Trainer's bf16-mixed wraps the controller
    stage in it): under bf16 autocast M's gates, its mixture and C's action are rounded at every step
    of a rollout of hundreds, and the rounding carries on through the LSTM state. The controllers the
    search finds are played in float32 (the collection and the evaluation run outside autocast), so
    they are now also found in float32. bench/learn.py's wm_pixels note has what that changed.
    """
    with torch.autocast(z0.device.type, enabled=False):
        return _rollouts(mdnrnn, controller, params, z0, seeds, horizon, tau, use_done, chunk)


def _rollouts(mdnrnn: MDNRNN, controller: LinearController, params: torch.Tensor, z0: torch.Tensor,
              seeds: torch.Tensor, horizon: int, tau: float, use_done: bool, chunk: int) -> torch.Tensor:
    pop, reps, z_dim = z0.shape
    n = pop * reps
    device = z0.device
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds.reshape(-1).tolist()]
    state = mdnrnn.initial(n, device)
    z = z0.reshape(n, z_dim).float()
    params = params.float()
    alive = torch.ones(n, device=device)
    total = torch.zeros(n, device=device)
    for start in range(0, horizon, chunk):
        length = min(chunk, horizon - start)
        uniform = torch.stack([torch.rand(length, z_dim + 1, generator=g) for g in generators], 1).to(device)
        normal = torch.stack([torch.randn(length, z_dim, generator=g) for g in generators], 1).to(device)
        for t in range(length):
            feat = torch.cat([z, state[0]], -1).reshape(pop, reps, -1)
            action = controller.act(params, feat).reshape(n, -1)
            state = mdnrnn.step(z, action, state)
            logpi, mean, logstd, reward, done_logit = mdnrnn.heads(state[0])
            total += alive * reward
            if use_done:
                alive = alive * (uniform[t, :, -1] >= torch.sigmoid(done_logit)).float()
                if not alive.any():
                    return total.reshape(pop, reps)
            z = mdnrnn.sample(logpi, mean, logstd, tau, uniform[t, :, :z_dim], normal[t])
    return total.reshape(pop, reps)
