"""Soft actor-critic (Haarnoja et al., 2018) for Box action spaces.

Twin Q networks with Polyak-averaged targets, a tanh-squashed Gaussian policy with the
change-of-variables log-probability correction, and automatic tuning of the entropy temperature
towards a target entropy (``-action_dim`` by default). Used on its own as the model-free baseline
and, through :meth:`SAC.update`, as the policy learner inside Dyna and MBPO.

    agent = SAC(gym.make("Pendulum-v1"), SACConfig(), seed=0)
    agent.learn(steps=20_000)
    action = agent.act(obs)                     # deterministic: tanh of the policy's mean

``device`` (``cpu``, ``cuda`` or ``auto``) holds the networks, the temperature, the generator and
the minibatches (sampled from the NumPy replay buffer, then moved there).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forethought.agents.base import Agent, EpisodeResult
from forethought.config import build
from forethought.device import resolve_device
from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.data.collect import check_env_sizes, flat_dim
from forethought.data.env_loop import EnvLoop, ReplayRecorder
from forethought.data.offline import load_npz
from forethought.models.schedules import schedule_errors, schedule_factor
from forethought.models.seeded_mlp import seeded_mlp
from forethought.seeding import derive_seed, episode_seed, set_state
from forethought.serialization import (atomic_write_text, load_checkpoint, load_module_tensors, load_optimizer_tensors,
                                       module_tensors, optimizer_tensors, read_agent_state, save_checkpoint)

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass
class SACConfig:
    """SAC hyper-parameters (defaults as in the SAC paper's v2 and Stable-Baselines3).

    ``updates_per_step`` is the update-to-data ratio: gradient steps per real environment step
    once ``learning_starts`` steps (uniform random actions) have been collected.
    ``target_entropy`` defaults to ``-action_dim``. ``offline_data`` (an ``.npz`` of logged
    transitions, see :func:`~forethought.data.load_npz`) fills the replay buffer before the first
    step; its rows count towards ``learning_starts``, so with enough of them the agent learns and
    acts with its policy from the first step. ``lr_schedule="warmup_cosine"`` sets every
    optimizer's rate at update ``u`` to ``learning_rate`` times
    :func:`~forethought.models.schedules.schedule_factor` ``(u, lr_warmup_updates,
    lr_decay_updates, lr_min_fraction)``: a linear warm-up, then a cosine down to the floor."""

    hidden_size: int = 256
    hidden_layers: int = 2
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    buffer_capacity: int = 1_000_000
    learning_starts: int = 100
    updates_per_step: int = 1
    initial_alpha: float = 1.0
    target_entropy: float | None = None
    offline_data: str | None = None
    lr_schedule: str = "constant"
    lr_warmup_updates: int = 0
    lr_decay_updates: int = 100_000
    lr_min_fraction: float = 0.0

    def __post_init__(self) -> None:
        errors = schedule_errors("sac", self.lr_schedule, self.lr_warmup_updates, self.lr_decay_updates,
                                 self.lr_min_fraction, ("constant", "warmup_cosine"),
                                 ("lr_schedule", "lr_warmup_updates", "lr_decay_updates", "lr_min_fraction"))
        if errors:
            raise ValueError(errors[0])
        for name in ("hidden_size", "hidden_layers", "batch_size", "buffer_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"sac.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_starts", "updates_per_step"):
            if getattr(self, name) < 0:
                raise ValueError(f"sac.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"sac.gamma must be in [0, 1), got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"sac.tau must be in (0, 1], got {self.tau}")
        if not (self.learning_rate > 0 and self.initial_alpha > 0):
            raise ValueError(f"sac.learning_rate and sac.initial_alpha must be > 0, "
                             f"got {self.learning_rate} and {self.initial_alpha}")


class SquashedGaussianActor(nn.Module):
    """Policy ``a = tanh(u)``, ``u ~ N(mean(obs), std(obs))``, actions in ``[-1, 1]^act_dim``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int, hidden_layers: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.net = seeded_mlp(obs_dim, 2 * act_dim, hidden_size, hidden_layers, generator)

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action [B, a] in [-1, 1], log_prob [B])`` for ``obs [B, o]``; ``deterministic`` gives
        ``tanh(mean)`` (and the log-density at the mean)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.zeros_like(mean) if deterministic else torch.randn(mean.shape, generator=generator,
                                                                         device=mean.device)
        u = mean + log_std.exp() * noise
        gaussian = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)
        # log |d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        squash = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(dim=-1)
        return torch.tanh(u), gaussian - squash


class TwinQ(nn.Module):
    """Two independent Q networks ``Q_i(obs [B, o], action [B, a]) -> [B]``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_size: int, hidden_layers: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.q1 = seeded_mlp(obs_dim + act_dim, 1, hidden_size, hidden_layers, generator)
        self.q2 = seeded_mlp(obs_dim + act_dim, 1, hidden_size, hidden_layers, generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class SAC(Agent):
    """Soft actor-critic acting in ``env`` (a Box action space), learning from its own replay buffer
    (``learn``) or from any batch of transitions (``update``)."""

    name = "sac"
    metrics: tuple[str, ...] = ()
    config_class = SACConfig

    def __init__(self, env: gym.Env, config: SACConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"SAC needs a Box action space, got {env.action_space}")
        if not np.all(np.isfinite(env.action_space.low)) or not np.all(np.isfinite(env.action_space.high)):
            raise ValueError(f"SAC needs finite action bounds, got low={env.action_space.low}, "
                             f"high={env.action_space.high}")
        self.env, self.config, self.device = env, config or SACConfig(), resolve_device(device)
        self.obs_dim, self.act_dim = flat_dim(env.observation_space), flat_dim(env.action_space)
        low, high = (torch.as_tensor(b, dtype=torch.float32, device=self.device).reshape(-1)
                     for b in (env.action_space.low, env.action_space.high))
        self.action_center, self.action_half_range = (high + low) / 2, (high - low) / 2
        c, self.seed = self.config, derive_seed(seed)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        self.actor = SquashedGaussianActor(self.obs_dim, self.act_dim, c.hidden_size, c.hidden_layers, self.generator)
        self.critic = TwinQ(self.obs_dim, self.act_dim, c.hidden_size, c.hidden_layers, self.generator)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(c.initial_alpha), requires_grad=True, device=self.device)
        self.target_entropy = float(c.target_entropy if c.target_entropy is not None else -self.act_dim)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.learning_rate, fused=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=c.learning_rate)
        self.buffer = ReplayBuffer(self.obs_dim, self.act_dim, capacity=c.buffer_capacity)
        self._env_steps, self.updates, self.offline_rows = 0, 0, 0
        if c.offline_data is not None:
            self.add_offline(load_npz(c.offline_data))
        self.history: list[EpisodeResult] = []
        self.loop = EnvLoop(env, ReplayRecorder(self.buffer))
        self._episode_wall_s = 0.0
        self._saved_episode: dict | None = None  # an unfinished episode of a loaded agent (_restore_episode)

    @property
    def env_steps(self) -> int:
        return self._env_steps

    def add_offline(self, logged: ReplayBuffer) -> None:
        """Put logged transitions (same sizes as this environment's) into the replay buffer."""
        check_env_sizes("the logged transitions", logged.obs_dim, logged.act_dim, self.env)
        self.buffer.add_batch(**logged.arrays())
        self.offline_rows += len(logged)

    @property
    def stored_steps(self) -> int:
        """Transitions counting towards ``learning_starts``: real steps plus logged offline rows."""
        return self.env_steps + self.offline_rows

    # ------------------------------------------------------------------ acting
    def to_env_action(self, squashed: torch.Tensor) -> torch.Tensor:
        """Map ``[..., a]`` actions in ``[-1, 1]`` to the env's bounds."""
        return self.action_center + self.action_half_range * squashed

    def to_unit_action(self, action: torch.Tensor) -> torch.Tensor:
        """Map ``[..., a]`` env-unit actions to ``[-1, 1]``."""
        return (action - self.action_center) / self.action_half_range

    def policy(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Env-unit actions ``[B, a]`` for ``obs [B, o]`` (no autograd; samples from the agent's generator)."""
        with torch.no_grad():
            action, _ = self.actor(obs, self.generator, deterministic)
        return self.to_env_action(action)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """One env-unit action for one observation: ``tanh`` of the policy's mean, or (not
        ``deterministic``) a sample from it, drawn from the agent's generator."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1), device=self.device)
        action = self.policy(obs_t, deterministic)[0].cpu().numpy()
        return action.reshape(self.env.action_space.shape).astype(self.env.action_space.dtype)

    # ------------------------------------------------------------------ learning
    @property
    def alpha(self) -> float:
        return self.log_alpha.detach().exp().item()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """One gradient step of the temperature, the critics and the actor on ``batch`` (env-unit
        actions; ``terminated`` ends bootstrapping, ``truncated`` does not), then a Polyak step of
        the target critics. Returns the losses. The batch is moved to the agent's device."""
        c, batch = self.config, batch.to(self.device)
        if c.lr_schedule == "warmup_cosine":  # a function of the saved update count: resumes exactly
            lr = c.learning_rate * schedule_factor(self.updates, c.lr_warmup_updates, c.lr_decay_updates,
                                                   c.lr_min_fraction)
            for group in (g for o in (self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer)
                          for g in o.param_groups):
                group["lr"] = lr
        action, log_prob = self.actor(batch.obs, self.generator)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        alpha = self.log_alpha.detach().exp()

        with torch.no_grad():
            next_action, next_log_prob = self.actor(batch.next_obs, self.generator)
            next_q = torch.min(*self.critic_target(batch.next_obs, next_action)) - alpha * next_log_prob
            target = batch.reward + c.gamma * (1.0 - batch.terminated.float()) * next_q
        q1, q2 = self.critic(batch.obs, self.to_unit_action(batch.action))
        critic_loss = 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        q_pi = torch.min(*self.critic(batch.obs, action))
        actor_loss = (alpha * log_prob - q_pi).mean()
        # gradients for the actor only: the critic's weight gradients of this loss are never used
        actor_params = list(self.actor.parameters())
        for p, grad in zip(actor_params, torch.autograd.grad(actor_loss, actor_params)):
            p.grad = grad
        self.actor_optimizer.step()

        with torch.no_grad():
            for target_p, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                target_p.lerp_(p, c.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(),
                "alpha_loss": alpha_loss.item(), "alpha": alpha.item()}

    def advance(self, max_steps: int | None = None, render: bool = False,
                before_update: Callable[["SAC"], None] | None = None,
                behaviour: Callable[[np.ndarray], Any] | None = None) -> EpisodeResult | None:
        """Take real steps until the episode ends or ``max_steps`` raw environment steps are taken
        (an episode in progress carries over between calls), with ``updates_per_step`` updates after each once
        ``learning_starts`` steps are stored. ``before_update(agent)`` runs after each real step
        is stored, before its updates (Dyna and MBPO hook their model work in there).
        ``behaviour(obs)`` chooses the actions once ``learning_starts`` steps are stored (default:
        a sample of the policy; policy-guided MPC plans there instead)."""
        c, loop, start = self.config, self.loop, time.perf_counter()
        behaviour = behaviour or (lambda obs: self.act(obs, deterministic=False))
        self._restore_episode()
        if not loop.running:
            loop.render = render
            loop.start(seed=episode_seed(self.seed, len(self.history)))
            self._episode_wall_s = 0.0
        else:
            loop.render = loop.render or render
        taken = 0
        try:
            while loop.running and (max_steps is None or taken < max_steps):
                if self.stored_steps < c.learning_starts:
                    unit = torch.rand(self.act_dim, generator=self.generator, device=self.device) * 2 - 1
                    action = self.to_env_action(unit).cpu().numpy().reshape(self.env.action_space.shape)
                    info = loop.step(action.astype(self.env.action_space.dtype))[-1]
                else:
                    info = loop.act_and_step(behaviour)[-1]
                raw = int(info.get("repeat_steps", 1))  # environment steps under action repeat
                self._env_steps += raw
                taken += raw
                if before_update is not None:
                    before_update(self)
                if self.stored_steps >= c.learning_starts:
                    for _ in range(c.updates_per_step):
                        self.update(self.buffer.sample(c.batch_size, self.generator))
        finally:
            self._episode_wall_s += time.perf_counter() - start
        if loop.running:
            return None
        episode = loop.episode
        result = EpisodeResult(len(self.history), episode.total_reward, episode.steps, self.env_steps,
                               self._episode_wall_s, frames=episode.frames)
        self.history.append(result)
        return result

    # ------------------------------------------------------------------ persistence
    def _modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def save(self, path: str | os.PathLike) -> None:
        """Write the agent to folder ``path``: networks, temperature and generator
        (``networks.*``), replay buffer (``buffer.npz``), config and history (``state.json``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, module in self._modules().items():
            tensors.update(module_tensors(name, module, self._optimizers().get(name)))
        tensors["log_alpha"] = self.log_alpha.detach().clone()
        tensors.update(optimizer_tensors("alpha", self.alpha_optimizer))
        tensors["generator"] = self.generator.get_state()
        save_checkpoint(path / "networks", tensors, {"kind": "sac"})
        self.buffer.save(path / "buffer.npz")
        episode = self.loop.episode if self.loop.running else None
        if self._saved_episode is not None:  # loaded and not yet continued: still the saved one
            episode_state = self._saved_episode
        else:
            episode_state = None if episode is None else {"return": episode.total_reward, "steps": episode.steps,
                                                         "wall_s": self._episode_wall_s}
        state = {"config": asdict(self.config), "seed": self.seed, "history": [r.to_dict() for r in self.history],
                 "env_steps": self.env_steps, "updates": self.updates, "offline_rows": self.offline_rows,
                 "episode_in_progress": episode_state}
        atomic_write_text(path / "state.json", json.dumps(state, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env, device: str | torch.device = "cpu") -> "SAC":
        """Rebuild an agent saved with :meth:`save` around ``env``, on ``device``. An episode the saved agent had
        not finished is continued by the next :meth:`learn`: the environment is reset with that
        episode's seed and its stored actions replayed (deterministic environments only)."""
        path = Path(path)
        state = read_agent_state(path, "SAC")
        config = build(SACConfig, state["config"])
        # the saved buffer holds the logged rows
        agent = cls(env, replace(config, offline_data=None), seed=state["seed"], device=device)
        agent.config = config
        tensors, _ = load_checkpoint(path / "networks")
        for name, module in agent._modules().items():
            load_module_tensors(name, tensors, module, agent._optimizers().get(name))
        with torch.no_grad():
            agent.log_alpha.copy_(tensors["log_alpha"])
        load_optimizer_tensors("alpha", tensors, agent.alpha_optimizer)
        set_state(agent.generator, tensors["generator"], f"{path / 'networks'}: generator")
        buffer = ReplayBuffer.load(path / "buffer.npz", capacity=agent.config.buffer_capacity)
        check_env_sizes(f"the agent in {path}", buffer.obs_dim, buffer.act_dim, env)
        agent.buffer, agent.loop.recorder = buffer, ReplayRecorder(buffer)
        agent._env_steps, agent.updates = state["env_steps"], state["updates"]
        agent.offline_rows = state["offline_rows"]
        agent.history = [EpisodeResult.from_dict(r) for r in state["history"]]
        agent._saved_episode = state.get("episode_in_progress")
        return agent

    def _restore_episode(self) -> None:
        """Put the environment back where the saved agent's unfinished episode was: reset it with
        that episode's seed and replay its stored actions (each replayed step must reproduce the
        stored next observation, else a RuntimeError says where it did not)."""
        saved = self._saved_episode
        if saved is None:
            return
        steps = saved["steps"]
        obs, _ = self.env.reset(seed=episode_seed(self.seed, len(self.history)))
        replay = self.buffer.subset(np.arange(len(self.buffer) - steps, len(self.buffer))).all()
        for i in range(steps):
            action = replay.action[i].numpy().reshape(self.env.action_space.shape).astype(self.env.action_space.dtype)
            obs, *_ = self.env.step(action)
            if not np.allclose(np.ravel(obs), replay.next_obs[i].numpy(), rtol=1e-5, atol=1e-6):
                raise RuntimeError(f"replaying the unfinished episode diverged at step {i + 1} of {steps}: the "
                                   f"environment is not deterministic, so this run cannot be resumed exactly")
        self.loop.resume(obs, saved["return"], steps, steps)
        self._episode_wall_s = saved.get("wall_s", 0.0)
        self._saved_episode = None
