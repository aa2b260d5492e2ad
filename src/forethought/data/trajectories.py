"""Whole episodes with the search statistics of every step, and MuZero's unrolled training targets.

An episode of ``T`` steps holds ``T + 1`` observations ``o_0 .. o_T``, the actions and rewards
``a_t, r_t`` (``r_t`` earned by ``a_t`` in ``o_t``), the search's visit distribution ``pi_t``
``[T, A]`` and whether ``o_T`` ended it by termination (else it was truncated: the world goes on).

    buffer = TrajectoryBuffer(obs_dim=4, num_actions=2, capacity=100_000)
    buffer.add_episode(obs, actions, rewards, policies, terminated)
    sample = buffer.sample(batch_size=128, unroll=5, td_steps=10, rng=rng)
    sample.bootstrap_obs                     # [B, K + 1, o]: the observations the value targets bootstrap from

The value target of position ``u`` is the n-step return
``z_u = sum_{i<j-u} gamma^i r_{u+i} + gamma^(j-u) v(o_j)``, ``j = min(u + n, T)``, where
``v(o_T) = 0`` when the episode terminated (:func:`n_step_targets`). Past the end of a terminated
episode the world is absorbing (reward and value 0, a uniform random action); past the end of a
truncated one the targets are unknown and masked.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forethought.data.offline import read_npz
from forethought.serialization import CheckpointError, atomic_write_bytes


@dataclass
class UnrollSample:
    """What one training batch needs, before the bootstrap values are known (``B`` rows, ``K``
    unroll steps). ``obs`` ``[B, o]``: ``o_t``; ``actions`` ``[B, K]`` (int64); ``rewards``
    ``[B, K]`` and ``reward_mask``; ``policies`` ``[B, K + 1, A]`` and ``policy_mask``;
    ``bootstrap_obs`` ``[B, K + 1, o]``, ``bootstrap_scale`` ``[B, K + 1]`` (``gamma^(j-u)``, 0
    where no bootstrap applies), ``partial_returns`` ``[B, K + 1]`` (the discounted reward sums)
    and ``value_mask``. Masks are float32 (1 = a target)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    reward_mask: np.ndarray
    policies: np.ndarray
    policy_mask: np.ndarray
    bootstrap_obs: np.ndarray
    bootstrap_scale: np.ndarray
    partial_returns: np.ndarray
    value_mask: np.ndarray

    def value_targets(self, bootstrap_values: np.ndarray) -> np.ndarray:
        """``z`` ``[B, K + 1]`` given ``v(bootstrap_obs)`` ``[B, K + 1]``."""
        return self.partial_returns + self.bootstrap_scale * bootstrap_values


def n_step_targets(rewards: np.ndarray, length: np.ndarray, terminated: np.ndarray, positions: np.ndarray,
                   td_steps: int, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The parts of the n-step value targets at ``positions`` ``[B, P]`` of ``B`` episodes.

    ``rewards`` ``[B, L]``: each episode's rewards, padded past its ``length`` ``[B]``;
    ``terminated`` ``[B]`` (bool). Returns ``(partial [B, P], bootstrap_index [B, P],
    bootstrap_scale [B, P], mask [B, P])``: the target is ``partial + scale * v(o_index)``; positions
    past a terminated episode's end get 0, those at or past a truncated one's end are masked.
    """
    length, terminated = length[:, None], terminated[:, None]
    index = np.minimum(positions + td_steps, length)
    partial = np.zeros(positions.shape)
    for i in range(td_steps):
        step = positions + i
        inside = step < index
        reward = np.take_along_axis(rewards, np.clip(step, 0, rewards.shape[1] - 1), axis=1)
        partial += np.where(inside, gamma ** i * reward, 0.0)
    past_end = positions >= length
    scale = np.where(past_end | ((index == length) & terminated), 0.0, gamma ** (index - positions).astype(float))
    mask = (~past_end) | terminated
    return partial, np.minimum(index, length), scale, mask.astype(np.float32)


class TrajectoryBuffer:
    """Stores whole episodes; samples (episode, step) positions uniformly over all stored steps.
    Beyond ``capacity`` steps the oldest whole episodes are dropped."""

    def __init__(self, obs_dim: int, num_actions: int, capacity: int = 100_000) -> None:
        if obs_dim < 1 or num_actions < 2 or capacity < 1:
            raise ValueError(f"need obs_dim >= 1, num_actions >= 2, capacity >= 1; got {obs_dim}, {num_actions}, "
                             f"{capacity}")
        self.obs_dim, self.num_actions, self.capacity = obs_dim, num_actions, capacity
        self.episodes: list[dict[str, np.ndarray]] = []

    @property
    def steps(self) -> int:
        """Steps stored over all episodes."""
        return sum(len(e["actions"]) for e in self.episodes)

    def __len__(self) -> int:
        return len(self.episodes)

    def add_episode(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, policies: np.ndarray,
                    terminated: bool) -> None:
        """Store one episode: ``obs [T + 1, o]``, ``actions [T]``, ``rewards [T]``, ``policies [T, A]``."""
        obs = np.asarray(obs, np.float32).reshape(len(obs), -1)
        steps = len(actions)
        expected = {"obs": ((steps + 1, self.obs_dim), obs.shape), "rewards": ((steps,), np.shape(rewards)),
                    "policies": ((steps, self.num_actions), np.shape(policies))}
        for name, (want, got) in expected.items():
            if tuple(got) != want:
                raise ValueError(f"episode {name} has shape {tuple(got)}, expected {want} for {steps} steps")
        if steps < 1:
            raise ValueError("an episode needs at least one step")
        self.episodes.append({"obs": obs, "actions": np.asarray(actions, np.int64),
                              "rewards": np.asarray(rewards, np.float32),
                              "policies": np.asarray(policies, np.float32), "terminated": np.array(bool(terminated))})
        while self.steps > self.capacity and len(self.episodes) > 1:
            self.episodes.pop(0)

    def sample(self, batch_size: int, unroll: int, td_steps: int, gamma: float, rng: np.random.Generator
               ) -> UnrollSample:
        """``batch_size`` positions drawn uniformly over stored steps, with their targets for
        ``unroll`` steps (see :class:`UnrollSample`)."""
        if not self.episodes:
            raise ValueError("the trajectory buffer is empty")
        lengths = np.array([len(e["actions"]) for e in self.episodes])
        flat = rng.integers(0, lengths.sum(), size=batch_size)
        which = np.searchsorted(np.cumsum(lengths), flat, side="right")
        starts = flat - (np.cumsum(lengths) - lengths)[which]
        chosen = [self.episodes[i] for i in which]
        length, terminated = lengths[which], np.array([bool(e["terminated"]) for e in chosen])
        width = int(length.max()) + unroll + 1
        rewards = np.zeros((batch_size, width), np.float32)
        policies = np.full((batch_size, width, self.num_actions), 1.0 / self.num_actions, np.float32)
        actions = rng.integers(0, self.num_actions, size=(batch_size, width))  # past the end: random
        obs = np.zeros((batch_size, width, self.obs_dim), np.float32)
        for b, episode in enumerate(chosen):
            n = len(episode["actions"])
            rewards[b, :n], policies[b, :n] = episode["rewards"], episode["policies"]
            actions[b, :n] = episode["actions"]
            obs[b, :n + 1] = episode["obs"]
        positions = starts[:, None] + np.arange(unroll + 1)
        partial, index, scale, value_mask = n_step_targets(rewards, length, terminated, positions, td_steps, gamma)
        rows = np.arange(batch_size)[:, None]
        step_positions = positions[:, :-1]  # the actions and rewards of unroll steps 1..K
        inside = step_positions < length[:, None]
        reward_mask = (inside | terminated[:, None]).astype(np.float32)
        return UnrollSample(obs=obs[np.arange(batch_size), starts], actions=actions[rows, step_positions],
                            rewards=np.where(inside, rewards[rows, step_positions], 0.0).astype(np.float32),
                            reward_mask=reward_mask, policies=policies[rows, positions],
                            policy_mask=(positions < length[:, None]).astype(np.float32),
                            bootstrap_obs=obs[rows, index], bootstrap_scale=scale.astype(np.float32),
                            partial_returns=partial.astype(np.float32), value_mask=value_mask)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write every episode to one ``.npz`` (atomically)."""
        arrays = {f"{i}.{k}": v for i, e in enumerate(self.episodes) for k, v in e.items()}
        arrays["sizes"] = np.array([self.obs_dim, self.num_actions, len(self.episodes)])
        handle = io.BytesIO()
        np.savez(handle, **arrays)
        atomic_write_bytes(path, handle.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, capacity: int = 100_000) -> "TrajectoryBuffer":
        """The buffer :meth:`save` wrote (CheckpointError when the file is missing or damaged)."""
        try:
            arrays = read_npz(Path(path), required=("sizes",))
            obs_dim, num_actions, count = (int(v) for v in arrays["sizes"])
            buffer = cls(obs_dim, num_actions, capacity)
            for i in range(count):
                episode = {k: arrays[f"{i}.{k}"] for k in ("obs", "actions", "rewards", "policies", "terminated")}
                buffer.add_episode(**{k: v for k, v in episode.items() if k != "terminated"},
                                   terminated=bool(episode["terminated"]))
        except FileNotFoundError as error:
            raise CheckpointError(f"{path}: no trajectory buffer there") from error
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"{path}: not a trajectory buffer ({error})") from error
        return buffer
