"""Pure loss functions: tensors in, tensors out, no modules or optimisers."""

from lightning_dreamer.losses.kl import categorical_kl, free_nats, gaussian_kl, kl_balanced
from lightning_dreamer.losses.returns import lambda_return, trajectory_weights
from lightning_dreamer.losses.terms import (
    actor_loss,
    critic_loss,
    discount_target,
    gaussian_nll,
    loss_scales_for,
    total_loss,
)

__all__ = [
    "categorical_kl",
    "kl_balanced",
    "free_nats",
    "gaussian_kl",
    "lambda_return",
    "trajectory_weights",
    "actor_loss",
    "critic_loss",
    "discount_target",
    "gaussian_nll",
    "loss_scales_for",
    "total_loss",
]
