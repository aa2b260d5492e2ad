"""MuZero's three learned functions (Schrittwieser et al., 2020) as small MLPs, for Discrete actions.

    net = MuZeroNet(obs_dim=4, num_actions=2, generator=torch.Generator().manual_seed(0))
    latent, logits, value = net.initial_inference(obs)              # obs [B, o]
    latent, reward, logits, value = net.recurrent_inference(latent, action)   # action [B] (indices)
    frozen = FrozenMuZero(net)             # a NumPy snapshot the tree search calls one state at a time

* representation ``h``: observation -> latent state ``s`` ``[B, latent_dim]``;
* dynamics ``g``: ``(s, one-hot a)`` -> next latent state and the reward of that step;
* prediction ``f``: ``s`` -> policy logits ``[B, A]`` and value.

Every latent state is min-max scaled to ``[0, 1]`` over its own features, as in the paper, so the
dynamics always sees inputs on one scale. Values and rewards are regressed as scalars in the
space of the invertible transform ``phi(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` (the paper's,
with its categorical support left out): a return of 300 and one of 3 give errors of comparable
size. The ``*_inference`` methods return real units; the training loss works in ``phi`` space.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forethought.models.seeded_mlp import seeded_mlp

TRANSFORM_EPS = 1e-3


def scale_value(x: torch.Tensor) -> torch.Tensor:
    """``phi(x)`` elementwise (any shape)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + TRANSFORM_EPS * x


def unscale_value(y: torch.Tensor) -> torch.Tensor:
    """``phi^-1(y)`` elementwise, the exact inverse of :func:`scale_value`."""
    # (sqrt(1 + 4 eps c) - 1) / (2 eps) rewritten as 2c / (sqrt(1 + 4 eps c) + 1): no cancellation in float32
    c = y.abs() + 1.0 + TRANSFORM_EPS
    root = 2.0 * c / (torch.sqrt(1.0 + 4.0 * TRANSFORM_EPS * c) + 1.0)
    return torch.sign(y) * (root.pow(2) - 1.0)


def min_max_scale(latent: torch.Tensor) -> torch.Tensor:
    """Each row of ``[B, d]`` mapped linearly onto ``[0, 1]`` (a constant row becomes zeros)."""
    low = latent.min(dim=-1, keepdim=True).values
    high = latent.max(dim=-1, keepdim=True).values
    return (latent - low) / (high - low).clamp_min(1e-5)


class MuZeroNet(nn.Module):
    """Representation, dynamics and prediction networks over a ``latent_dim`` latent state.

    Args:
        obs_dim: length of the flat observation.
        num_actions: ``n`` of the Discrete action space.
        latent_dim, hidden_size, hidden_layers: sizes of the latent state and of each MLP.
        generator: initialises every weight (its device is the network's).
    """

    def __init__(self, obs_dim: int, num_actions: int, generator: torch.Generator, latent_dim: int = 32,
                 hidden_size: int = 64, hidden_layers: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.num_actions, self.latent_dim = obs_dim, num_actions, latent_dim
        self.representation = seeded_mlp(obs_dim, latent_dim, hidden_size, hidden_layers, generator,
                                         activation=nn.ELU)
        self.dynamics_net = seeded_mlp(latent_dim + num_actions, latent_dim + 1, hidden_size, hidden_layers, generator,
                                       activation=nn.ELU)
        self.prediction_net = seeded_mlp(latent_dim, num_actions + 1, hidden_size, hidden_layers, generator,
                                         activation=nn.ELU)

    # ------------------------------------------------------------------ the three functions
    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """Latent states ``[B, d]`` in ``[0, 1]`` of observations ``[B, o]``."""
        return min_max_scale(self.representation(obs))

    def dynamics(self, latent: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(next latent [B, d], reward [B] in phi space)`` after actions ``[B]`` (integer indices)."""
        one_hot = F.one_hot(action.long(), self.num_actions).to(latent.dtype)
        out = self.dynamics_net(torch.cat([latent, one_hot], dim=-1))
        return min_max_scale(out[:, :-1]), out[:, -1]

    def predict(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(policy logits [B, A], value [B] in phi space)`` of latent states ``[B, d]``."""
        out = self.prediction_net(latent)
        return out[:, :-1], out[:, -1]

    # ------------------------------------------------------------------ what the search calls
    @torch.no_grad()
    def initial_inference(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(latent [B, d], logits [B, A], value [B])`` of observations ``[B, o]``, value in real units."""
        latent = self.represent(obs)
        logits, value = self.predict(latent)
        return latent, logits, unscale_value(value)

    @torch.no_grad()
    def recurrent_inference(self, latent: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(next latent [B, d], reward [B], logits [B, A], value [B])`` after actions ``[B]``,
        reward and value in real units."""
        next_latent, reward = self.dynamics(latent, action)
        logits, value = self.predict(next_latent)
        return next_latent, unscale_value(reward), logits, unscale_value(value)


def _unscale_float(y: float) -> float:
    """:func:`unscale_value` of one float."""
    c = abs(y) + 1.0 + TRANSFORM_EPS
    root = 2.0 * c / (math.sqrt(1.0 + 4.0 * TRANSFORM_EPS * c) + 1.0)
    return math.copysign(root * root - 1.0, y)


class FrozenMuZero:
    """A NumPy snapshot (float64) of a :class:`MuZeroNet` for the tree search: one state at a time,
    no autograd and no framework overhead per call, which is what a search of single-state calls
    spends its time on. Values and rewards in real units; logits ``[A]``; latent ``[d]``."""

    def __init__(self, net: MuZeroNet) -> None:
        def layers(module: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(m.weight.detach().cpu().double().numpy().T.copy(), m.bias.detach().cpu().double().numpy())
                    for m in module if isinstance(m, nn.Linear)]
        self.latent_dim = net.latent_dim
        self.representation, self.dynamics_net = layers(net.representation), layers(net.dynamics_net)
        self.prediction_net = layers(net.prediction_net)

    @staticmethod
    def _mlp(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, first: np.ndarray | None = None
             ) -> np.ndarray:
        """The MLP of ``layers`` on ``x``; ``first`` replaces the first layer's pre-activation."""
        for i, (weight, bias) in enumerate(layers):
            x = first if i == 0 and first is not None else x @ weight + bias
            if i < len(layers) - 1:
                x = np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
        return x

    @staticmethod
    def _scale(latent: np.ndarray) -> np.ndarray:
        low, high = latent.min(), latent.max()
        return (latent - low) / max(high - low, 1e-5)

    def _predict(self, latent: np.ndarray) -> tuple[np.ndarray, float]:
        out = self._mlp(self.prediction_net, latent)
        return out[:-1], _unscale_float(float(out[-1]))

    def initial_inference(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(latent [d], logits [A], value)`` of one flat observation ``[o]``."""
        latent = self._scale(self._mlp(self.representation, np.asarray(obs, np.float64)))
        return (latent, *self._predict(latent))

    def recurrent_inference(self, latent: np.ndarray, action: int) -> tuple[np.ndarray, float, np.ndarray, float]:
        """``(next latent [d], reward, logits [A], value)`` after action index ``action``."""
        weight, bias = self.dynamics_net[0]
        # the one-hot action's product is one row of the weight
        first = latent @ weight[:self.latent_dim] + weight[self.latent_dim + action] + bias
        out = self._mlp(self.dynamics_net, latent, first=first)
        next_latent = self._scale(out[:-1])
        return (next_latent, _unscale_float(float(out[-1])), *self._predict(next_latent))


def _scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` forward; its gradient multiplied by ``scale`` backward."""
    return x * scale + x.detach() * (1.0 - scale)


def unroll_loss(net: MuZeroNet, obs: torch.Tensor, actions: torch.Tensor, value_targets: torch.Tensor,
                value_mask: torch.Tensor, reward_targets: torch.Tensor, reward_mask: torch.Tensor,
                policy_targets: torch.Tensor, policy_mask: torch.Tensor, value_weight: float = 0.25
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """MuZero's training loss over ``K`` unrolled steps, averaged over the batch.

    ``obs [B, o]``, ``actions [B, K]`` (indices), ``value_targets [B, K + 1]`` and
    ``reward_targets [B, K]`` in real units, ``policy_targets [B, K + 1, A]`` (visit
    distributions); each ``*_mask`` (same shape without ``A``) is 1 where a target exists. Value
    and reward errors are squared in ``phi`` space, the policy loss is the cross-entropy; the
    loss of each unrolled step is scaled by ``1/K`` and the gradient entering each dynamics step by
    1/2, as in the paper. Returns the loss and its parts (floats: value, reward, policy)."""
    steps, batch = actions.shape[1], obs.shape[0]
    latent = net.represent(obs)
    parts = {"value": obs.new_zeros(()), "reward": obs.new_zeros(()), "policy": obs.new_zeros(())}
    total = obs.new_zeros(())
    for k in range(steps + 1):
        weight = 1.0 if k == 0 else 1.0 / steps
        logits, value = net.predict(latent)
        value_loss = ((value - scale_value(value_targets[:, k])).pow(2) * value_mask[:, k]).sum() / batch
        policy_loss = (-(policy_targets[:, k] * F.log_softmax(logits, -1)).sum(-1) * policy_mask[:, k]).sum() / batch
        step_loss = value_weight * value_loss + policy_loss
        parts["value"], parts["policy"] = parts["value"] + value_loss.detach(), parts["policy"] + policy_loss.detach()
        if k > 0:
            step_loss = step_loss + reward_loss
            parts["reward"] = parts["reward"] + reward_loss.detach()
        total = total + weight * step_loss
        if k < steps:
            latent, reward = net.dynamics(latent, actions[:, k])
            latent = _scale_gradient(latent, 0.5)
            reward_loss = ((reward - scale_value(reward_targets[:, k])).pow(2) * reward_mask[:, k]).sum() / batch
    return total, {name: float(value) for name, value in parts.items()}
