"""World Models' M: an LSTM with a mixture-density head (Ha & Schmidhuber 2018).

Given (z_t, a_t) and the LSTM state it predicts p(z_{t+1}) as a mixture of ``mixtures``
Gaussians per latent dimension, plus the reward received and whether the episode ends on the
way to t+1 (so that M can stand in for the environment when training C in the dream).
Sampling uses the temperature ``tau``: mixture logits are divided by tau and the Gaussians'
standard deviations multiplied by sqrt(tau), as in the authors' code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class MDNRNN(nn.Module):
    """World Models' M (Ha & Schmidhuber 2018): an LSTM over ``[z_t, a_t+1]`` whose mixture-density head
    predicts ``z_t+1`` (``mixtures`` Gaussians per latent dimension), with reward and episode-end heads."""

    def __init__(self, z_dim: int = 32, action_dim: int = 3, hidden: int = 256, mixtures: int = 5):
        super().__init__()
        self.z_dim, self.action_dim, self.hidden, self.mixtures = z_dim, action_dim, hidden, mixtures
        self.lstm = nn.LSTMCell(z_dim + action_dim, hidden)
        self.mdn = nn.Linear(hidden, z_dim * mixtures * 3)
        self.reward = nn.Linear(hidden, 1)
        self.done = nn.Linear(hidden, 1)

    def initial(self, batch: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def heads(self, h: torch.Tensor):
        """Mixture parameters (logpi, mean, logstd), each ``(..., z_dim, mixtures)``, the reward and
        the episode-end logit, from LSTM outputs ``h``."""
        out = self.mdn(h).float().reshape(*h.shape[:-1], self.z_dim, 3, self.mixtures)
        logpi = torch.log_softmax(out[..., 0, :], -1)
        return logpi, out[..., 1, :], out[..., 2, :], self.reward(h).squeeze(-1).float(), self.done(h).squeeze(-1).float()

    def step(self, z: torch.Tensor, action: torch.Tensor, state):
        """One LSTM step on [z_t, a_t]; returns the new (h, c)."""
        return self.lstm(torch.cat([z, action], -1), state)

    def forward(self, z: torch.Tensor, action: torch.Tensor, state=None):
        """Run over ``(B, T, ...)`` sequences; returns the heads for every step and the final state."""
        if state is None:
            state = self.initial(z.shape[0], z.device)
        outputs = []
        for t in range(z.shape[1]):
            state = self.step(z[:, t], action[:, t], state)
            outputs.append(state[0])
        return self.heads(torch.stack(outputs, 1)), state

    @staticmethod
    def sample(logpi, mean, logstd, tau: float, uniform: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Draw z ``(..., z_dim)`` with temperature ``tau`` from given noise: ``uniform`` in [0, 1)
        picks the mixture component, ``normal`` is the standard normal sample (both ``(..., z_dim)``).
        Passing the noise in lets batched rollouts reproduce separate ones exactly."""
        if tau <= 0:
            raise ValueError(f"temperature must be > 0, got {tau}")
        probs = torch.softmax(logpi / tau, -1)
        index = (probs.cumsum(-1) < uniform.unsqueeze(-1)).sum(-1, keepdim=True).clamp_max(probs.shape[-1] - 1)
        mu = mean.gather(-1, index).squeeze(-1)
        std = logstd.gather(-1, index).squeeze(-1).exp()
        return mu + std * math.sqrt(tau) * normal
