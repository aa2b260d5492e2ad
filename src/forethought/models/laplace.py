"""A Gaussian-head MLP with a Laplace posterior over its last layer's mean weights.

The network is trained as the probabilistic MLP ("P") is. After every fit, the mean head's
weights and bias ``theta_d [h + 1]`` for each output ``d`` get a Gaussian posterior around their
trained values: the last-layer Laplace approximation with the generalised Gauss-Newton Hessian of
the Gaussian negative log-likelihood (Daxberger et al. 2021, "Laplace Redux"),

    precision_d = sum_n phi_n phi_n^T / sigma_{n,d}^2 + prior_precision * I,   Sigma_d = precision_d^-1

where ``phi_n = [features of row n, 1]`` are the last hidden layer's activations on every row of
the fit and ``sigma_{n,d}`` the network's own predicted (aleatoric) standard deviation, all in
normalised units. Since the mean is linear in ``theta``, ``predict`` is exact for this posterior:
the trained mean, the head's aleatoric variance and the epistemic variance ``phi^T Sigma_d phi``
(times the delta normaliser's variance). The members (see
:mod:`~forethought.models.sampled_members`) are ``T = mc_samples`` draws of the mean head from
the posterior, so their mean and spread approach ``predict``'s as ``T`` grows.

    model = LastLayerLaplaceDynamics(obs_dim=5, act_dim=1, prior_precision=1.0, mc_samples=10)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from forethought.models.base import Prediction
from forethought.models.config import ModelConfig
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork, soft_bound
from forethought.models.sampled_members import SampledMemberDynamics


def check_prior_precision(value: Any, key: str = "prior_precision") -> float:
    """``value`` as a float if it is a finite number > 0, else a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a finite number > 0 (the Gaussian prior's precision on the last "
                         f"layer), got {value!r}")
    return float(value)


class LastLayerLaplaceDynamics(SampledMemberDynamics):
    """Last-layer Laplace dynamics model (see the module docstring).

    Args:
        obs_dim, act_dim: observation and action lengths.
        prior_precision: precision of the zero-mean Gaussian prior on the mean head's weights.
        mc_samples: number of posterior draws of the mean head (members) ``T``, >= 2.
        **options: as :class:`~forethought.models.sampled_members.SampledMemberDynamics`.
    """

    kind = "last_layer_laplace"

    def __init__(self, obs_dim: int, act_dim: int, prior_precision: float = ModelConfig.prior_precision,
                 **options: Any) -> None:
        self.prior_precision = check_prior_precision(prior_precision)
        super().__init__(obs_dim, act_dim, **options)
        self.posterior_scale: torch.Tensor | None = None  # [o, h + 1, h + 1], lower Cholesky factor of Sigma_d
        self.head_samples: torch.Tensor | None = None  # [T, h + 1, o], the members' mean heads

    def _build_network(self) -> EnsembleDynamicsNetwork:
        return EnsembleDynamicsNetwork(self.obs_dim + self.act_dim, self.obs_dim, True, 1, self.hidden_size,
                                       self.hidden_layers)

    # ------------------------------------------------------------------ the network in two parts
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden activations with a constant 1 appended, ``[..., h + 1]``, for normalised
        inputs ``[..., o + a]``."""
        body, h = self.network.body, x
        for weight, bias in zip(body.weights[:-1], body.biases[:-1]):
            h = F.silu(torch.matmul(h, weight[0]) + bias[0])
        return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)

    def _head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained output layer as ``(mean head [h + 1, o], log-std head [h + 1, o])``."""
        weight, bias = self.network.body.weights[-1][0], self.network.body.biases[-1][0]
        full = torch.cat([weight, bias], dim=0)  # [h + 1, 2o]
        return full[:, :self.obs_dim], full[:, self.obs_dim:]

    def _log_std(self, features: torch.Tensor, log_std_head: torch.Tensor) -> torch.Tensor:
        net = self.network
        return soft_bound(features @ log_std_head, net.min_log_std[0, 0], net.max_log_std[0, 0])

    # ------------------------------------------------------------------ posterior and members
    def _draw_members(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> None:
        with torch.no_grad():
            phi = self._features(inputs).double()  # [N, h + 1]
            mean_head, log_std_head = self._head()
            precision_rows = torch.exp(-2.0 * self._log_std(phi.float(), log_std_head)).double()  # [N, o]
            eye = torch.eye(phi.shape[1], dtype=torch.float64, device=phi.device)
            precision = torch.stack([(phi * precision_rows[:, d:d + 1]).T @ phi for d in range(self.obs_dim)])
            precision = precision + self.prior_precision * eye
            covariance = torch.cholesky_inverse(torch.linalg.cholesky(precision))
            scale = torch.linalg.cholesky(covariance)  # [o, h + 1, h + 1]
            noise = torch.randn((self.ensemble_size, self.obs_dim, phi.shape[1]), generator=generator,
                                dtype=torch.float64, device=generator.device).to(phi.device)
            draws = mean_head.T.double() + torch.einsum("dhk,tdk->tdh", scale, noise)  # [T, o, h + 1]
        self.posterior_scale = scale.float().contiguous()  # as saved: einsum sums in memory order
        self.head_samples = draws.transpose(1, 2).float().contiguous()

    def _member_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self._features(x)
        _, log_std_head = self._head()
        mean = torch.matmul(phi, self.head_samples)  # [T, B, o]
        return mean, self._log_std(phi, log_std_head).expand_as(mean)

    def _member_network(self) -> EnsembleDynamicsNetwork:
        """Member t as a network of its own: the shared body and log-std head, mean head draw t."""
        size, source = self.ensemble_size, self.network
        members = EnsembleDynamicsNetwork(source.body.in_dim, self.obs_dim, True, size, self.hidden_size,
                                          self.hidden_layers).requires_grad_(False).to(self.device)
        with torch.no_grad():
            for mine, theirs in zip(members.parameters(), source.parameters()):
                mine.copy_(theirs.expand_as(mine))
            members.body.weights[-1][:, :, :self.obs_dim].copy_(self.head_samples[:, :-1])
            members.body.biases[-1][:, 0, :self.obs_dim].copy_(self.head_samples[:, -1])
        return members

    def _predict(self, obs: torch.Tensor, action: torch.Tensor) -> Prediction:
        """The exact posterior predictive: trained mean, aleatoric variance from the head, epistemic
        variance ``phi^T Sigma_d phi`` (raw units), all ``[B, o]``."""
        x = torch.cat([self.obs_norm.normalize(obs), self.act_norm.normalize(action)], dim=-1)
        phi = self._features(x)
        mean_head, log_std_head = self._head()
        spread = torch.einsum("bh,dhk->bdk", phi, self.posterior_scale).pow(2).sum(dim=-1)  # [B, o]
        scale = self.delta_norm.std.pow(2)
        return Prediction(obs + self.delta_norm.denormalize(phi @ mean_head),
                          torch.exp(2.0 * self._log_std(phi, log_std_head)) * scale, spread * scale)

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "prior_precision": self.prior_precision}

    def _member_tensors(self) -> dict[str, torch.Tensor]:
        if self.head_samples is None:
            return {}
        return {"posterior_scale": self.posterior_scale, "head_samples": self.head_samples}

    def _load_member_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.posterior_scale, self.head_samples = tensors.get("posterior_scale"), tensors.get("head_samples")
