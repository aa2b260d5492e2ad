"""The one agent interface every algorithm implements, and its one record per episode.

    agent = PETS(env, PETSConfig(), seed=0)      # any Agent: PETS, SAC, Dyna, MBPO, GuidedMPC, PlaNet, Dreamer
    agent.learn(episodes=5)                      # or steps=2_000: a budget in real environment steps
    action = agent.act(obs)                      # deterministic by default
    agent.save("runs/x/agent"); agent = PETS.load("runs/x/agent", env)

Subclasses implement :meth:`Agent.advance` (run until an episode ends or a step limit is hit) and
the persistence pair; :meth:`Agent.learn` turns budgets into calls of it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np


@dataclass
class EpisodeResult:
    """One finished real episode of an agent.

    ``episode``: its index; ``total_reward``: its return; ``steps``: agent decisions;
    ``env_steps``: raw environment steps of the agent so far, this episode included (action
    repeats counted, logged offline transitions not); ``wall_s``: seconds the episode took,
    learning included; ``random``: its actions were uniform random (seed episodes);
    ``info``: algorithm-specific figures (model loss, planning time, loss parts...);
    ``frames``: RGB frames when it was filmed (not saved)."""

    episode: int
    total_reward: float
    steps: int
    env_steps: int
    wall_s: float
    random: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    frames: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The record without its frames (what an agent saves)."""
        return {k: v for k, v in asdict(self).items() if k != "frames"}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EpisodeResult":
        return cls(**values)


class Agent(ABC):
    """An agent acting in and learning from one environment.

    Attributes: ``env``, ``config`` (its config dataclass), ``seed`` (every random stream derives
    from it, see :mod:`forethought.seeding`), ``history`` (one :class:`EpisodeResult` per
    finished episode).
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    metrics: ClassVar[tuple[str, ...]]  # the keys of EpisodeResult.info, in the order runs log them
    env: gym.Env
    config: Any
    seed: int
    history: list[EpisodeResult]

    @property
    @abstractmethod
    def env_steps(self) -> int:
        """Raw real environment steps taken by this agent (offline rows not counted)."""

    @abstractmethod
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """An environment action for observation ``obs``; ``deterministic=False`` explores where
        the agent has a notion of it (a stochastic policy's sample, latent exploration noise)."""

    def reset(self) -> None:
        """Forget per-episode state (warm starts, filtered latent state) before a new episode."""

    @abstractmethod
    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult | None:
        """Learn from real steps until an episode ends (its record, also appended to
        :attr:`history`) or, for agents that learn step by step, until ``max_steps`` steps are
        taken (None; the episode carries over to the next call). Episode-wise agents always finish
        the episode. ``render`` films the episode that ends in this call."""

    def learn(self, steps: int | None = None, episodes: int | None = None,
              callback: Callable[[EpisodeResult], None] | None = None, render: bool = False) -> list[EpisodeResult]:
        """Learn for ``steps`` more real environment steps and/or ``episodes`` more episodes
        (whichever ends first; at least one must be given). Step-wise agents stop exactly at the
        step budget; episode-wise ones (PETS, PlaNet, Dreamer) after the episode that reaches it.
        ``callback`` sees every finished episode; ``render`` films the last one when the budget
        is in episodes. Returns the episodes finished in this call."""
        for name, value in (("steps", steps), ("episodes", episodes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 (or None), got {value!r}")
        if steps is None and episodes is None:
            raise ValueError("give a budget: steps=N real environment steps and/or episodes=N")
        first_step, finished = self.env_steps, []
        while True:
            taken = self.env_steps - first_step
            if (steps is not None and taken >= steps) or (episodes is not None and len(finished) >= episodes):
                return finished
            last = episodes is not None and len(finished) == episodes - 1
            result = self.advance(None if steps is None else steps - taken, render=render and last)
            if result is not None:
                finished.append(result)
                if callback is not None:
                    callback(result)

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the agent to folder ``path`` (safetensors + JSON; loading runs no code)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike, env: gym.Env) -> "Agent":
        """The agent :meth:`save` wrote, around ``env`` (the same kind of environment)."""
