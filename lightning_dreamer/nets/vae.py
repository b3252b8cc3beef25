"""World Models' V: a convolutional variational autoencoder of 64x64 frames (Ha & Schmidhuber 2018).

Encoder: four stride-2 convolutions (kernel 4; 32, 64, 128, 256 channels at depth 32), then
dense layers to the mean and log-variance of z. Decoder: a dense layer to 1024 units and four
transposed convolutions (kernels 5, 5, 6, 6) with a sigmoid output. These are the Dreamer
conv stacks of nets/blocks.py with ReLU, which is the paper's architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_dreamer.nets.blocks import ConvDecoder, ConvEncoder


class ConvVAE(nn.Module):
    """World Models' V (Ha & Schmidhuber 2018): a convolutional VAE from 64x64 frames to ``z_dim`` latents."""

    def __init__(self, channels: int = 3, z_dim: int = 32, depth: int = 32, act: str = "relu"):
        super().__init__()
        self.z_dim = z_dim
        self.encoder = ConvEncoder(channels, depth, act)
        self.mean = nn.Linear(self.encoder.out_dim, z_dim)
        self.logvar = nn.Linear(self.encoder.out_dim, z_dim)
        self.decoder = ConvDecoder(z_dim, channels, depth, act)

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames ``(..., C, 64, 64)`` -> (mean, logvar) of q(z | frame), each ``(..., z_dim)``."""
        h = self.encoder(frames)
        return self.mean(h).float(), self.logvar(h).float()

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # Drawn where the generator lives (a seeded CPU generator also serves a model on a GPU).
        device = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype).to(mean.device)
        return mean + (0.5 * logvar).exp() * noise

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z -> frame in [0, 1], ``(..., C, 64, 64)``."""
        return torch.sigmoid(self.decoder(z).float())

    def forward(self, frames: torch.Tensor):
        mean, logvar = self.encode(frames)
        z = self.sample(mean, logvar)
        return self.decode(z), mean, logvar
