"""MuZero (Schrittwieser et al., 2020) for Discrete actions: tree search in a learned latent model.

Every real step runs a pUCT search (:mod:`forethought.planning.mcts`) over the learned
representation, dynamics and prediction networks (:class:`~forethought.models.muzero_net.MuZeroNet`)
with Dirichlet noise at the root, and samples the action from the root's visit counts at the
temperature of the schedule. Whole episodes, with the visit distribution of every step, go into a
trajectory replay; after each episode the networks take ``updates_per_step`` gradient steps per
real step taken since ``learning_starts``, each on positions unrolled ``unroll_steps`` through the
dynamics against n-step value targets, the observed rewards and the search policies.

    agent = MuZero(gym.make("CartPole-v1"), MuZeroConfig(), seed=0)
    agent.learn(steps=10_000)
    action = agent.act(obs)                  # search without noise, the most visited action

The value targets bootstrap from the network's current value of ``o_{t+n}`` (computed when the
batch is drawn), not from the value the search stored when acting: a fresh estimate, which the
paper's Reanalyze variant also uses. Without a replay of stale search values there is no target
network to keep.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.base import Agent, EpisodeResult
from forethought.config import build
from forethought.data.collect import flat_dim
from forethought.data.env_loop import EnvLoop
from forethought.data.trajectories import TrajectoryBuffer
from forethought.device import resolve_device
from forethought.models.muzero_net import FrozenMuZero, MuZeroNet, unroll_loss
from forethought.planning.mcts import MCTSSettings, SearchResult, search, select_action
from forethought.seeding import derive_seed, episode_seed
from forethought.serialization import (atomic_write_text, load_checkpoint, load_module_tensors, module_tensors,
                                       read_agent_state, save_checkpoint)


@dataclass
class MuZeroConfig:
    """MuZero hyper-parameters, flat apart from the search.

    Networks: ``latent_dim``, ``hidden_size``, ``hidden_layers`` (each of the three MLPs).
    Targets: ``unroll_steps`` (K), ``td_steps`` (n), ``discount``. Training: Adam with
    ``learning_rate`` and ``weight_decay``, ``batch_size`` positions per update,
    ``updates_per_step`` updates per real step once ``learning_starts`` real steps are stored,
    ``value_weight`` on the value loss (the paper's 0.25), gradients clipped to ``max_grad_norm``.
    ``buffer_capacity``: real steps kept (whole episodes). ``temperature``: ``[[env_steps,
    T], ...]`` pairs, the visit-count temperature from each real-step count on (the first at 0)."""

    latent_dim: int = 32
    hidden_size: int = 64
    hidden_layers: int = 2
    unroll_steps: int = 5
    td_steps: int = 10
    discount: float = 0.99
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    updates_per_step: float = 0.5
    learning_starts: int = 500
    value_weight: float = 0.25
    max_grad_norm: float = 10.0
    buffer_capacity: int = 100_000
    temperature: list[list[float]] = field(default_factory=lambda: [[0, 1.0], [10_000, 0.5], [20_000, 0.25]])
    search: MCTSSettings = field(default_factory=MCTSSettings)

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden_size", "hidden_layers", "unroll_steps", "td_steps", "batch_size",
                     "buffer_capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"agent.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.learning_starts, bool) or not isinstance(self.learning_starts, int) \
                or self.learning_starts < 0:
            raise ValueError(f"agent.learning_starts must be an integer >= 0, got {self.learning_starts!r}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"agent.discount must be in (0, 1], got {self.discount}")
        for name in ("learning_rate", "max_grad_norm", "value_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"agent.{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "updates_per_step"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"agent.{name} must be >= 0, got {getattr(self, name)}")
        pairs = self.temperature
        steps = [p[0] for p in pairs] if all(len(p) == 2 for p in pairs) else None
        if not pairs or steps is None or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])) \
                or any(p[1] < 0 for p in pairs):
            raise ValueError(f"agent.temperature must be [[env_steps, T], ...] pairs with env_steps starting at 0 "
                             f"and increasing, and T >= 0; got {pairs!r}")


class _TrajectoryRecorder:
    """Collects one episode's observations, actions (as indices), rewards and how it ended."""

    def __init__(self, action_start: int) -> None:
        self.action_start = action_start
        self.obs: list[np.ndarray] = []
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.terminated = False

    def start_episode(self, obs: Any) -> None:
        self.obs, self.actions, self.rewards, self.terminated = [np.ravel(obs)], [], [], False

    def add_step(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        self.obs.append(np.ravel(next_obs))
        self.actions.append(int(action) - self.action_start)
        self.rewards.append(float(reward))
        self.terminated = terminated


class MuZero(Agent):
    """MuZero acting in ``env`` (a Discrete action space) by tree search in its learned model."""

    name = "muzero"
    metrics = ("value_loss", "reward_loss", "policy_loss", "updates", "plan_ms_per_step")
    config_class = MuZeroConfig

    def __init__(self, env: gym.Env, config: MuZeroConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"MuZero needs a Discrete action space, got {env.action_space}; for Box actions use "
                             f"pets, sac, dyna, mbpo or guided")
        self.env, self.config, self.seed = env, config or MuZeroConfig(), derive_seed(seed)
        self.device = resolve_device(device)
        c = self.config
        self.obs_dim, self.num_actions = flat_dim(env.observation_space), int(env.action_space.n)
        self.action_start = int(env.action_space.start)
        init = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "networks"))
        self.net = MuZeroNet(self.obs_dim, self.num_actions, init, c.latent_dim, c.hidden_size, c.hidden_layers)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        self.buffer = TrajectoryBuffer(self.obs_dim, self.num_actions, c.buffer_capacity)
        self.search_rng = np.random.default_rng(derive_seed(self.seed, "search"))
        self.replay_rng = np.random.default_rng(derive_seed(self.seed, "replay"))
        self.history: list[EpisodeResult] = []
        self._env_steps, self.updates = 0, 0
        self.recorder = _TrajectoryRecorder(self.action_start)
        self.loop = EnvLoop(env, self.recorder)
        self._frozen: FrozenMuZero | None = None
        self._frozen_at = -1

    @property
    def env_steps(self) -> int:
        return self._env_steps

    # ------------------------------------------------------------------ acting
    def temperature(self) -> float:
        """The visit-count temperature at the current real-step count."""
        return float([t for start, t in self.config.temperature if self.env_steps >= start][-1])

    def plan(self, obs: Any, explore: bool) -> SearchResult:
        """A search from ``obs`` (with root noise when ``explore``) in a NumPy snapshot of the
        networks, taken again whenever they have been updated since."""
        if self._frozen is None or self._frozen_at != self.updates:
            self._frozen, self._frozen_at = FrozenMuZero(self.net), self.updates
        return search(self._frozen, np.ravel(obs).astype(np.float64), self.config.search, self.config.discount,
                      self.search_rng if explore else None)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The most visited action of a noise-free search; not ``deterministic``: a search with
        root noise and a draw at the schedule's temperature (from the agent's search stream)."""
        result = self.plan(obs, explore=not deterministic)
        index = select_action(result.visits, 0.0 if deterministic else self.temperature(),
                              None if deterministic else self.search_rng)
        return np.int64(index + self.action_start)

    # ------------------------------------------------------------------ learning
    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult:
        """One whole episode of exploring searches (``max_steps`` does not cut it), then the updates it earned."""
        start, policies, search_s = time.perf_counter(), [], 0.0

        def behaviour(obs: Any) -> np.int64:
            nonlocal search_s
            began = time.perf_counter()
            result = self.plan(obs, explore=True)
            search_s += time.perf_counter() - began
            policies.append(result.policy)
            return np.int64(select_action(result.visits, self.temperature(), self.search_rng) + self.action_start)

        loop = self.loop
        loop.render = render
        loop.start(seed=episode_seed(self.seed, len(self.history)))
        while loop.running:
            info = loop.act_and_step(behaviour)[-1]
            self._env_steps += int(info.get("repeat_steps", 1))
        r = self.recorder
        self.buffer.add_episode(np.stack(r.obs), np.array(r.actions), np.array(r.rewards), np.stack(policies),
                                r.terminated)
        losses = self.train()
        episode = loop.episode
        info = {**losses, "updates": self.updates, "plan_ms_per_step": 1000.0 * search_s / episode.steps}
        result = EpisodeResult(len(self.history), episode.total_reward, episode.steps, self.env_steps,
                               time.perf_counter() - start, info=info, frames=episode.frames)
        self.history.append(result)
        return result

    def train(self) -> dict[str, float | None]:
        """The updates due at the current step count; their mean losses (None when none were due)."""
        c = self.config
        due = math.floor(max(0, self.env_steps - c.learning_starts) * c.updates_per_step) - self.updates
        sums: dict[str, float] = {}
        for _ in range(max(0, due)):
            for key, value in self.update().items():
                sums[key] = sums.get(key, 0.0) + value
        return {f"{key}_loss": (sums[key] / due if sums else None) for key in ("value", "reward", "policy")}

    def update(self) -> dict[str, float]:
        """One gradient step on a batch drawn from the replay; the loss parts."""
        c = self.config
        sample = self.buffer.sample(c.batch_size, c.unroll_steps, c.td_steps, c.discount, self.replay_rng)
        tensor = lambda x: torch.as_tensor(x, device=self.device)  # noqa: E731
        with torch.no_grad():
            boot = self.net.initial_inference(tensor(sample.bootstrap_obs.reshape(-1, self.obs_dim)))[2]
        targets = sample.value_targets(boot.reshape(sample.bootstrap_scale.shape).cpu().numpy())
        loss, parts = unroll_loss(self.net, tensor(sample.obs), tensor(sample.actions),
                                  tensor(targets.astype(np.float32)), tensor(sample.value_mask), tensor(sample.rewards), tensor(sample.reward_mask),
                                  tensor(sample.policies), tensor(sample.policy_mask), c.value_weight)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return parts

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write ``networks.*`` (weights and optimiser state), ``buffer.npz`` (the trajectories)
        and ``state.json`` (config, seed, history, counters, random-stream states)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path / "networks", module_tensors("net", self.net, self.optimizer), {"kind": "muzero"})
        self.buffer.save(path / "buffer.npz")
        state = {"agent": "MuZero", "config": asdict(self.config), "seed": self.seed,
                 "history": [r.to_dict() for r in self.history], "env_steps": self.env_steps,
                 "updates": self.updates, "search_rng": self.search_rng.bit_generator.state,
                 "replay_rng": self.replay_rng.bit_generator.state}
        atomic_write_text(path / "state.json", json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, device: str | torch.device = "cpu") -> "MuZero":
        """Rebuild an agent saved with :meth:`save` around ``env``, on ``device``."""
        path = Path(path)
        state = read_agent_state(path, "MuZero")
        agent = cls(env, build(MuZeroConfig, state["config"]), seed=state["seed"], device=device)
        tensors, _ = load_checkpoint(path / "networks")
        load_module_tensors("net", tensors, agent.net, agent.optimizer)
        agent.buffer = TrajectoryBuffer.load(path / "buffer.npz", capacity=agent.config.buffer_capacity)
        if (agent.buffer.obs_dim, agent.buffer.num_actions) != (agent.obs_dim, agent.num_actions):
            raise ValueError(f"the agent in {path} was saved for {agent.buffer.obs_dim} observation features and "
                             f"{agent.buffer.num_actions} actions; this environment has {agent.obs_dim} and "
                             f"{agent.num_actions}")
        agent.history = [EpisodeResult.from_dict(r) for r in state["history"]]
        agent._env_steps, agent.updates, agent._frozen = state["env_steps"], state["updates"], None
        agent.search_rng.bit_generator.state = json.loads(json.dumps(state["search_rng"]))
        agent.replay_rng.bit_generator.state = json.loads(json.dumps(state["replay_rng"]))
        return agent
