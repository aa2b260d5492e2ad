"""``make(name)``: our environments by short name, anything else through ``gymnasium.make``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv
from forethought.envs.linear import LinearSystemEnv
from forethought.envs.pendulum_swingup import PendulumSwingUpEnv

_OWN_CLASSES: dict[str, type[gym.Env]] = {
    "linear": LinearSystemEnv,
    "cartpole-swingup": CartPoleSwingUpEnv,
    "pendulum-swingup": PendulumSwingUpEnv,
}
OWN_ENVS: tuple[str, ...] = tuple(_OWN_CLASSES)

# The same environments under Gymnasium ids, so ``gymnasium.make`` finds them too.
GYMNASIUM_IDS: dict[str, str] = {
    "linear": "forethought/LinearSystem-v0",
    "cartpole-swingup": "forethought/CartPoleSwingUp-v0",
    "pendulum-swingup": "forethought/PendulumSwingUp-v0",
}


def register_with_gymnasium() -> None:
    """Register our environments under :data:`GYMNASIUM_IDS` (idempotent)."""
    for name, env_id in GYMNASIUM_IDS.items():
        if env_id not in gym.registry:
            cls = _OWN_CLASSES[name]
            gym.register(id=env_id, entry_point=f"{cls.__module__}:{cls.__name__}")


def make(name: str, **kwargs: Any) -> gym.Env:
    """Build an environment.

    Args:
        name: one of :data:`OWN_ENVS` (returns the bare environment, which ends its own episodes),
            or a registered Gymnasium id such as ``"HalfCheetah-v5"`` (returns ``gymnasium.make``'s
            wrapped environment, time limit included).
        **kwargs: passed to the environment's constructor (e.g. ``render_mode="rgb_array"``).

    Raises:
        ValueError: if ``name`` is neither ours nor a registered Gymnasium id.
    """
    if name in _OWN_CLASSES:
        return _OWN_CLASSES[name](**kwargs)
    try:
        gym.envs.registration.parse_env_id(name)
    except gym.error.Error as error:  # malformed id
        raise _unknown(name, error) from error
    try:
        return gym.make(name, **kwargs)
    except gym.error.UnregisteredEnv as error:
        raise _unknown(name, error) from error


def _unknown(name: str, cause: Exception) -> ValueError:
    return ValueError(
        f"unknown environment {name!r}: not one of ours {list(OWN_ENVS)} and not a registered "
        f"Gymnasium id ({cause})"
    )


def make_vector(name: str, num_envs: int, asynchronous: bool = False, **kwargs: Any) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make(name, **kwargs) <make>` stepped together: in this process
    (``SyncVectorEnv``) or one worker process each (``AsyncVectorEnv``, for environments slow enough
    to pay for the inter-process traffic: MuJoCo tasks, simulators). An episode that ends is reset
    in the same step, its final observation in ``info["final_obs"]`` (Gymnasium's same-step autoreset,
    which :func:`~forethought.data.collect` expects)."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    make(name, **kwargs).close()  # an unknown name or bad argument fails here, not in a worker
    factories = [lambda: make(name, **kwargs) for _ in range(num_envs)]
    vector = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    return vector(factories, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
