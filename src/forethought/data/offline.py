"""Load transitions logged elsewhere into a :class:`ReplayBuffer`: ``.npz`` files and Minari datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from forethought.data.buffer import FIELDS, ReplayBuffer

REQUIRED = ("obs", "action", "next_obs")


def load_npz(path: str | os.PathLike, capacity: int | None = None) -> ReplayBuffer:
    """Read transitions from an ``.npz`` with arrays ``obs [N, o]``, ``action [N, a]``,
    ``next_obs [N, o]`` and optionally ``reward [N]``, ``terminated [N]``, ``truncated [N]``
    (missing optional fields default to zeros / False).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a required array is missing or any array has a bad shape or value.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"transition file {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path} is not a readable .npz file: {err}") from err
    with archive:
        missing = [name for name in REQUIRED if name not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks required arrays {missing}; it has {sorted(archive.files)}, "
                             f"expected {list(FIELDS)}")
        arrays = {name: archive[name] for name in FIELDS if name in archive.files}
    obs, action = arrays["obs"], arrays["action"]
    if action.ndim == 1:  # a 1-D action space logged as a flat vector
        action = action[:, None]
    if obs.ndim != 2:
        raise ValueError(f"{path}: array 'obs' has shape {obs.shape}, expected (N, obs_dim)")
    n = obs.shape[0]
    buffer = ReplayBuffer(obs.shape[1], action.shape[1], capacity=capacity)
    buffer.add_batch(obs, action, arrays.get("reward", np.zeros(n)), arrays["next_obs"],
                     arrays.get("terminated"), arrays.get("truncated"))
    return buffer


def load_minari(dataset_id: str, capacity: int | None = None) -> ReplayBuffer:
    """Load a locally available Minari dataset (Box observations and actions) into a buffer.

    Raises:
        ImportError: Minari is not installed (``pip install 'forethought[minari]'``).
    """
    try:
        import minari
    except ImportError as err:
        raise ImportError("loading a Minari dataset needs minari: pip install 'forethought[minari]'") from err
    dataset = minari.load_dataset(dataset_id)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in FIELDS}
    for episode in dataset.iterate_episodes():
        observations = np.asarray(episode.observations, dtype=np.float64)
        if observations.ndim != 2:
            raise ValueError(f"Minari dataset {dataset_id}: only flat Box observations are supported, "
                             f"got observations of shape {observations.shape}")
        actions = np.asarray(episode.actions, dtype=np.float64).reshape(len(episode.actions), -1)
        columns["obs"].append(observations[:-1])
        columns["next_obs"].append(observations[1:])
        columns["action"].append(actions)
        columns["reward"].append(np.asarray(episode.rewards, dtype=np.float64))
        columns["terminated"].append(np.asarray(episode.terminations, dtype=bool))
        columns["truncated"].append(np.asarray(episode.truncations, dtype=bool))
    if not columns["obs"]:
        raise ValueError(f"Minari dataset {dataset_id} holds no episodes")
    stacked = {name: np.concatenate(parts) for name, parts in columns.items()}
    buffer = ReplayBuffer(stacked["obs"].shape[1], stacked["action"].shape[1], capacity=capacity)
    buffer.add_batch(**stacked)
    return buffer
