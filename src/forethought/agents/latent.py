"""What PlaNet and Dreamer share: a pixel environment, a sequence buffer, a latent world model, and
the loop "collect an episode, then train on sequences sampled from everything so far".

Actions are normalised: the world model, the planner and the actor work in ``[-1, 1]`` per
dimension, mapped linearly onto the environment's Box bounds when stepping.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.episode import episode_seed
from forethought.config import build
from forethought.data.sequences import SequenceBuffer
from forethought.models.rssm import LatentState
from forethought.models.world_model import LatentModelConfig, LatentWorldModel
from forethought.serialization import atomic_write_text, load_checkpoint, read_agent_state, save_checkpoint


@dataclass
class LatentAgentConfig:
    """Data collection and world-model training shared by the latent agents.

    ``seed_episodes`` random-action episodes come first; after every collected episode the agent
    makes ``train_steps`` updates, each on ``batch_size`` sequences of ``sequence_length`` frames.
    """

    model: LatentModelConfig = field(default_factory=LatentModelConfig)
    seed_episodes: int = 5
    train_steps: int = 100
    batch_size: int = 16
    sequence_length: int = 32
    buffer_capacity: int = 1_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("seed_episodes", "train_steps", "batch_size", "sequence_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2 frames, got {self.sequence_length}")


@dataclass
class LatentEpisodeResult:
    """One collected episode: its return, real environment steps so far (action repeats counted),
    the mean world-model loss parts of the updates that followed it, the acting cost, and the
    seconds spent in those updates (``train_s``) and in the whole episode (``wall_s``)."""

    episode: int
    env_steps: int
    total_reward: float
    steps: int
    random: bool
    train: dict[str, float]
    act_ms_per_step: float
    train_s: float
    wall_s: float


class LatentAgent(ABC):
    """Collects episodes from a pixel environment and trains a :class:`LatentWorldModel` on them;
    subclasses choose actions from the filtered latent state and may train on imagination."""

    kind: str = "latent"
    config_class: type[LatentAgentConfig] = LatentAgentConfig

    def __init__(self, env: gym.Env, config: LatentAgentConfig) -> None:
        space, obs_space = env.action_space, env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or not np.isfinite(space.low).all() \
                or not np.isfinite(space.high).all():
            raise ValueError(f"{type(self).__name__} needs a 1-D Box action space with finite bounds, got {space}")
        if obs_space.dtype != np.uint8 or len(obs_space.shape) != 3 or obs_space.shape[0] != 3 \
                or obs_space.shape[1:] != (config.model.image_size,) * 2:
            raise ValueError(f"{type(self).__name__} needs uint8 [3, {config.model.image_size}, {config.model.image_size}] "
                             f"image observations (see forethought.envs.make_pixel_env), got {obs_space}")
        self.env, self.config = env, config
        self.action_dim = space.shape[0]
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.model = LatentWorldModel(config.model, self.action_dim)
        self.buffer = SequenceBuffer(obs_space.shape, self.action_dim, capacity=config.buffer_capacity)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[LatentEpisodeResult] = []
        self.env_steps = 0
        self._state: LatentState | None = None
        self.last_action = np.zeros(self.action_dim, np.float32)

    # ------------------------------------------------------------------ acting
    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        """Normalised ``[-1, 1]`` action -> environment units."""
        return (self._low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)).astype(np.float32)

    def reset(self) -> None:
        """Forget the filtered state and the last action (call when an episode starts)."""
        self._state = None
        self.last_action = np.zeros(self.action_dim, np.float32)

    @torch.no_grad()
    def observe(self, obs: np.ndarray) -> LatentState:
        """Update the filtered state with frame ``obs``, reached by :attr:`last_action`."""
        frame = torch.from_numpy(np.ascontiguousarray(obs))[None]
        action = torch.as_tensor(self.last_action, dtype=torch.float32).reshape(1, self.action_dim)
        self._state = self.model.observe_step(self._state, action, frame)
        return self._state

    @abstractmethod
    def act_latent(self, state: LatentState, explore: bool) -> np.ndarray:
        """Normalised action ``[action_dim]`` for the filtered state (batch of one)."""

    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """Environment action for frame ``obs`` (call :meth:`reset` at each episode's start: the
        filtered state is kept between calls). :attr:`last_action` holds it normalised."""
        state = self.observe(obs)
        with torch.no_grad():
            self.last_action = np.asarray(self.act_latent(state, explore), np.float32)
        return self.to_env_action(self.last_action)

    # ------------------------------------------------------------------ learning
    def train_behaviour(self, states: LatentState) -> dict[str, float]:
        """Train on imagination from the posterior states of the batch just used (Dreamer)."""
        return {}

    def train(self, steps: int) -> dict[str, float]:
        """``steps`` updates of the world model (and behaviour); the mean of each loss part."""
        sums: dict[str, float] = {}
        for _ in range(steps):
            batch = self.buffer.sample(self.config.batch_size, self.config.sequence_length, self.generator)
            parts, states = self.model.train_step(batch)
            parts.update(self.train_behaviour(states))
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
        return {key: value / steps for key, value in sums.items()}

    def run_episode(self, random: bool, seed: int, render: bool = False) -> tuple[float, int, float, list[np.ndarray]]:
        """Collect one episode into the buffer: ``(return, agent steps, acting ms per step, frames)``."""
        obs, info = self.env.reset(seed=seed)
        self.buffer.start_episode(obs)
        self.reset()
        total, steps, act_s, frames = 0.0, 0, 0.0, [obs.transpose(1, 2, 0)] if render else []
        while True:
            start = time.perf_counter()
            if random:
                self.last_action = (torch.rand(self.action_dim, generator=self.generator) * 2 - 1).numpy()
                action = self.to_env_action(self.last_action)
            else:
                action = self.act(obs, explore=True)
            act_s += time.perf_counter() - start
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.env_steps += int(info.get("repeat_steps", 1))
            self.buffer.add_step(self.last_action, reward, obs, terminated)
            total, steps = total + float(reward), steps + 1
            if render:
                frames.append(obs.transpose(1, 2, 0))
            if terminated or truncated:
                return total, steps, 1000.0 * act_s / steps, frames

    def learn(self, episodes: int, callback: Callable[[LatentEpisodeResult, list[np.ndarray]], None] | None = None,
              render_last: bool = False) -> list[LatentEpisodeResult]:
        """Collect ``episodes`` more episodes (the first ``seed_episodes`` of the run with random
        actions), training ``train_steps`` updates after each once the seed episodes are in."""
        for index in range(episodes):
            start = time.perf_counter()
            number = len(self.history)
            random = number < self.config.seed_episodes
            total, steps, act_ms, frames = self.run_episode(random, episode_seed(self.config.seed, number),
                                                            render=render_last and index == episodes - 1)
            ready = number + 1 >= self.config.seed_episodes
            train_start = time.perf_counter()
            train = self.train(self.config.train_steps) if ready else {}
            now = time.perf_counter()
            result = LatentEpisodeResult(number, self.env_steps, total, steps, random, train, act_ms,
                                         now - train_start, now - start)
            self.history.append(result)
            if callback is not None:
                callback(result, frames)
        return self.history[-episodes:]

    # ------------------------------------------------------------------ persistence
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Subclass state to save beside the world model (actor, critic, ...)."""
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`extra_tensors` saved."""

    def save(self, path: str | os.PathLike) -> None:
        """Write the agent to folder ``path``: ``world_model.*``, ``buffer.npz``, ``agent.*``
        (generator and subclass tensors) and ``state.json`` (config and history)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "world_model")
        self.buffer.save(path / "buffer.npz")
        save_checkpoint(path / "agent", {"generator": self.generator.get_state(), **self.extra_tensors()}, {})
        state = {"kind": self.kind, "config": asdict(self.config), "env_steps": self.env_steps,
                 "history": [asdict(r) for r in self.history]}
        atomic_write_text(path / "state.json", json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env) -> "LatentAgent":
        """Rebuild an agent saved with :meth:`save` around ``env`` (the same kind of environment)."""
        path = Path(path)
        state = read_agent_state(path, cls.__name__)
        if state.get("kind") != cls.kind:
            raise ValueError(f"{path} holds a {state.get('kind')!r} agent, not {cls.kind!r}")
        agent = cls(env, build(cls.config_class, state["config"]))
        agent.model = LatentWorldModel.load(path / "world_model")
        agent.buffer = SequenceBuffer.load(path / "buffer.npz", capacity=agent.config.buffer_capacity)
        tensors, _ = load_checkpoint(path / "agent")
        agent.generator.set_state(tensors.pop("generator"))
        agent.load_extra_tensors(tensors)
        agent.env_steps, agent.history = state["env_steps"], [LatentEpisodeResult(**r) for r in state["history"]]
        return agent
