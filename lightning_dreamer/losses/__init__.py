"""Pure loss functions: tensors in, tensors out, no modules or optimisers."""

from lightning_dreamer.losses.kl import categorical_kl, kl_balanced
from lightning_dreamer.losses.returns import lambda_return, trajectory_weights
from lightning_dreamer.losses.terms import (
    actor_loss,
    critic_loss,
    discount_target,
    gaussian_nll,
    total_loss,
)

__all__ = [
    "categorical_kl",
    "kl_balanced",
    "lambda_return",
    "trajectory_weights",
    "actor_loss",
    "critic_loss",
    "discount_target",
    "gaussian_nll",
    "total_loss",
]
