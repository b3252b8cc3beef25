"""MLPs, the Dreamer convolutional encoder/decoder, and a layer-normalised GRU cell."""

from __future__ import annotations

from contextlib import contextmanager
from typing import cast

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'. Allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """``layers`` hidden layers of ``units`` with an activation, then a linear output."""

    def __init__(self, in_dim: int, out_dim: int, units: int, layers: int, act: str = "elu", layer_norm: bool = False):
        modules: list[nn.Module] = []
        for i in range(layers):
            modules.append(nn.Linear(in_dim if i == 0 else units, units))
            if layer_norm:
                modules.append(nn.LayerNorm(units))
            modules.append(activation(act))
        modules.append(nn.Linear(units if layers else in_dim, out_dim))
        super().__init__(*modules)


def cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC activations on a CPU, where oneDNN's convolutions run 1.4-5x faster in that layout
    (bench/speed.py; weights stay in the default layout). Unchanged on other devices."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


class ConvEncoder(nn.Module):
    """Four stride-2 convolutions (kernel 4, depth x [1, 2, 4, 8]): 64x64 -> 2x2, output 32*depth.

    Input uint8 frames ``(..., C, 64, 64)`` are scaled to [-0.5, 0.5] here.
    """

    def __init__(self, in_channels: int, depth: int = 48, act: str = "elu", kernels=(4, 4, 4, 4)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, k in enumerate(kernels):
            layers += [nn.Conv2d(channels, depth * 2**i, k, stride=2), activation(act)]
            channels = depth * 2**i
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * 2 * 2

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).to(torch.get_default_dtype()) / 255.0 - 0.5
        if x.shape[-2:] != (64, 64):
            raise ValueError(f"ConvEncoder expects 64x64 images, got {tuple(x.shape[-2:])}; set env.image_size=64")
        return self.net(cpu_channels_last(x)).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Transposed convolutions (kernels 5, 5, 6, 6): a feature vector -> the mean image in [-0.5, 0.5].

    The first transposed convolution sees a 1x1 input, where it is a matrix product: it runs as one
    (same weights, same result; 10x faster than the convolution on a CPU)."""

    def __init__(self, in_dim: int, out_channels: int, depth: int = 48, act: str = "elu", kernels=(5, 5, 6, 6)):
        super().__init__()
        self.depth = depth
        self.fc = nn.Linear(in_dim, 32 * depth)
        layers: list[nn.Module] = []
        channels = 32 * depth
        for i, k in enumerate(kernels):
            last = i == len(kernels) - 1
            out = out_channels if last else depth * 2 ** (len(kernels) - i - 2)
            layers.append(nn.ConvTranspose2d(channels, out, k, stride=2))
            if not last:
                layers.append(activation(act))
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        first = cast(nn.ConvTranspose2d, self.net[0])
        x = self.fc(feat).reshape(-1, 32 * self.depth) @ first.weight.flatten(1)  # (N, out * k * k)
        x = x.reshape(-1, first.out_channels, *first.kernel_size) + cast(torch.Tensor, first.bias)[:, None, None]
        x = self.net[1:](cpu_channels_last(x))
        return x.reshape(*lead, *x.shape[1:])


class LayerNormGRUCell(nn.Module):
    """The GRU cell of DreamerV2: one linear layer over [input, state], layer norm, and an
    update gate biased towards keeping the state (``sigmoid(update - 1)``)."""

    def __init__(self, input_size: int, hidden_size: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_size)
        self.update_bias = update_bias

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


@contextmanager
def frozen(module: nn.Module):
    """Parameters get no gradient inside the block; gradients still flow *through* the module."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
