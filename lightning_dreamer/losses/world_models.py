"""Loss terms of World Models: the VAE's ELBO with KL tolerance, and the MDN negative log-likelihood."""

from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def vae_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over the last dim (closed form)."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(-1)


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
             kl_tolerance: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (reconstruction, KL) terms as in the World Models code: the summed squared error
    over the image, and ``max(KL, kl_tolerance * z_dim)`` (the KL stops pulling below that)."""
    rec = (recon.float() - target.float()).pow(2).sum((-3, -2, -1))
    kl = vae_kl(mean, logvar).clamp_min(kl_tolerance * mean.shape[-1])
    return rec, kl


def mdn_nll(logpi: torch.Tensor, mean: torch.Tensor, logstd: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log sum_k pi_k N(target | mean_k, exp(logstd_k)) per latent dimension.

    ``logpi`` (log mixture weights), ``mean`` and ``logstd`` are ``(..., z_dim, K)``, ``target``
    ``(..., z_dim)``; the result is ``(..., z_dim)``. The mixture sum is a ``logsumexp``, so a target
    far from every component gives a large but finite loss.
    """
    z = (target.unsqueeze(-1).float() - mean.float()) * torch.exp(-logstd.float())
    log_normal = -0.5 * z * z - logstd.float() - _LOG_SQRT_2PI
    return -torch.logsumexp(logpi.float() + log_normal, -1)
