"""Generalised coordinates in an observation: which entry is a position, an angle's cosine or
sine, or a velocity, for models that need the mechanics' coordinates (the Lagrangian model).

A layout names the role of every observation entry, in order, separated by commas:

    q<i>     position of coordinate i (any unit; metres for the cart)
    cos<i>   cosine of angle coordinate i (its sine must be there too)
    sin<i>   sine of angle coordinate i
    dq<i>    velocity of coordinate i (units of its position, or rad, per second)

Coordinates are numbered from 0 without gaps; each has one position (``q<i>`` or the pair
``cos<i>, sin<i>``) and one velocity. The cart-pole ``[x, x_dot, cos theta, sin theta,
theta_dot]`` is ``"q0,dq0,cos1,sin1,dq1"``. Our environments' layouts are registered by name
and Gymnasium id (:func:`env_coordinates`); register your own with :func:`register_coordinates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gymnasium as gym
import torch

from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv
from forethought.envs.make import GYMNASIUM_IDS
from forethought.envs.pendulum_swingup import PendulumSwingUpEnv

_ROLE = re.compile(r"^(q|dq|cos|sin)(\d+)$")
ROLES_HELP = "q<i> (position), cos<i> and sin<i> (an angle), dq<i> (velocity), e.g. 'q0,dq0,cos1,sin1,dq1'"


@dataclass(frozen=True)
class CoordinateLayout:
    """A parsed layout (see the module docstring).

    Attributes:
        roles: the role of each observation entry, e.g. ``("cos0", "sin0", "dq0")``.
        coordinates: number of generalised coordinates n.
        angles: ``[n]`` bools, True for coordinates given as cos/sin.
        position_index: ``[n]`` observation index of each position (-1 for an angle).
        cos_index, sin_index: ``[n]`` observation indices of each angle's cos and sin (-1 for a position).
        velocity_index: ``[n]`` observation index of each velocity.
    """

    roles: tuple[str, ...]
    coordinates: int
    angles: tuple[bool, ...]
    position_index: tuple[int, ...]
    cos_index: tuple[int, ...]
    sin_index: tuple[int, ...]
    velocity_index: tuple[int, ...]

    @property
    def obs_dim(self) -> int:
        return len(self.roles)

    def text(self) -> str:
        """The layout as written in a config: ``"cos0,sin0,dq0"``."""
        return ",".join(self.roles)

    def check_obs_dim(self, obs_dim: int, key: str = "model.coordinates") -> "CoordinateLayout":
        """Itself, or a ValueError when it describes ``obs_dim`` entries it does not have."""
        if obs_dim != self.obs_dim:
            raise ValueError(f"{key}={self.text()!r} names {self.obs_dim} observation entries, but the observation "
                             f"has {obs_dim}; give one role per entry: {ROLES_HELP}")
        return self

    def split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generalised positions and velocities ``([..., n], [..., n])`` of observations ``[..., obs_dim]``
        (angles in radians in ``(-pi, pi]`` from ``atan2(sin, cos)``)."""
        parts = []
        for i in range(self.coordinates):
            if self.angles[i]:
                parts.append(torch.atan2(obs[..., self.sin_index[i]], obs[..., self.cos_index[i]]))
            else:
                parts.append(obs[..., self.position_index[i]])
        q = torch.stack(parts, dim=-1)
        return q, obs[..., list(self.velocity_index)]

    def join(self, q: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """Observations ``[..., obs_dim]`` from positions and velocities ``[..., n]`` (inverse of :meth:`split`)."""
        entries: list[torch.Tensor | None] = [None] * self.obs_dim
        for i in range(self.coordinates):
            if self.angles[i]:
                entries[self.cos_index[i]], entries[self.sin_index[i]] = torch.cos(q[..., i]), torch.sin(q[..., i])
            else:
                entries[self.position_index[i]] = q[..., i]
            entries[self.velocity_index[i]] = velocity[..., i]
        return torch.stack(entries, dim=-1)


def parse_layout(text: str | list | tuple, key: str = "model.coordinates") -> CoordinateLayout:
    """Parse a layout (a comma-separated string or a list of roles); a ValueError naming ``key``,
    what was given and what is allowed when it is not a complete layout."""
    given = text if isinstance(text, str) else ",".join(str(r) for r in text) if isinstance(text, (list, tuple)) else None
    if given is None:
        raise ValueError(f"{key} must be a comma-separated list of roles ({ROLES_HELP}), got {text!r}")
    roles = tuple(r.strip() for r in given.split(","))
    found: dict[str, dict[int, int]] = {"q": {}, "dq": {}, "cos": {}, "sin": {}}
    for index, role in enumerate(roles):
        match = _ROLE.match(role)
        if match is None:
            raise ValueError(f"{key}={given!r}: entry {index} is {role!r}, not a role; roles are {ROLES_HELP}")
        kind, coordinate = match.group(1), int(match.group(2))
        if coordinate in found[kind]:
            raise ValueError(f"{key}={given!r}: {role!r} appears twice (entries {found[kind][coordinate]} and {index})")
        found[kind][coordinate] = index
    numbers = sorted(set().union(*(set(v) for v in found.values())))
    n = len(numbers)
    if numbers != list(range(n)):
        raise ValueError(f"{key}={given!r}: coordinates must be numbered 0 to n-1 without gaps, got {numbers}")
    for i in range(n):
        angle = i in found["cos"] or i in found["sin"]
        if angle and not (i in found["cos"] and i in found["sin"]):
            raise ValueError(f"{key}={given!r}: angle {i} needs both cos{i} and sin{i}")
        if angle and i in found["q"]:
            raise ValueError(f"{key}={given!r}: coordinate {i} is given both as q{i} and as an angle (cos{i}, sin{i})")
        if not angle and i not in found["q"]:
            raise ValueError(f"{key}={given!r}: coordinate {i} has a velocity but no position (q{i} or cos{i}, sin{i})")
        if i not in found["dq"]:
            raise ValueError(f"{key}={given!r}: coordinate {i} has no velocity dq{i}; the model needs every "
                             "coordinate's velocity in the observation")
    angles = tuple(i in found["cos"] for i in range(n))
    return CoordinateLayout(roles, n, angles, tuple(found["q"].get(i, -1) for i in range(n)),
                            tuple(found["cos"].get(i, -1) for i in range(n)),
                            tuple(found["sin"].get(i, -1) for i in range(n)), tuple(found["dq"][i] for i in range(n)))


_REGISTRY: dict[str, str] = {}
_OWN_LAYOUTS: dict[type, str] = {PendulumSwingUpEnv: "cos0,sin0,dq0", CartPoleSwingUpEnv: "q0,dq0,cos1,sin1,dq1"}


def register_coordinates(name: str, layout: str, overwrite: bool = False) -> CoordinateLayout:
    """Register the coordinate layout of the environment ``name`` (an env name or Gymnasium id)."""
    parsed = parse_layout(layout, key=f"the layout of {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a coordinate layout for {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = parsed.text()
    return parsed


def env_coordinates(env: gym.Env | str) -> str | None:
    """The registered layout of ``env`` (an instance of one of our environments, or any env or
    name registered with :func:`register_coordinates`), or None when none is known."""
    if isinstance(env, str):
        return _REGISTRY.get(env)
    for cls, layout in _OWN_LAYOUTS.items():
        if isinstance(env.unwrapped, cls):
            return layout
    return _REGISTRY.get(env.spec.id) if env.spec is not None else None


for _name, _cls in (("pendulum-swingup", PendulumSwingUpEnv), ("cartpole-swingup", CartPoleSwingUpEnv)):
    register_coordinates(_name, _OWN_LAYOUTS[_cls])
    register_coordinates(GYMNASIUM_IDS[_name], _OWN_LAYOUTS[_cls])
register_coordinates("Pendulum-v1", _OWN_LAYOUTS[PendulumSwingUpEnv])
