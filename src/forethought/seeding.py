"""Every random stream of a run, derived from its one seed by name.

A run has one integer seed. Each consumer (the agent's networks, its model work, the oracle
reference, the evaluation episodes, the start state of episode ``k``) asks for the stream named
after what it is, so streams never overlap by accident (``seed + 1`` for one consumer would be
the ``seed`` of the next run's) and adding a consumer leaves the others unchanged:

    derive_seed(0, "model")              # an int in [0, 2**63)
    generator(0, "model")                # a torch.Generator seeded with it
    generator(0, "model", device=cuda)   # the same seed, a generator on a CUDA device
    derive_seed(0, "eval", 3)            # names may include integers (an episode index)
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import torch

from forethought.serialization import CheckpointError, load_checkpoint, save_checkpoint


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def derive_seed(seed: int, *names: str | int) -> int:
    """The seed of stream ``names`` of a run seeded ``seed`` (no names: ``seed`` itself)."""
    _check_seed(seed)
    if not names:
        return int(seed)
    key = [zlib.crc32(n.encode()) if isinstance(n, str) else int(n) for n in names]
    if any(k < 0 for k in key):
        raise ValueError(f"stream names must be strings or integers >= 0, got {names!r}")
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(key)).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(seed: int, *names: str | int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, *names)``.
    The same seed draws different numbers on a CPU and a CUDA generator."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *names))


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of training episode ``episode`` of a run seeded ``seed``."""
    _check_seed(seed)
    return int(np.random.SeedSequence([int(seed), int(episode)]).generate_state(1)[0])


def save_generators(path: str | os.PathLike, generators: dict[str, torch.Generator]) -> None:
    """Write the states of ``generators`` (name -> generator) as one checkpoint at ``path``."""
    save_checkpoint(path, {name: g.get_state() for name, g in generators.items()}, {"kind": "generators"})


def load_generators(path: str | os.PathLike, generators: dict[str, torch.Generator]) -> None:
    """Restore the states :func:`save_generators` wrote into ``generators`` (CheckpointError names
    a missing one, or one saved from a generator on another kind of device: CPU and CUDA states
    differ in size)."""
    tensors, _ = load_checkpoint(path)
    for name, g in generators.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: no state for generator {name!r} (has {sorted(tensors)})")
        set_state(g, tensors[name], f"{path}: generator {name!r}")


def set_state(g: torch.Generator, state: torch.Tensor, what: str) -> None:
    """Give ``g`` the saved ``state`` (a CPU byte tensor from ``get_state``); a CheckpointError
    naming ``what`` when it was saved from a generator on another kind of device."""
    expected = g.get_state().numel()
    if state.numel() != expected:
        raise CheckpointError(f"{what}: its state has {state.numel()} bytes, a {g.device.type} generator's has "
                              f"{expected}: it was saved on another kind of device; load it with device set "
                              f"to the one it was saved with")
    g.set_state(state.cpu())
