"""A learned state value ``V(s)`` that lets a planner look past its horizon.

A planner scores ``H`` imagined steps; a reward that lies further away than that (a pendulum that
must pump energy for several seconds before it can be balanced upright under a sparse reward)
gives it nothing to steer by. With a terminal value the score becomes

    sum_{t<H} gamma^t r_t + gamma^H V(s_H)

and ``V`` carries what lies beyond. ``V`` is fitted by temporal differences on the agent's real
transitions and real rewards, ``V(s) <- r + gamma (1 - terminated) V_target(s')``, with a slowly
following target network: it is the value of the agent's own past behaviour, so states from
which the agent has reached the reward before score high and the planner steers towards them (as
in POLO, Lowrey et al. 2019, and TD-MPC, Hansen et al. 2022, whose values are learned differently).

    value = StateValue(obs_dim=3, act_dim=1, config=ValueConfig(), generator=torch.Generator())
    loss = value.fit(buffer, generator)      # updates from the current weights
    value(obs)                               # [B] in return units (sum of discounted rewards)

The network predicts ``(1 - gamma) V`` (a per-step reward), so its outputs stay near the rewards'
own size whatever the discount; its last layer starts at zero, so the value is 0 everywhere until
rewards have been seen (a planner is not steered by an untrained network). Each fit continues from the previous weights with a fresh Adam
state, so a saved and reloaded value fits exactly as one never saved.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from forethought.data.buffer import ReplayBuffer
from forethought.data.normalizer import Normalizer
from forethought.models.checkpointed import CheckpointedModel, load_network_tensors, network_tensors
from forethought.models.seeded_mlp import seeded_mlp


@dataclass
class ValueConfig:
    """How the terminal value is shaped and fitted.

    Attributes:
        hidden_size, hidden_layers: MLP shape (SiLU).
        discount: per agent step, in ``(0, 1)``; the planner discounts its imagined rewards by it too.
        updates: gradient steps per fit (one fit per model fit), ``>= 1``.
        batch_size: transitions per step, ``>= 1``.
        lr: Adam's learning rate, ``> 0``.
        target_rate: Polyak rate of the target network per step, in ``(0, 1]``.
    """

    hidden_size: int = 128
    hidden_layers: int = 2
    discount: float = 0.99
    updates: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    target_rate: float = 0.01

    def __post_init__(self) -> None:
        for name, low in (("hidden_size", 1), ("hidden_layers", 0), ("updates", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"value.{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"value.discount must be in (0, 1), got {self.discount!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"value.lr must be finite and > 0, got {self.lr!r}")
        if not 0.0 < self.target_rate <= 1.0:
            raise ValueError(f"value.target_rate must be in (0, 1], got {self.target_rate!r}")


class StateValue(CheckpointedModel):
    """``V(obs) -> [B]``: the discounted return of the agent's behaviour from ``obs [B, o]``,
    learned by temporal differences (see the module docstring). ``act_dim`` is kept only so
    checkpoints name the sizes of the task they belong to."""

    kind = "state_value"

    def __init__(self, obs_dim: int, act_dim: int, config: ValueConfig | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.config = config or ValueConfig()
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.device = generator.device
        c = self.config
        self.network = seeded_mlp(obs_dim, 1, c.hidden_size, c.hidden_layers, generator, nn.SiLU).requires_grad_(False)
        self.network[-1].weight.zero_()  # V = 0 everywhere until rewards say otherwise
        self.network[-1].bias.zero_()
        self.target = copy.deepcopy(self.network)
        self.obs_norm = Normalizer(obs_dim).to(self.device)

    @property
    def discount(self) -> float:
        return self.config.discount

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Values ``[B]`` (return units) of observations ``[B, o]``; differentiable w.r.t. ``obs``."""
        return self._value(self.network, obs)

    def _value(self, network: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        return network(self.obs_norm.normalize(obs))[:, 0] / (1.0 - self.config.discount)

    def fit(self, buffer: ReplayBuffer, generator: torch.Generator) -> float:
        """``updates`` temporal-difference steps on minibatches of ``buffer``'s transitions drawn
        from ``generator``, from the current weights; the input normaliser is refitted to the
        buffer's observations first. Returns the mean squared TD error of the last tenth of the
        steps, in per-step reward units (``(1 - gamma)^2`` times that in return units)."""
        if len(buffer) == 0:
            raise ValueError("cannot fit a value on an empty buffer")
        c = self.config
        data = buffer.all().to(self.device)
        self.obs_norm.fit(torch.cat([data.obs, data.next_obs]))
        continues = (1.0 - data.terminated.float()) * c.discount
        scaled_reward = data.reward * (1.0 - c.discount)
        self.network.requires_grad_(True)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=c.lr)
        losses: list[float] = []
        for step in range(c.updates):
            rows = torch.randint(len(data), (c.batch_size,), generator=generator, device=self.device)
            inputs = self.obs_norm.normalize(data.obs[rows])
            with torch.no_grad():
                bootstrap = self.target(self.obs_norm.normalize(data.next_obs[rows]))[:, 0]
                target = scaled_reward[rows] + continues[rows] * bootstrap
            loss = (self.network(inputs)[:, 0] - target).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for online, lagged in zip(self.network.parameters(), self.target.parameters()):
                    lagged.lerp_(online, c.target_rate)
            if step >= c.updates - max(c.updates // 10, 1):
                losses.append(float(loss.detach()))
        self.network.requires_grad_(False)
        self.fitted = True
        return sum(losses) / len(losses)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = network_tensors(self.network, {"obs_norm": self.obs_norm})
        tensors.update({f"target.{name}": t for name, t in self.target.state_dict().items()})
        return tensors, asdict(self.config)

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "StateValue":
        model = cls(obs_dim, act_dim, ValueConfig(**config))
        load_network_tensors(model.network, {"obs_norm": model.obs_norm}, tensors)
        model.target.load_state_dict({name[len("target."):]: t for name, t in tensors.items()
                                      if name.startswith("target.")})
        return model
