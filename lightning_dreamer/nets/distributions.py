"""Action and latent distributions with reparameterised or straight-through samples."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def straight_through_onehot(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample a one-hot vector from ``softmax(logits)`` (last dim).

    Forward pass: an exact one-hot sample. Backward pass: the gradient of the softmax
    probabilities (``sample + (probs - stop_grad(probs))``), as in DreamerV2.
    """
    probs = torch.softmax(logits.float(), -1)
    # Inverse-CDF sampling: one uniform number per categorical (torch.multinomial spent ~8% of
    # a small model's update drawing exponentials for every class).
    u = torch.rand(probs.shape[:-1] + (1,), device=probs.device, generator=generator)
    index = (probs.cumsum(-1) < u).sum(-1).clamp_max(probs.shape[-1] - 1)
    onehot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return onehot + (probs - probs.detach())  # exactly one-hot forward: (p - sg(p)) is 0


class OneHotCategorical:
    """Categorical over one-hot vectors; ``rsample`` is straight-through."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits.float()

    def rsample(self) -> torch.Tensor:
        return straight_through_onehot(self.logits)

    sample = rsample

    def mode(self) -> torch.Tensor:
        return F.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.logits.dtype)

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        return (torch.log_softmax(self.logits, -1) * onehot).sum(-1)

    def entropy(self) -> torch.Tensor:
        logp = torch.log_softmax(self.logits, -1)
        return -(logp.exp() * logp).sum(-1)


_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _Phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / _SQRT2))


class TruncatedNormal:
    """Independent Normal(loc, scale) truncated to [low, high] over the last dim.

    ``rsample`` inverts the CDF, so samples are differentiable in loc and scale. ``log_prob``
    and ``entropy`` sum over the last dim (the action dimensions).
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0, eps: float = 1e-6):
        self.loc, self.scale = loc.float(), scale.float()
        self.low, self.high, self.eps = low, high, eps
        self.alpha = (low - self.loc) / self.scale
        self.beta = (high - self.loc) / self.scale
        self.cdf_alpha = _Phi(self.alpha)
        self.Z = (_Phi(self.beta) - self.cdf_alpha).clamp_min(eps)

    def rsample(self) -> torch.Tensor:
        u = torch.rand_like(self.loc)
        p = (self.cdf_alpha + u * self.Z).clamp(self.eps, 1 - self.eps)
        x = self.loc + self.scale * _SQRT2 * torch.erfinv(2 * p - 1)
        return x.clamp(self.low + self.eps, self.high - self.eps)

    sample = rsample

    def mode(self) -> torch.Tensor:
        return self.loc.clamp(self.low, self.high)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float() - self.loc) / self.scale
        return (-0.5 * z * z - _LOG_SQRT_2PI - self.scale.log() - self.Z.log()).sum(-1)

    def entropy(self) -> torch.Tensor:
        a, b = self.alpha, self.beta
        ent = _LOG_SQRT_2PI + 0.5 + self.scale.log() + self.Z.log() + (a * _phi(a) - b * _phi(b)) / (2 * self.Z)
        return ent.sum(-1)


class TanhNormal:
    """``tanh(Normal(loc, scale))``, independent over the last dim (DreamerV1's continuous actor).

    Samples are reparameterised and lie in (-1, 1). ``log_prob`` applies the change of
    variables ``log N(atanh y) - log(1 - y^2)``. ``mode`` is DreamerV1's: the most likely of
    ``samples`` (100) draws under this density (which, for a wide Normal, peaks near +-1 rather
    than at ``tanh(loc)``); ``median`` is ``tanh(loc)``, deterministic. The entropy has no closed
    form: ``entropy`` is a one-sample estimate, ``H[Normal] + log(1 - tanh(x)^2)`` at a
    reparameterised ``x``, whose gradient is the pathwise gradient of the entropy (DreamerV1 logs
    ``-log_prob(sample)``, which has the same expectation but, with the sample held fixed, a zero
    expected gradient).
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6):
        self.loc, self.scale, self.eps = loc.float(), scale.float(), eps

    def rsample(self) -> torch.Tensor:
        return torch.tanh(self.loc + self.scale * torch.randn_like(self.loc))

    sample = rsample

    def median(self) -> torch.Tensor:
        return torch.tanh(self.loc)

    def mode(self, samples: int = 100) -> torch.Tensor:
        x = self.loc + self.scale * torch.randn((samples,) + self.loc.shape, device=self.loc.device)
        best = self._log_prob_pre_tanh(x).argmax(0).unsqueeze(0).unsqueeze(-1).expand((1,) + x.shape[1:])
        return torch.tanh(x.gather(0, best).squeeze(0))

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        return self._log_prob_pre_tanh(torch.atanh(y.float().clamp(-1 + self.eps, 1 - self.eps)))

    def _log_prob_pre_tanh(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of ``tanh(x)``, given the pre-tanh value ``x``."""
        z = (x - self.loc) / self.scale
        return (-0.5 * z * z - _LOG_SQRT_2PI - self.scale.log() - _log1m_tanh2(x)).sum(-1)

    def entropy(self) -> torch.Tensor:
        x = self.loc + self.scale * torch.randn_like(self.loc)
        return (_LOG_SQRT_2PI + 0.5 + self.scale.log() + _log1m_tanh2(x)).sum(-1)


def _log1m_tanh2(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(x)^2)``, stable for large ``|x|``."""
    return 2 * (math.log(2) - x - F.softplus(-2 * x))


def exploration_noise(action: torch.Tensor, amount: float, discrete: bool) -> torch.Tensor:
    """Acting noise: with probability ``amount`` a uniformly random one-hot action (discrete,
    ε-greedy), or ``action + N(0, amount)`` clipped to [-1, 1] (continuous)."""
    if amount <= 0:
        return action
    if discrete:
        random = F.one_hot(torch.randint(action.shape[-1], action.shape[:-1], device=action.device), action.shape[-1])
        pick = torch.rand(action.shape[:-1] + (1,), device=action.device) < amount
        return torch.where(pick, random.to(action.dtype), action)
    return (action + amount * torch.randn_like(action)).clamp(-1, 1)
