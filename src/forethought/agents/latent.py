"""What PlaNet and Dreamer share: a pixel environment, a sequence buffer, a latent world model, and
the loop "collect an episode, then train on sequences sampled from everything so far".

Actions are normalised: the world model, the planner and the actor work in ``[-1, 1]`` per
dimension, mapped linearly onto the environment's Box bounds when stepping.

``device`` (``cpu``, ``cuda`` or ``auto``) holds the world model, the behaviour, the generators
and the sequence batches (sampled from the NumPy buffer, then moved there).
"""

from __future__ import annotations

import json
import os
import time
from abc import abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.base import Agent, EpisodeResult
from forethought.config import build
from forethought.data.env_loop import EnvLoop
from forethought.data.sequences import SequenceBatch, SequenceBuffer
from forethought.models.rssm import LatentState
from forethought.models.world_model import LatentModelConfig, LatentWorldModel
from forethought.device import resolve_device
from forethought.seeding import derive_seed, episode_seed, set_state
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

    def __post_init__(self) -> None:
        for name in ("seed_episodes", "train_steps", "batch_size", "sequence_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2 frames, got {self.sequence_length}")


class _SequenceRecorder:
    """Records an episode into a :class:`SequenceBuffer` with the agent's normalised action."""

    def __init__(self, agent: "LatentAgent", buffer: SequenceBuffer) -> None:
        self.agent, self.buffer = agent, buffer

    def start_episode(self, obs: np.ndarray) -> None:
        self.buffer.start_episode(obs)

    def add_step(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        self.buffer.add_step(self.agent.last_action, reward, next_obs, terminated)


class LatentAgent(Agent):
    """Collects episodes from a pixel environment and trains a :class:`LatentWorldModel` on them;
    subclasses choose actions from the filtered latent state and may train on imagination.

    Each episode's record has in ``info`` the mean world-model loss parts of the updates after
    it, ``act_ms_per_step`` and ``train_s`` (seconds of those updates)."""

    name: str = "latent"
    metrics: tuple[str, ...] = ("loss", "reconstruction", "reward_mse", "continue_bce", "kl", "act_ms_per_step",
                                "train_s")
    config_class: type[LatentAgentConfig] = LatentAgentConfig

    def __init__(self, env: gym.Env, config: LatentAgentConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        space, obs_space = env.action_space, env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or not np.isfinite(space.low).all() \
                or not np.isfinite(space.high).all():
            raise ValueError(f"{type(self).__name__} needs a 1-D Box action space with finite bounds, got {space}")
        if obs_space.dtype != np.uint8 or len(obs_space.shape) != 3 or obs_space.shape[0] != 3 \
                or obs_space.shape[1:] != (config.model.image_size,) * 2:
            raise ValueError(f"{type(self).__name__} needs uint8 [3, {config.model.image_size}, {config.model.image_size}] "
                             f"image observations (see forethought.envs.make_pixel_env), got {obs_space}")
        self.env, self.config, self.seed = env, config, derive_seed(seed)
        self.device = resolve_device(device)
        self.action_dim = space.shape[0]
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.model = LatentWorldModel(config.model, self.action_dim, seed=self.seed, device=self.device)
        self.buffer = SequenceBuffer(obs_space.shape, self.action_dim, capacity=config.buffer_capacity)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        self.history: list[EpisodeResult] = []
        self._env_steps = 0
        self._state: LatentState | None = None
        self.last_action = np.zeros(self.action_dim, np.float32)

    @property
    def env_steps(self) -> int:
        """Raw environment steps so far (action repeats counted)."""
        return self._env_steps

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
        frame = torch.from_numpy(np.ascontiguousarray(obs))[None].to(self.device)
        action = torch.as_tensor(self.last_action, dtype=torch.float32, device=self.device).reshape(1, self.action_dim)
        self._state = self.model.observe_step(self._state, action, frame)
        return self._state

    @abstractmethod
    def act_latent(self, state: LatentState, explore: bool) -> np.ndarray:
        """Normalised action ``[action_dim]`` for the filtered state (batch of one)."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment action for frame ``obs``, with exploration noise unless ``deterministic``
        (call :meth:`reset` at each episode's start: the filtered state is kept between calls).
        :attr:`last_action` holds it normalised."""
        state = self.observe(obs)
        with torch.no_grad():
            self.last_action = np.asarray(self.act_latent(state, not deterministic), np.float32)
        return self.to_env_action(self.last_action)

    # ------------------------------------------------------------------ learning
    def train_behaviour(self, states: LatentState, batch: SequenceBatch | None = None) -> dict[str, float]:
        """Train on imagination from ``states``: the posterior states ``[B, L, ...]`` of ``batch``,
        the batch just used (or any start states, without a batch) (Dreamer)."""
        return {}

    def train(self, steps: int) -> dict[str, float]:
        """``steps`` updates of the world model (and behaviour); the mean of each loss part."""
        sums: dict[str, float] = {}
        for _ in range(steps):
            batch = self.buffer.sample(self.config.batch_size, self.config.sequence_length, self.generator)
            parts, states = self.model.train_step(batch)
            parts.update(self.train_behaviour(states, batch))
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
        return {key: value / steps for key, value in sums.items()}

    def recorder(self, buffer: SequenceBuffer) -> _SequenceRecorder:
        """What stores this agent's episodes into ``buffer`` (frames with normalised actions)."""
        return _SequenceRecorder(self, buffer)

    def _random_action(self, obs: np.ndarray) -> np.ndarray:
        unit = torch.rand(self.action_dim, generator=self.generator, device=self.device)
        self.last_action = (unit * 2 - 1).cpu().numpy()
        return self.to_env_action(self.last_action)

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult:
        """Collect one episode into the buffer (the first ``seed_episodes`` of the run with
        random actions, the rest exploring), then ``train_steps`` updates once the seed episodes
        are in. The episode always runs to its end (``max_steps`` does not cut it)."""
        start = time.perf_counter()
        number = len(self.history)
        random = number < self.config.seed_episodes
        self.reset()
        loop = EnvLoop(self.env, self.recorder(self.buffer), render=render, frames=lambda obs: obs.transpose(1, 2, 0))
        policy = self._random_action if random else (lambda obs: self.act(obs, deterministic=False))
        episode = loop.run(policy, seed=episode_seed(self.seed, number))
        self._env_steps += episode.env_steps
        train_start = time.perf_counter()
        train = self.train(self.config.train_steps) if number + 1 >= self.config.seed_episodes else {}
        now = time.perf_counter()
        info = {**train, "act_ms_per_step": episode.act_ms_per_step, "train_s": now - train_start}
        result = EpisodeResult(number, episode.total_reward, episode.steps, self.env_steps, now - start, random, info,
                               episode.frames)
        self.history.append(result)
        return result

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
        state = {"kind": self.name, "config": asdict(self.config), "seed": self.seed, "env_steps": self.env_steps,
                 "history": [r.to_dict() for r in self.history]}
        atomic_write_text(path / "state.json", json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, device: str | torch.device = "cpu") -> "LatentAgent":
        """Rebuild an agent saved with :meth:`save` around ``env`` (the same kind of environment),
        on ``device``."""
        path = Path(path)
        state = read_agent_state(path, cls.__name__)
        if state.get("kind") != cls.name:
            raise ValueError(f"{path} holds a {state.get('kind')!r} agent, not {cls.name!r}")
        agent = cls(env, build(cls.config_class, state["config"]), seed=state["seed"], device=device)
        agent.model = LatentWorldModel.load(path / "world_model", device=agent.device)
        agent.buffer = SequenceBuffer.load(path / "buffer.npz", capacity=agent.config.buffer_capacity)
        tensors, _ = load_checkpoint(path / "agent")
        set_state(agent.generator, tensors.pop("generator"), f"{path / 'agent'}: generator")
        agent.load_extra_tensors(tensors)
        agent._env_steps, agent.history = state["env_steps"], [EpisodeResult.from_dict(r) for r in state["history"]]
        return agent
