"""Batched ensemble MLPs: K members' weights stacked on a leading axis, one forward pass for all.

Every layer holds weights ``[K, in, out]`` and biases ``[K, 1, out]``; ``torch.baddbmm`` computes
``bias + x @ W`` for all members in one batched matrix multiply, so an ensemble costs one kernel
per layer rather than K small ones. ``K = 1`` is an ordinary MLP.

:class:`EnsembleMLP` is the plain network; :class:`EnsembleDynamicsNetwork` puts a mean head and,
for probabilistic models, a soft-bounded log-std head on top (Chua et al. 2018, "Deep
Reinforcement Learning in a Handful of Trials", appendix A.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleMLP(nn.Module):
    """K independent MLPs evaluated together; SiLU (swish) between layers, linear output.

    Args:
        in_dim: input features.
        out_dim: output features.
        ensemble_size: number of members K (>= 1).
        hidden_size: width of each hidden layer.
        hidden_layers: number of hidden layers (0 gives K linear maps).
        generator: drives the initialisation (a fixed seed when omitted).
    """

    def __init__(self, in_dim: int, out_dim: int, ensemble_size: int = 1, hidden_size: int = 200,
                 hidden_layers: int = 4, generator: torch.Generator | None = None) -> None:
        super().__init__()
        for name, value, low in (("in_dim", in_dim, 1), ("out_dim", out_dim, 1), ("ensemble_size", ensemble_size, 1),
                                 ("hidden_size", hidden_size, 1), ("hidden_layers", hidden_layers, 0)):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.in_dim, self.out_dim, self.ensemble_size = int(in_dim), int(out_dim), int(ensemble_size)
        self.hidden_size, self.hidden_layers = int(hidden_size), int(hidden_layers)
        sizes = [self.in_dim] + [self.hidden_size] * self.hidden_layers + [self.out_dim]
        k = self.ensemble_size
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(k, i, o)) for i, o in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(k, 1, o)) for o in sizes[1:])
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw every member's weights from a truncated normal (std ``1/sqrt(fan_in)``, cut at
        two std) and zero the biases. Members are drawn independently from ``generator``."""
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for weight, bias in zip(self.weights, self.biases):
                std = 1.0 / math.sqrt(weight.shape[1])
                nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std, generator=generator)
                bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``[K, B, out_dim]`` for inputs ``[K, B, in_dim]`` (member k reads row block k)
        or ``[B, in_dim]`` (the same rows go to every member)."""
        k = self.ensemble_size
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(k, -1, -1)
        if x.ndim != 3 or x.shape[0] != k or x.shape[2] != self.in_dim:
            raise ValueError(f"EnsembleMLP input has shape {tuple(x.shape)}, expected ({k}, B, {self.in_dim}) "
                             f"or (B, {self.in_dim})")
        if torch.is_grad_enabled() and (x.requires_grad or self.weights[0].requires_grad):
            return self._layers(x, inplace=False)
        # Inference: with no graph to keep, activations are updated in place and long batches are
        # cut into row blocks of about 1M activations each, so the working set stays in cache
        # (large [K, B, hidden] intermediates are memory-bound on CPU).
        rows = max(128, (1 << 20) // (k * max(self.hidden_size, self.out_dim)))
        if x.shape[1] <= rows:
            return self._layers(x, inplace=True)
        return torch.cat([self._layers(block, inplace=True) for block in x.split(rows, dim=1)], dim=1)

    def _layers(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        """All layers on ``[K, B, in_dim]``: one ``baddbmm`` per layer covers every member."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = F.silu(x, inplace=inplace)
        return x

    def member(self, index: int) -> "EnsembleMLP":
        """A stand-alone single-member (K=1) network holding a copy of member ``index``'s weights."""
        if not 0 <= index < self.ensemble_size:
            raise IndexError(f"member {index} out of range for an ensemble of {self.ensemble_size}")
        single = EnsembleMLP(self.in_dim, self.out_dim, 1, self.hidden_size, self.hidden_layers)
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), single.parameters()):
                theirs.copy_(mine[index:index + 1])
        return single


def soft_bound(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Squash ``x`` smoothly towards ``[lower, upper]`` with two softplus hinges (PETS log-variance
    bounds). The result is never below ``lower`` and at most ``log(1 + exp(lower - upper))`` above
    ``upper``; gradients reach ``lower`` and ``upper`` so the bounds can be learned."""
    x = upper - F.softplus(upper - x)
    return lower + F.softplus(x - lower)


class EnsembleDynamicsNetwork(nn.Module):
    """Ensemble MLP with a mean head and, when ``probabilistic``, a log-std head.

    The log-std is kept inside learnable per-member, per-feature bounds ``[K, 1, out_dim]`` by
    :func:`soft_bound`; :meth:`bound_penalty` is the small regulariser that pulls the bounds
    together so they stay tight around the log-stds actually used.

    Args:
        in_dim, out_dim, ensemble_size, hidden_size, hidden_layers, generator: as :class:`EnsembleMLP`.
        probabilistic: add the log-std head.
        max_log_std, min_log_std: initial values of the learnable bounds.
    """

    def __init__(self, in_dim: int, out_dim: int, probabilistic: bool, ensemble_size: int = 1,
                 hidden_size: int = 200, hidden_layers: int = 4, generator: torch.Generator | None = None,
                 max_log_std: float = 0.25, min_log_std: float = -5.0) -> None:
        super().__init__()
        if not min_log_std < max_log_std:
            raise ValueError(f"min_log_std ({min_log_std}) must be below max_log_std ({max_log_std})")
        self.out_dim, self.probabilistic = int(out_dim), bool(probabilistic)
        heads = 2 if self.probabilistic else 1
        self.body = EnsembleMLP(in_dim, heads * self.out_dim, ensemble_size, hidden_size, hidden_layers, generator)
        if self.probabilistic:
            self.max_log_std = nn.Parameter(torch.full((ensemble_size, 1, self.out_dim), float(max_log_std)))
            self.min_log_std = nn.Parameter(torch.full((ensemble_size, 1, self.out_dim), float(min_log_std)))
        self._initial_bounds = (float(max_log_std), float(min_log_std))

    @property
    def ensemble_size(self) -> int:
        return self.body.ensemble_size

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the body from ``generator`` and reset the log-std bounds."""
        self.body.reset_parameters(generator)
        if self.probabilistic:
            with torch.no_grad():
                self.max_log_std.fill_(self._initial_bounds[0])
                self.min_log_std.fill_(self._initial_bounds[1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean [K, B, out_dim], log_std [K, B, out_dim] or None)`` for inputs ``[K, B, in_dim]``
        or ``[B, in_dim]``."""
        out = self.body(x)
        if not self.probabilistic:
            return out, None
        mean, raw_log_std = out.split(self.out_dim, dim=-1)
        return mean, soft_bound(raw_log_std, self.min_log_std, self.max_log_std)

    def bound_penalty(self) -> torch.Tensor:
        """Per-member regulariser ``sum(max_log_std) - sum(min_log_std)``, shape ``[K]`` (zeros for a
        deterministic network)."""
        if not self.probabilistic:
            return torch.zeros(self.ensemble_size, device=self.body.weights[0].device)
        return (self.max_log_std - self.min_log_std).sum(dim=(1, 2))
