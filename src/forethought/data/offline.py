"""Load transitions logged elsewhere into a :class:`ReplayBuffer`: ``.npz`` files and Minari datasets.

An ``.npz`` is read without pickle; a file that is truncated, not an archive, or damaged inside is
a one-line ValueError naming the file and what is wrong with it. A transitions file may record the
environment it came from (a string array ``env_id``; see :func:`save_transitions` and
:func:`npz_env_id`).
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from forethought.data.buffer import FIELDS, ReplayBuffer
from forethought.serialization import atomic_write_bytes

REQUIRED = ("obs", "action", "next_obs")
ENV_ID = "env_id"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or an empty zip


def _what_it_is(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array, not an .npz archive of named arrays"
    return "it is not a zip archive (an .npz is a zip of .npy arrays)"


def read_npz(path: str | os.PathLike, required: Iterable[str] = (), optional: Iterable[str] | None = None
             ) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path``: all of ``required`` and those of ``optional``
    present (every array when ``optional`` is None), read without pickle.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: one line naming ``path``: it is empty, truncated or not an archive; an array
            is damaged (bad CRC, cut short) or holds pickled objects; or arrays of ``required``
            are missing (named, with those the file has).
    """
    path, required = Path(path), tuple(required)
    try:
        with path.open("rb") as handle:
            head = handle.read(6)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"transition file {path} does not exist") from err
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror or err}") from err
    if not head.startswith(_ZIP_MAGIC):
        raise ValueError(f"{path} is not a readable .npz file: {_what_it_is(head)}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable .npz file: truncated or damaged ({err})") from err
    with archive:
        missing = [name for name in required if name not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks required arrays {missing}; it has {sorted(archive.files)}")
        names = archive.files if optional is None else [*required, *(n for n in optional if n in archive.files)]
        arrays = {}
        for name in dict.fromkeys(names):
            try:
                arrays[name] = archive[name]
            except ValueError as err:  # numpy's refusal of object arrays without pickle
                raise ValueError(f"{path}: array {name!r} holds Python objects, which are not loaded "
                                 "(no pickle); save numeric arrays") from err
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
                raise ValueError(f"{path}: array {name!r} is damaged ({err})") from err
    return arrays


def npz_env_id(path: str | os.PathLike) -> str | None:
    """The environment id a transitions file records (its ``env_id`` string array), or None.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_npz`; also a ValueError when ``env_id`` is
            not a single string.
    """
    arrays = read_npz(path, optional=(ENV_ID,))
    if ENV_ID not in arrays:
        return None
    value = arrays[ENV_ID]
    if value.shape != () or value.dtype.kind != "U":
        raise ValueError(f"{path}: array {ENV_ID!r} should be one string, got dtype {value.dtype} shape {value.shape}")
    return str(value)


def save_transitions(buffer: ReplayBuffer, path: str | os.PathLike, env_id: str | None = None) -> None:
    """Write ``buffer``'s transitions to the ``.npz`` ``path`` atomically, with ``env_id`` (the
    environment they came from) when given; :func:`load_npz` reads it back."""
    stream = io.BytesIO()
    extra = {} if env_id is None else {ENV_ID: np.array(str(env_id))}
    np.savez_compressed(stream, **buffer.arrays(), **extra)
    atomic_write_bytes(Path(path), stream.getvalue())


def load_npz(path: str | os.PathLike, capacity: int | None = None) -> ReplayBuffer:
    """Read transitions from an ``.npz`` with arrays ``obs [N, o]``, ``action [N, a]``,
    ``next_obs [N, o]`` and optionally ``reward [N]``, ``terminated [N]``, ``truncated [N]``
    (missing optional fields default to zeros / False); other arrays are ignored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is damaged (see :func:`read_npz`), a required array is missing, or
            any array has a bad shape or value.
    """
    path = Path(path)
    arrays = read_npz(path, REQUIRED, optional=FIELDS)
    obs, action = arrays["obs"], arrays["action"]
    if action.ndim == 1:  # a 1-D action space logged as a flat vector
        action = action[:, None]
    if obs.ndim != 2:
        raise ValueError(f"{path}: array 'obs' has shape {obs.shape}, expected (N, obs_dim)")
    if action.ndim != 2:
        raise ValueError(f"{path}: array 'action' has shape {arrays['action'].shape}, expected (N, act_dim) or (N,)")
    n = obs.shape[0]
    buffer = ReplayBuffer(obs.shape[1], action.shape[1], capacity=capacity)
    try:
        buffer.add_batch(obs, action, arrays.get("reward", np.zeros(n)), arrays["next_obs"],
                         arrays.get("terminated"), arrays.get("truncated"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
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
