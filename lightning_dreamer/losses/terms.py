"""World-model, actor and critic loss terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def gaussian_nll(mean: torch.Tensor, target: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under a unit-variance Normal at ``mean``, summed
    over the last ``event_dims`` dims, without the constant ``0.5 * log(2 pi)`` per dim."""
    err = 0.5 * (mean.float() - target.float()) ** 2
    return err.sum(tuple(range(-event_dims, 0))) if event_dims else err


def discount_target(is_terminal: torch.Tensor) -> torch.Tensor:
    """Target of the discount (continuation) head: 0 at terminal steps, 1 elsewhere."""
    return 1.0 - is_terminal.float()


def loss_scales_for(configured: Mapping[str, float], expected: set[str], allowed: tuple[str, ...]) -> dict[str, float]:
    """The scales of this agent's loss terms, or a ValueError naming unknown or missing terms."""
    unknown = sorted(set(configured) - set(allowed))
    if unknown:
        raise ValueError(f"model.loss_scales has unknown terms {unknown}; allowed: {', '.join(allowed)}")
    missing = sorted(expected - set(configured))
    if missing:
        raise ValueError(f"model.loss_scales lacks {missing}; this agent's loss terms are {sorted(expected)}")
    return {k: float(configured[k]) for k in expected}


def total_loss(losses: Mapping[str, torch.Tensor], scales: Mapping[str, float]) -> torch.Tensor:
    """``sum(losses[k].mean() * scales[k])`` after checking that the terms are exactly the scaled
    ones: a term without a scale, or a scale whose term was never computed, is an error."""
    if set(losses) != set(scales):
        raise KeyError(f"loss terms {sorted(losses)} differ from the scaled terms {sorted(scales)} "
                       f"(unscaled: {sorted(set(losses) - set(scales))}, never computed: {sorted(set(scales) - set(losses))})")
    total = torch.zeros(())
    for k, v in losses.items():
        total = total + v.float().mean() * scales[k]
    return total


def actor_loss(log_prob, entropy, returns, baseline, weight, reinforce: float, entropy_scale: float | torch.Tensor):
    """DreamerV2 actor objective (paper eq. 6), per imagined state ``(H, N)``::

        rho * log pi(a_t|s_t) * sg(R_t - v(s_t)) + (1 - rho) * R_t + eta * H[pi(.|s_t)]

    ``reinforce`` is rho (1: REINFORCE, 0: dynamics backprop); returns a (H, N) loss
    to be averaged, already multiplied by the (stop-gradient) trajectory weights.
    """
    objective = torch.zeros_like(returns)
    if reinforce > 0:
        objective = objective + reinforce * log_prob * (returns - baseline).detach()
    if reinforce < 1:
        objective = objective + (1 - reinforce) * returns
    if isinstance(entropy_scale, torch.Tensor) or entropy_scale:  # a tensor (adaptive): no host sync on its value
        objective = objective + entropy_scale * entropy
    return -weight.detach() * objective


def critic_loss(value, returns, weight):
    """Regression of v(s_t) on sg(R_t), weighted by the trajectory weights; (H, N)."""
    return weight.detach() * 0.5 * (value.float() - returns.detach()) ** 2
