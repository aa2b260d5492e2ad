"""MC dropout (Gal & Ghahramani 2016): dropout while training and while predicting.

One Gaussian-head MLP with dropout after every hidden activation (inverted dropout: kept units
are scaled by ``1 / (1 - rate)``). Training drops units with fresh masks per row and minibatch,
drawn from the fit's generator; validation (and so early stopping) uses the network without
dropout. After every fit, ``T = mc_samples`` masks are drawn per hidden layer, each shared by all
rows: those ``T`` thinned networks are the members (see
:mod:`~forethought.models.sampled_members`), and ``predict`` gives their mean, the mean of their
predicted variances (aleatoric) and the variance of their means (epistemic).

    model = MCDropoutDynamics(obs_dim=5, act_dim=1, dropout_rate=0.1, mc_samples=10)

With ``dropout_rate=0`` every member is the same network and the epistemic variance is exactly 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from forethought.models.base import FitReport
from forethought.models.config import ModelConfig
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork, soft_bound
from forethought.models.sampled_members import SampledMemberDynamics


def check_dropout_rate(rate: Any, key: str = "dropout_rate") -> float:
    """``rate`` as a float if it is a number in [0, 1), else a ValueError naming ``key``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and 0 <= rate < 1):
        raise ValueError(f"{key} must be a number in [0, 1) (the share of hidden units dropped), got {rate!r}")
    return float(rate)


class DropoutNetwork(EnsembleDynamicsNetwork):
    """A single Gaussian-head MLP with dropout after each hidden activation.

    ``forward(x)`` with ``masks=None`` drops units with fresh masks when ``generator`` is set and
    autograd is on (that is, inside a fit's training steps), and computes the full network
    otherwise. ``forward(x, masks)`` applies fixed masks ``[L, T, 1, hidden]`` (one per hidden
    layer, already scaled) and returns ``T`` outputs.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_size: int, hidden_layers: int, rate: float) -> None:
        super().__init__(in_dim, out_dim, True, 1, hidden_size, hidden_layers)
        self.rate = check_dropout_rate(rate)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``, each ``[1, B, out_dim]`` for inputs ``[B, in_dim]`` or ``[1, B,
        in_dim]``; ``[T, B, out_dim]`` when ``masks [L, T, 1, hidden]`` are given (inputs ``[B,
        in]`` or ``[T, B, in]``)."""
        body, h = self.body, x if x.ndim == 3 else x.unsqueeze(0)
        drop = masks is None and self.generator is not None and torch.is_grad_enabled() and self.rate > 0
        last = len(body.weights) - 1
        for i, (weight, bias) in enumerate(zip(body.weights, body.biases)):
            h = torch.matmul(h, weight[0]) + bias[0]
            if i < last:
                h = F.silu(h)
                if masks is not None:
                    h = h * masks[i]
                elif drop:
                    keep = torch.rand(h.shape, generator=self.generator, device=h.device) >= self.rate
                    h = h * keep.to(h.dtype) / (1.0 - self.rate)
        mean, raw_log_std = h.split(self.out_dim, dim=-1)
        return mean, soft_bound(raw_log_std, self.min_log_std, self.max_log_std)


class MCDropoutDynamics(SampledMemberDynamics):
    """MC dropout dynamics model (see the module docstring).

    Args:
        obs_dim, act_dim: observation and action lengths.
        dropout_rate: share of hidden units dropped, in [0, 1).
        mc_samples: number of fixed dropout masks (members) ``T``, >= 2.
        **options: as :class:`~forethought.models.sampled_members.SampledMemberDynamics`.
    """

    kind = "mc_dropout"

    def __init__(self, obs_dim: int, act_dim: int, dropout_rate: float = ModelConfig.dropout_rate,
                 **options: Any) -> None:
        self.dropout_rate = check_dropout_rate(dropout_rate)
        super().__init__(obs_dim, act_dim, **options)
        self.masks: torch.Tensor | None = None  # [L, T, 1, hidden], drawn after every fit

    def _build_network(self) -> DropoutNetwork:
        return DropoutNetwork(self.obs_dim + self.act_dim, self.obs_dim, self.hidden_size, self.hidden_layers,
                              self.dropout_rate)

    def _train(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> FitReport:
        """Train with fresh dropout masks drawn from ``generator`` at every step."""
        self.network.generator = generator
        try:
            return super()._train(inputs, targets, generator)
        finally:
            self.network.generator = None

    def _draw_members(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> None:
        shape = (self.hidden_layers, self.ensemble_size, 1, self.hidden_size)
        keep = torch.rand(shape, generator=generator, device=generator.device) >= self.dropout_rate
        self.masks = (keep.float() / (1.0 - self.dropout_rate)).to(self.device)

    def _member_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dropout_rate == 0:  # every mask keeps every unit: the members are one network, computed once
            mean, log_std = self.network(x)
            size = (self.ensemble_size, *mean.shape[-2:])
            return mean.expand(size), log_std.expand(size)
        return self.network(x, self.masks)

    def _member_network(self) -> EnsembleDynamicsNetwork:
        """Member t as a network of its own: a unit its mask drops is a zero row of the next
        layer's weights, a kept one's row is scaled by ``1 / (1 - rate)``."""
        size, source = self.ensemble_size, self.network
        members = EnsembleDynamicsNetwork(source.body.in_dim, self.obs_dim, True, size, self.hidden_size,
                                          self.hidden_layers).requires_grad_(False).to(self.device)
        with torch.no_grad():
            for i, (weight, bias) in enumerate(zip(source.body.weights, source.body.biases)):
                scale = self.masks[i - 1].transpose(1, 2) if i > 0 else torch.ones(size, 1, 1, device=self.device)
                members.body.weights[i].copy_(weight * scale)
                members.body.biases[i].copy_(bias.expand(size, -1, -1))
            members.min_log_std.copy_(source.min_log_std.expand(size, -1, -1))
            members.max_log_std.copy_(source.max_log_std.expand(size, -1, -1))
        return members

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "dropout_rate": self.dropout_rate}

    def _member_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.masks is None else {"masks": self.masks}

    def _load_member_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.masks = tensors.get("masks")
