"""Structured observations as one flat vector: Dict and Tuple observation spaces (DeepMind Control's
state observations are Dicts) through Gymnasium's :class:`~gymnasium.wrappers.FlattenObservation`,
with the layout of the parts recorded.

    env = flatten_observations(gym.make("dm_control/cartpole-swingup-v0"))
    observation_layout(env)
    # [{'key': 'position', 'shape': [3], 'offset': 0, 'size': 3},
    #  {'key': 'velocity', 'shape': [2], 'offset': 3, 'size': 2}]

The flat vector is Gymnasium's :func:`~gymnasium.spaces.flatten`: the parts in the order of the
space (a Dict's keys as the space holds them, sorted for a plain ``dict``; a Tuple's positions),
each part raveled; a Discrete part becomes a one-hot vector of its ``n`` values.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation

STRUCTURED = (spaces.Dict, spaces.Tuple)


def space_layout(space: gym.Space) -> list[dict[str, Any]]:
    """Where each leaf of ``space`` lies in its flat vector: ``key`` (the path of Dict keys and
    Tuple positions joined by ``/``; ``"obs"`` for a space that is one leaf), ``shape`` (the
    part's own shape), ``offset`` and ``size`` (its slice ``[offset, offset + size)`` of the flat
    vector), in flat order.

    Raises:
        ValueError: a part cannot be flattened to a fixed number of entries (a Sequence, Graph,
            Text or OneOf space), naming it.
    """
    layout: list[dict[str, Any]] = []
    offset = 0
    for path, part in _leaves(space, ()):
        key = "/".join(path) or "obs"
        size = _flat_size(part, key)
        layout.append({"key": key, "shape": list(part.shape or ()), "offset": offset, "size": size})
        offset += size
    return layout


def _leaves(space: gym.Space, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], gym.Space]]:
    """The non-Dict, non-Tuple parts of ``space`` with their paths, in Gymnasium's flattening order."""
    if isinstance(space, spaces.Dict):
        items = [(str(key), sub) for key, sub in space.spaces.items()]
    elif isinstance(space, spaces.Tuple):
        items = [(str(i), sub) for i, sub in enumerate(space.spaces)]
    else:
        return [(path, space)]
    return [leaf for name, sub in items for leaf in _leaves(sub, (*path, name))]


def _flat_size(space: gym.Space, key: str) -> int:
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return int(spaces.flatdim(space))
    raise ValueError(f"observation part {key!r} is a {type(space).__name__} space ({space}), which has no "
                     f"fixed-size flat vector; supported parts are Box, Discrete, MultiDiscrete and MultiBinary")


def flatten_observations(env: gym.Env) -> gym.Env:
    """``env`` with its Dict or Tuple observations flattened to one ``[size]`` vector (Gymnasium's
    :class:`~gymnasium.wrappers.FlattenObservation`); ``env`` itself for any other space.

    Raises:
        ValueError: a part of the observation space has no fixed-size flat vector (naming it), or
            the space has no entries at all.
    """
    space = env.observation_space
    if not isinstance(space, STRUCTURED):
        return env
    if sum(part["size"] for part in space_layout(space)) == 0:
        raise ValueError(f"observation space {space} of {type(env.unwrapped).__name__} has no entries to "
                         f"flatten into a vector")
    return FlattenObservation(env)


def observation_layout(env: gym.Env) -> list[dict[str, Any]] | None:
    """The layout (see :func:`space_layout`) of the observations a
    :class:`~gymnasium.wrappers.FlattenObservation` among ``env``'s wrappers flattened, or None
    where none did."""
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, FlattenObservation):
            return space_layout(layer.env.observation_space)
        layer = layer.env
    return None
