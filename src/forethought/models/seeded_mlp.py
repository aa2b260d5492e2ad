"""A plain MLP whose initial weights come from a given generator, for networks that must start
the same on every run of a seed (SAC's actor and critics, MuZero's networks)."""

from __future__ import annotations

import math

import torch
from torch import nn


def seeded_mlp(in_dim: int, out_dim: int, hidden_size: int, hidden_layers: int, generator: torch.Generator,
               activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``hidden_layers`` layers of ``hidden_size`` units with ``activation`` between them, on
    ``generator``'s device, weights and biases drawn from it (PyTorch's default uniform
    ``1/sqrt(fan_in)`` bounds)."""
    sizes, device = [in_dim] + [hidden_size] * hidden_layers, generator.device
    layers: list[nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o, device=device), activation()]
    layers.append(nn.Linear(sizes[-1], out_dim, device=device))
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return nn.Sequential(*layers)
