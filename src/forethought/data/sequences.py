"""Episodes of image observations, sampled as fixed-length chunks for latent (RSSM) models.

Row ``t`` of an episode holds the observation ``obs_t`` with what led to it: the action
``a_{t-1}`` and the reward ``r_{t-1}`` of that step (zeros on the episode's first row, which has
``is_first``), and ``is_terminal`` when ``obs_t`` ended the episode by termination (a truncated
episode's last row is not terminal: the world goes on).

    buffer = SequenceBuffer(obs_shape=(3, 64, 64), action_dim=1)
    buffer.start_episode(obs)
    buffer.add_step(action, reward, next_obs, terminated)     # once per environment step
    batch = buffer.sample(batch_size=16, length=32, generator=g)
    batch.obs                                                 # [16, 32, 3, 64, 64] uint8
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought.data.offline import read_npz
from forethought.serialization import CheckpointError, MissingCheckpointError, atomic_write_bytes


@dataclass
class SequenceBatch:
    """Chunks of episodes, batch first: ``obs`` ``[B, L, *obs_shape]`` (uint8), ``action``
    ``[B, L, action_dim]`` (float32, the action that led to each observation), ``reward``
    ``[B, L]`` (float32), ``is_first`` and ``is_terminal`` ``[B, L]`` (bool)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    is_first: torch.Tensor
    is_terminal: torch.Tensor

    def to(self, device: torch.device | str) -> "SequenceBatch":
        """The batch with every tensor on ``device`` (itself when they are already there)."""
        return SequenceBatch(*(getattr(self, name).to(device) for name in SequenceBuffer._FIELDS))


class SequenceBuffer:
    """Stores whole episodes in flat growing arrays; :meth:`sample` draws chunks that lie inside one
    episode, uniformly over all valid start rows. At ``capacity`` rows the oldest whole episode is
    dropped (the episode being written is always kept, so one longer than ``capacity`` still fits)."""

    _FIELDS = ("obs", "action", "reward", "is_first", "is_terminal")

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, capacity: int = 1_000_000,
                 obs_dtype: np.dtype = np.uint8) -> None:
        if action_dim < 1 or capacity < 2:
            raise ValueError(f"need action_dim >= 1 and capacity >= 2 rows, got {action_dim} and {capacity}")
        self.obs_shape, self.action_dim, self.capacity = tuple(int(d) for d in obs_shape), int(action_dim), int(capacity)
        self.obs_dtype = np.dtype(obs_dtype)
        self._size = 0
        self._arrays = self._allocate(64)
        self._episode_starts: list[int] = []  # row index of each stored episode's first row
        self._open = False

    # ------------------------------------------------------------------ writing
    def _allocate(self, rows: int) -> dict[str, np.ndarray]:
        return {"obs": np.zeros((rows, *self.obs_shape), self.obs_dtype),
                "action": np.zeros((rows, self.action_dim), np.float32),
                "reward": np.zeros(rows, np.float32),
                "is_first": np.zeros(rows, bool), "is_terminal": np.zeros(rows, bool)}

    def _check_obs(self, obs: Any) -> np.ndarray:
        array = np.asarray(obs)
        if array.shape != self.obs_shape:
            raise ValueError(f"observation has shape {array.shape}, expected {self.obs_shape}")
        if array.dtype != self.obs_dtype:
            raise ValueError(f"observation has dtype {array.dtype}, expected {self.obs_dtype}")
        return array

    def _append(self, obs: np.ndarray, action: np.ndarray, reward: float, is_first: bool, is_terminal: bool) -> None:
        self._drop_oldest_if_full()
        if self._size == len(self._arrays["reward"]):
            grown = self._allocate(max(64, 2 * self._size))
            for name in self._FIELDS:
                grown[name][: self._size] = self._arrays[name][: self._size]
            self._arrays = grown
        row = self._size
        for name, value in zip(self._FIELDS, (obs, action, reward, is_first, is_terminal)):
            self._arrays[name][row] = value
        self._size += 1

    def start_episode(self, obs: Any) -> None:
        """Begin a new episode at its first observation (an unfinished previous one is kept)."""
        obs = self._check_obs(obs)
        self._episode_starts.append(self._size)
        self._append(obs, np.zeros(self.action_dim, np.float32), 0.0, True, False)
        self._open = True

    def add_step(self, action: Any, reward: float, next_obs: Any, terminated: bool) -> None:
        """Record one step of the current episode: ``action`` led to ``next_obs`` and earned ``reward``."""
        if not self._open:
            raise RuntimeError("add_step before start_episode: call start_episode(first_obs) after each reset")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,) or not np.isfinite(action).all():
            raise ValueError(f"action must be {self.action_dim} finite numbers, got {action.tolist()}")
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        self._append(self._check_obs(next_obs), action, float(reward), False, bool(terminated))
        if terminated:
            self._open = False

    def _drop_oldest_if_full(self) -> None:
        """Keep at most ``capacity`` rows by removing the oldest whole episode (never the newest)."""
        if self._size < self.capacity or len(self._episode_starts) < 2:
            return
        keep_from = self._episode_starts[1]
        for name in self._FIELDS:
            self._arrays[name][: self._size - keep_from] = self._arrays[name][keep_from: self._size]
        self._size -= keep_from
        self._episode_starts = [s - keep_from for s in self._episode_starts[1:]]

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._size

    @property
    def episode_lengths(self) -> list[int]:
        """Rows per stored episode (an episode of T steps has T + 1 rows)."""
        ends = self._episode_starts[1:] + [self._size]
        return [end - start for start, end in zip(self._episode_starts, ends)]

    @property
    def steps(self) -> int:
        """Environment steps stored (rows that are not an episode's first)."""
        return self._size - len(self._episode_starts)

    def valid_starts(self, length: int) -> np.ndarray:
        """Row indices where a chunk of ``length`` rows fits inside one episode."""
        starts = [np.arange(start, start + rows - length + 1)
                  for start, rows in zip(self._episode_starts, self.episode_lengths) if rows >= length]
        return np.concatenate(starts) if starts else np.zeros(0, np.int64)

    def sample(self, batch_size: int, length: int, generator: torch.Generator) -> SequenceBatch:
        """``batch_size`` chunks of ``length`` consecutive rows, each inside one episode."""
        if batch_size < 1 or length < 1:
            raise ValueError(f"need batch_size >= 1 and length >= 1, got {batch_size} and {length}")
        if self._size == 0:
            raise ValueError("cannot sample from an empty SequenceBuffer: add episodes first")
        starts = self.valid_starts(length)
        if len(starts) == 0:
            raise ValueError(f"sequence length {length} is longer than every stored episode "
                             f"(the longest has {max(self.episode_lengths)} rows)")
        picks = starts[torch.randint(len(starts), (batch_size,), generator=generator, device=generator.device).cpu().numpy()]
        rows = picks[:, None] + np.arange(length)[None, :]
        return SequenceBatch(*(torch.from_numpy(self._arrays[name][rows]) for name in self._FIELDS))

    def episode(self, index: int) -> SequenceBatch:
        """Stored episode ``index`` (negative counts from the newest) as a batch of one."""
        start = self._episode_starts[index]
        rows = np.arange(start, start + self.episode_lengths[index])[None, :]
        return SequenceBatch(*(torch.from_numpy(self._arrays[name][rows]) for name in self._FIELDS))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the stored rows to ``path`` (``.npz``, atomically)."""
        handle = io.BytesIO()
        np.savez(handle, episode_starts=np.asarray(self._episode_starts, np.int64),
                 **{name: self._arrays[name][: self._size] for name in self._FIELDS})
        atomic_write_bytes(Path(path), handle.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, capacity: int = 1_000_000) -> "SequenceBuffer":
        """Read a buffer written by :meth:`save` (no pickled objects are accepted).

        Raises:
            CheckpointError: the file is missing or damaged, an array is missing, or the arrays'
                shapes disagree (one line naming the file).
        """
        try:
            data = read_npz(path, ("episode_starts", *cls._FIELDS))
        except FileNotFoundError as err:
            raise MissingCheckpointError(f"sequence buffer {path} does not exist") from err
        except ValueError as err:
            raise CheckpointError(str(err)) from err
        obs, starts = data["obs"], data["episode_starts"]
        lengths = {name: len(data[name]) if data[name].ndim else None for name in cls._FIELDS}
        ordered = starts.ndim == 1 and (len(starts) == 0 or (starts[0] == 0 and np.all(np.diff(starts) > 0)
                                                             and starts[-1] < len(obs)))
        if obs.ndim < 2 or data["action"].ndim != 2 or len(set(lengths.values())) != 1 or not ordered:
            raise CheckpointError(f"sequence buffer {path} is inconsistent: rows per array {lengths}, "
                                  f"obs shape {obs.shape}, episode starts {starts.tolist()[:8]}")
        buffer = cls(obs.shape[1:], data["action"].shape[1], capacity=max(capacity, len(obs) + 1), obs_dtype=obs.dtype)
        buffer._arrays = {name: np.array(data[name]) for name in cls._FIELDS}
        buffer._size = len(obs)
        buffer._episode_starts = starts.tolist()
        return buffer
