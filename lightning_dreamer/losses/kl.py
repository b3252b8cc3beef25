"""KL divergences between latent distributions, with KL balancing and free nats."""

from __future__ import annotations

import torch


def categorical_kl(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL(post || prior) for independent categoricals ``(..., stoch, classes)``, summed over stoch."""
    post_logp = torch.log_softmax(post_logits.float(), -1)
    prior_logp = torch.log_softmax(prior_logits.float(), -1)
    return (post_logp.exp() * (post_logp - prior_logp)).sum((-2, -1))


def gaussian_kl(post_mean, post_std, prior_mean, prior_std) -> torch.Tensor:
    """KL(post || prior) for diagonal Gaussians ``(..., stoch)``, summed over the last dim."""
    post_mean, post_std, prior_mean, prior_std = (x.float() for x in (post_mean, post_std, prior_mean, prior_std))
    var_ratio = (post_std / prior_std) ** 2
    mean_term = ((post_mean - prior_mean) / prior_std) ** 2
    return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log()).sum(-1)


def free_nats(kl: torch.Tensor, free: float) -> torch.Tensor:
    """Free nats on the batch mean (DreamerV1 ``max(mean KL, free)``, DreamerV2 ``free_avg``):
    below ``free`` the term is the constant ``free`` (no gradient); above it the term is
    unchanged. Shape is kept."""
    if free <= 0:
        return kl
    # torch.where rather than a Python ``if`` on the mean: no host synchronisation, one graph.
    return torch.where(kl.mean() > free, kl, torch.full_like(kl, free) + 0.0 * kl)  # zero gradient below


def kl_balanced(post_logits, prior_logits, balance: float = 0.8, free: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """KL balancing (DreamerV2 eq. 2): ``balance * KL(sg(post) || prior) + (1 - balance) * KL(post || sg(prior))``.

    The prior is pulled towards the posterior with weight ``balance`` (0.8) and the posterior
    towards the prior with ``1 - balance``. Returns ``(loss, value)``, both shaped like the batch:
    the loss with free nats applied to each side, and the plain KL for logging.
    """
    value = categorical_kl(post_logits, prior_logits)
    lhs = categorical_kl(post_logits.detach(), prior_logits)
    rhs = categorical_kl(post_logits, prior_logits.detach())
    loss = balance * free_nats(lhs, free) + (1 - balance) * free_nats(rhs, free)
    return loss, value.detach()
