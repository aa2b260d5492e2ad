"""A learned state value ``V(s)`` that lets a planner look past its horizon.

A planner scores ``H`` imagined steps; a reward that lies further away than that (a pendulum that
must pump energy for several seconds before it can be balanced upright under a sparse reward)
gives it nothing to steer by. With a terminal value the score becomes

    sum_{t<H} gamma^t r_t + gamma^H V(s_H)

and ``V`` carries what lies beyond. ``V`` is fitted by fitted value iteration over the states of
the agent's real transitions: ``rounds`` times per fit, every state's target (or, past
``states_per_round`` transitions, a random draw of that many states) is computed with the value
of the previous round, and the network is regressed on those targets. Two backups:

* ``"model"`` (value iteration in the learned model): the best of ``candidate_actions`` actions
  (the action bounds and uniform draws), ``max_a r(s, a) + gamma (1 - done) V(s'(a))`` with the
  model's mean next state and the planner's reward and termination. This is the value of acting
  well, not of what the agent did: hanging still, a pendulum's value rises with the energy a
  push would give it, as soon as the data hold states from which the upright was reached;
* ``"data"`` (temporal differences on the real transitions): ``r + gamma (1 - terminated) V(s')``,
  the value of the agent's own past behaviour (no model needed).

    value = StateValue(obs_dim=3, act_dim=1, config=ValueConfig(), generator=torch.Generator())
    loss = value.fit(buffer, generator, lookahead)   # lookahead: the model's step for "model"
    value(obs)                                       # [B] in return units (sum of discounted rewards)

The network predicts ``(1 - gamma) V`` (a per-step reward), so its outputs stay near the rewards'
own size whatever the discount; its last layer starts at zero, so the value is 0 everywhere until
rewards have been seen (a planner is not steered by an untrained network). Each fit continues
from the previous weights with a fresh Adam state, so a saved and reloaded value fits exactly as
one never saved.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from forethought.data.buffer import ReplayBuffer
from forethought.data.normalizer import Normalizer
from forethought.models.checkpointed import CheckpointedModel, load_network_tensors, network_tensors
from forethought.models.seeded_mlp import seeded_mlp

BACKUPS = ("model", "data")

# obs [B, o] and a generator -> (rewards [B, K], next observations [B, K, o], done [B, K] bool) of
# K candidate actions per state: one step of the task in the learned model.
Lookahead = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class ValueConfig:
    """How the terminal value is shaped and fitted.

    Attributes:
        hidden_size, hidden_layers: MLP shape (SiLU).
        discount: per agent step, in ``(0, 1)``; the planner discounts its imagined rewards by it too.
        backup: ``"model"`` (value iteration in the learned model) or ``"data"`` (temporal
            differences on the real transitions); see the module docstring.
        candidate_actions: actions compared per state by the ``"model"`` backup, ``>= 2`` (the
            action bounds and uniform draws).
        rounds: backups per fit, ``>= 1``: each round recomputes every state's target.
        states_per_round: the most states a round backs up and regresses on, ``>= 1``: with more
            real transitions than this, each round draws this many of their states at random
            (without replacement), so a fit's cost stops growing with the data. The ``"model"``
            backup evaluates ``candidate_actions`` model steps per state and round.
        updates: gradient steps per fit, shared among the rounds, ``>= rounds``.
        batch_size: states per gradient step, ``>= 1``.
        lr: Adam's learning rate, ``> 0``.
    """

    hidden_size: int = 128
    hidden_layers: int = 2
    # 0.95 (a value horizon of about 20 agent steps) rather than 0.99: each backup shrinks the
    # value's error by the discount, so a fit's 20 rounds remove 64 % of it at 0.95 and 18 % at
    # 0.99. DMC pendulum-swingup runs with each: BENCHMARKS.md L15 and L13 (its preset looks further, L20).
    discount: float = 0.95
    backup: str = "model"
    candidate_actions: int = 32
    rounds: int = 20
    states_per_round: int = 8192
    updates: int = 1000
    batch_size: int = 256
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for name, low in (("hidden_size", 1), ("hidden_layers", 0), ("candidate_actions", 2), ("rounds", 1),
                          ("states_per_round", 1), ("updates", self.rounds if isinstance(self.rounds, int) else 1),
                          ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"value.{name} must be an integer >= {low}, got {value!r}")
        if self.backup not in BACKUPS:
            raise ValueError(f"value.backup must be one of {list(BACKUPS)}, got {self.backup!r}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"value.discount must be in (0, 1), got {self.discount!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"value.lr must be finite and > 0, got {self.lr!r}")


class StateValue(CheckpointedModel):
    """``V(obs) -> [B]``: the discounted return from ``obs [B, o]`` (of acting well with the
    ``"model"`` backup, of the agent's past behaviour with ``"data"``), learned by fitted value
    iteration (see the module docstring). ``act_dim`` is kept only so
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
        self.obs_norm = Normalizer(obs_dim).to(self.device)

    @property
    def discount(self) -> float:
        return self.config.discount

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Values ``[B]`` (return units) of observations ``[B, o]``; differentiable w.r.t. ``obs``."""
        return self._scaled(obs) / (1.0 - self.config.discount)

    def fit(self, buffer: ReplayBuffer, generator: torch.Generator, lookahead: Lookahead | None = None) -> float:
        """``rounds`` rounds of fitted value iteration over the states of ``buffer``, from the
        current weights: each round computes every state's target with the current value (the
        ``"model"`` backup needs ``lookahead``), then takes ``updates // rounds`` Adam steps on
        minibatches drawn from ``generator``. The input normaliser is refitted to the buffer's
        observations first. Returns the mean squared error of the last round's steps, in
        per-step reward units (``(1 - gamma)^2`` times that in return units)."""
        if len(buffer) == 0:
            raise ValueError("cannot fit a value on an empty buffer")
        c = self.config
        if c.backup == "model" and lookahead is None:
            raise ValueError("value.backup='model' needs a lookahead (the model's step); pass one or use 'data'")
        data = buffer.all().to(self.device)
        self.obs_norm.fit(torch.cat([data.obs, data.next_obs]))
        losses: list[float] = []
        for _ in range(c.rounds):
            batch = data
            if len(data.obs) > c.states_per_round:
                rows = torch.randperm(len(data.obs), generator=generator, device=self.device)[:c.states_per_round]
                batch = data[rows]
            targets = self._targets(batch, generator, lookahead)
            losses = self._regress(batch.obs, targets, c.updates // c.rounds, generator)
        self.fitted = True
        return sum(losses) / len(losses)

    @torch.no_grad()
    def _targets(self, data: Any, generator: torch.Generator, lookahead: Lookahead | None) -> torch.Tensor:
        """Every row's backed-up value ``[N]`` in per-step reward units (times ``1 - gamma``)."""
        c = self.config
        if c.backup == "data":
            continues = (~data.terminated.bool()).float()
            return (1.0 - c.discount) * data.reward + c.discount * continues * self._scaled(data.next_obs)
        targets = []
        for obs in data.obs.split(max(1, 65536 // c.candidate_actions)):
            reward, next_obs, done = lookahead(obs, generator)
            backed = (1.0 - c.discount) * reward + c.discount * (~done).float() * self._scaled(
                next_obs.reshape(-1, self.obs_dim)).view(reward.shape)
            targets.append(backed.max(dim=1).values)
        return torch.cat(targets)

    def _scaled(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network(self.obs_norm.normalize(obs))[:, 0]

    def _regress(self, obs: torch.Tensor, targets: torch.Tensor, steps: int, generator: torch.Generator) -> list[float]:
        """``steps`` Adam steps (fresh state) of the network towards ``targets``; the losses."""
        self.network.requires_grad_(True)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.lr)
        inputs, losses = self.obs_norm.normalize(obs), []
        for _ in range(steps):
            rows = torch.randint(len(obs), (self.config.batch_size,), generator=generator, device=self.device)
            loss = (self.network(inputs[rows])[:, 0] - targets[rows]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        self.network.requires_grad_(False)
        return losses

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return network_tensors(self.network, {"obs_norm": self.obs_norm}), asdict(self.config)

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "StateValue":
        model = cls(obs_dim, act_dim, ValueConfig(**config))
        load_network_tensors(model.network, {"obs_norm": model.obs_norm}, tensors)
        return model
