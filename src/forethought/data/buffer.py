"""Replay buffer of real transitions (obs, action, reward, next_obs, terminated, truncated).

Storage is a set of NumPy arrays that double in size when full (amortised O(1) insert), or a
fixed-size ring when ``capacity`` is given. Sampling uses an explicit ``torch.Generator`` and
returns :class:`TransitionBatch` tensors, so the same seed gives the same minibatches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


@dataclass(frozen=True)
class TransitionBatch:
    """A batch of transitions as tensors: obs/next_obs ``[B, obs_dim]``, action ``[B, act_dim]``,
    reward ``[B]`` (float32), terminated/truncated ``[B]`` (bool)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def __getitem__(self, index: torch.Tensor | slice) -> "TransitionBatch":
        return TransitionBatch(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(self, device: torch.device | str) -> "TransitionBatch":
        """The batch with every tensor on ``device`` (itself when they are already there)."""
        return TransitionBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


class ReplayBuffer:
    """Growable (or ring) store of transitions with generator-driven sampling and splits.

    Args:
        obs_dim: length of an observation vector.
        act_dim: length of an action vector.
        capacity: maximum number of transitions kept (oldest overwritten first); ``None`` grows
            without bound.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int | None = None) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got obs_dim={obs_dim}, act_dim={act_dim}")
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {capacity}")
        self.obs_dim, self.act_dim, self.capacity = int(obs_dim), int(act_dim), capacity
        self._size = 0
        self._next = 0  # ring write position (only used when capacity is set)
        self._data = self._allocate(capacity or 1024)

    def _allocate(self, n: int) -> dict[str, np.ndarray]:
        return {
            "obs": np.zeros((n, self.obs_dim), np.float32),
            "action": np.zeros((n, self.act_dim), np.float32),
            "reward": np.zeros((n,), np.float32),
            "next_obs": np.zeros((n, self.obs_dim), np.float32),
            "terminated": np.zeros((n,), bool),
            "truncated": np.zeros((n,), bool),
        }

    def __len__(self) -> int:
        return self._size

    # ------------------------------------------------------------------ insert
    def add(self, obs, action, reward, next_obs, terminated=False, truncated=False) -> None:
        """Insert one transition (obs ``[obs_dim]``, action ``[act_dim]``, scalar reward and flags)."""
        self.add_batch(np.asarray(obs, np.float64)[None], np.asarray(action, np.float64).reshape(1, -1),
                       np.asarray([reward], np.float64), np.asarray(next_obs, np.float64)[None],
                       np.asarray([terminated]), np.asarray([truncated]))

    def add_batch(self, obs, action, reward, next_obs, terminated=None, truncated=None) -> None:
        """Insert N transitions: obs/next_obs ``[N, obs_dim]``, action ``[N, act_dim]``, reward ``[N]``.

        Raises:
            ValueError: a field has the wrong shape or holds a non-finite value (names field and row).
        """
        batch = self._validate(obs, action, reward, next_obs, terminated, truncated)
        n = batch["obs"].shape[0]
        if n == 0:
            return
        if self.capacity is None:
            self._grow_to(self._size + n)
            for name, values in batch.items():
                self._data[name][self._size:self._size + n] = values
            self._size += n
            return
        if n > self.capacity:  # only the newest `capacity` rows survive
            batch = {k: v[-self.capacity:] for k, v in batch.items()}
            n = self.capacity
        rows = (self._next + np.arange(n)) % self.capacity
        for name, values in batch.items():
            self._data[name][rows] = values
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)

    def _grow_to(self, needed: int) -> None:
        current = self._data["obs"].shape[0]
        if needed <= current:
            return
        new_size = max(needed, 2 * current)
        grown = self._allocate(new_size)
        for name in FIELDS:
            grown[name][: self._size] = self._data[name][: self._size]
        self._data = grown

    def _validate(self, obs, action, reward, next_obs, terminated, truncated) -> dict[str, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float64)
        n = obs.shape[0] if obs.ndim >= 1 else -1
        expected = {"obs": (n, self.obs_dim), "action": (n, self.act_dim), "reward": (n,),
                    "next_obs": (n, self.obs_dim), "terminated": (n,), "truncated": (n,)}
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"field 'obs' has shape {obs.shape}, expected (N, {self.obs_dim})")
        raw = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs,
               "terminated": np.zeros(n, bool) if terminated is None else terminated,
               "truncated": np.zeros(n, bool) if truncated is None else truncated}
        out: dict[str, np.ndarray] = {}
        for name, value in raw.items():
            try:
                array = np.asarray(value, dtype=bool if name in ("terminated", "truncated") else np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"field '{name}' cannot be converted to numbers: {err}") from err
            if array.shape != expected[name]:
                shape = "(N,)" if len(expected[name]) == 1 else f"(N, {expected[name][1]})"
                raise ValueError(f"field '{name}' has shape {array.shape}, expected {shape} with N={n}")
            if array.dtype != bool:
                bad = ~np.isfinite(array)
                if bad.any():
                    row = int(np.argwhere(bad)[0][0])
                    raise ValueError(f"field '{name}' has a non-finite value at row {row}: {array[row]}")
            out[name] = array
        return out

    # ------------------------------------------------------------------ read
    def _ordered_rows(self) -> np.ndarray:
        """Row indices in insertion order (oldest first)."""
        if self.capacity is None or self._size < self.capacity:
            return np.arange(self._size)
        return (self._next + np.arange(self.capacity)) % self.capacity

    def arrays(self) -> dict[str, np.ndarray]:
        """All stored transitions in insertion order, as NumPy arrays (copies)."""
        rows = self._ordered_rows()
        return {name: self._data[name][rows].copy() for name in FIELDS}

    def all(self) -> TransitionBatch:
        """All stored transitions in insertion order, as a :class:`TransitionBatch`."""
        return self.get(torch.arange(self._size))

    def get(self, indices: torch.Tensor) -> TransitionBatch:
        """Transitions at positions ``indices`` (``[B]``, positions in insertion order)."""
        rows = self._ordered_rows()[np.asarray(indices, dtype=np.int64)]
        return TransitionBatch(**{name: torch.from_numpy(self._data[name][rows]) for name in FIELDS})

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        """Uniform minibatch of ``batch_size`` transitions drawn with replacement."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.get(torch.randint(self._size, (batch_size,), generator=generator, device=generator.device).cpu())

    def split(self, val_fraction: float, generator: torch.Generator) -> tuple[TransitionBatch, TransitionBatch]:
        """Random train/validation split; the validation part holds ``round(val_fraction * N)`` rows."""
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        order = torch.randperm(self._size, generator=generator, device=generator.device).cpu()
        n_val = int(round(val_fraction * self._size))
        return self.get(order[n_val:]), self.get(order[:n_val])

    def episode_starts(self) -> np.ndarray:
        """Insertion-order positions where an episode begins (after a terminated/truncated row,
        or where a row's obs does not continue the previous row's next_obs)."""
        arrays = self.arrays()
        if self._size == 0:
            return np.zeros(0, np.int64)
        ended = arrays["terminated"][:-1] | arrays["truncated"][:-1]
        broken = ~np.all(arrays["obs"][1:] == arrays["next_obs"][:-1], axis=1)
        return np.concatenate([[0], np.nonzero(ended | broken)[0] + 1]).astype(np.int64)

    def subset(self, indices: np.ndarray | torch.Tensor) -> "ReplayBuffer":
        """A new buffer holding the transitions at insertion-order positions ``indices`` ``[M]``."""
        rows = self._ordered_rows()[np.asarray(indices, dtype=np.int64)]
        part = ReplayBuffer(self.obs_dim, self.act_dim)
        part.add_batch(*(self._data[name][rows] for name in FIELDS))
        return part

    def split_episodes(self, holdout_fraction: float) -> tuple["ReplayBuffer", "ReplayBuffer"]:
        """Split whole episodes: the last ``holdout_fraction`` of transitions (rounded to episode
        boundaries, at least one episode) go to the second buffer, for held-out evaluation that
        never shares an episode with training."""
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        starts = self.episode_starts()
        if len(starts) < 2:
            raise ValueError(f"need at least 2 episodes to hold some out, the buffer has {len(starts)}")
        target = self._size * (1.0 - holdout_fraction)
        cut = int(starts[1:][np.argmin(np.abs(starts[1:] - target))])
        return self.subset(np.arange(cut)), self.subset(np.arange(cut, self._size))

    def save(self, path: str | os.PathLike) -> None:
        """Write all transitions to a portable ``.npz`` (fields named as in :data:`FIELDS`)."""
        from forethought.serialization import atomic_write_bytes
        import io

        stream = io.BytesIO()
        np.savez_compressed(stream, **self.arrays())
        atomic_write_bytes(Path(path), stream.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, capacity: int | None = None) -> "ReplayBuffer":
        """Read a buffer written by :meth:`save` (or any ``.npz`` with the same field names).

        Raises:
            CheckpointError: the file is missing or damaged, or a field has a bad shape or value
                (one line naming the file; see :func:`~forethought.data.offline.load_npz`).
        """
        from forethought.data.offline import load_npz
        from forethought.serialization import CheckpointError, MissingCheckpointError

        try:
            return load_npz(path, capacity=capacity)
        except FileNotFoundError as err:
            raise MissingCheckpointError(f"buffer {path} does not exist") from err
        except ValueError as err:
            raise CheckpointError(str(err)) from err


def bootstrap_indices(n: int, members: int, generator: torch.Generator) -> torch.Tensor:
    """Per-member bootstrap resamples: ``[members, n]`` row indices drawn with replacement."""
    if n < 1:
        raise ValueError(f"cannot bootstrap from {n} rows")
    return torch.randint(n, (members, n), generator=generator, device=generator.device)
