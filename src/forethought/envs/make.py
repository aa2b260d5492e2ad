"""``make(name)``: our environments by short name, anything else through ``gymnasium.make``."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from typing import Any

import gymnasium as gym

from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv
from forethought.envs.flatten import flatten_observations
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


# Gymnasium namespaces whose environments a module registers when imported.
NAMESPACE_MODULES: dict[str, str] = {"dm_control": "shimmy"}
# What to install for a module that is missing, where its package's name is not the module's.
PACKAGES: dict[str, str] = {"shimmy": "forethought[dmc]", "dm_control": "forethought[dmc]",
                            "dm_env": "forethought[dmc]", "labmaze": "forethought[dmc]"}


# Notices that DeepMind Control logs (through absl) each time it builds an environment whose own
# model file uses a MuJoCo compiler attribute MuJoCo now calls deprecated (cheetah.xml's
# settotalmass): about DeepMind Control's files, nothing a user can act on, so they are dropped.
DEPENDENCY_NOTICES: tuple[str, ...] = ("compiler attribute 'settotalmass' is deprecated",)


class _DropDependencyNotices(logging.Filter):
    """Drops log records carrying one of :data:`DEPENDENCY_NOTICES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in DEPENDENCY_NOTICES)


def drop_dependency_notices() -> None:
    """Filter :data:`DEPENDENCY_NOTICES` out of the ``absl`` logger (idempotent)."""
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropDependencyNotices) for f in logger.filters):
        logger.addFilter(_DropDependencyNotices())


# Namespaces whose environments seed a NumPy RandomState on reset, which takes seeds below 2**32.
SEED32_NAMESPACES = frozenset({"dm_control"})


class Seed32(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reset seeds folded into ``[0, 2**32)`` (``seed % 2**32``), for environments that refuse
    larger ones (DeepMind Control through shimmy); the run's derived seeds span 64 bits."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.env.reset(seed=None if seed is None else seed % 2**32, options=options)


def register_with_gymnasium() -> None:
    """Register our environments under :data:`GYMNASIUM_IDS` (idempotent)."""
    for name, env_id in GYMNASIUM_IDS.items():
        if env_id not in gym.registry:
            cls = _OWN_CLASSES[name]
            gym.register(id=env_id, entry_point=f"{cls.__module__}:{cls.__name__}")


def make(name: str, **kwargs: Any) -> gym.Env:
    """Build an environment.

    Args:
        name: one of :data:`OWN_ENVS` (the bare environment, which ends its own episodes), or any
            id ``gymnasium.make`` takes (``gymnasium.make``'s wrapped environment, time limit
            included): ``"HalfCheetah-v5"``, ``"my_pkg.envs:Robot-v0"`` (imports ``my_pkg.envs``
            first), ``"dm_control/cartpole-swingup-v0"`` (DeepMind Control through shimmy, which is
            imported first; ``"shimmy:dm_control/cartpole-swingup-v0"`` is the same).
        **kwargs: passed to the environment's constructor (e.g. ``render_mode="rgb_array"``).

    Dict and Tuple observations come flattened into one vector (see
    :func:`~forethought.envs.flatten.flatten_observations`; the layout by
    :func:`~forethought.envs.flatten.observation_layout`).

    Raises:
        ValueError: one line each: ``name`` is neither ours nor a registered Gymnasium id, its
            module or the package it needs is not installed (naming what to install), a keyword
            argument is one the environment does not take (naming the argument, the environment
            and the arguments it takes), or its observations cannot be flattened.
    """
    if name in _OWN_CLASSES:
        cls = _OWN_CLASSES[name]
        try:
            return cls(**kwargs)
        except TypeError as error:
            refused = _unknown_argument(name, kwargs, error, cls)
            if refused is None:
                raise
            raise refused from error
    module, env_id = name.split(":", 1) if ":" in name else (None, name)
    try:
        namespace = gym.envs.registration.parse_env_id(env_id)[0]
    except gym.error.Error as error:  # malformed id
        raise _unknown(name, error) from error
    if module is None and namespace in NAMESPACE_MODULES:
        module = NAMESPACE_MODULES[namespace]
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise _missing(name, module, error) from error
    drop_dependency_notices()
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv as error:
        raise _unknown(name, error) from error
    except (ImportError, gym.error.DependencyNotInstalled) as error:
        raise _missing(name, getattr(error, "name", None) or module or env_id, error) from error
    except TypeError as error:
        refused = _unknown_argument(env_id, kwargs, error, None)
        if refused is None:
            raise
        raise refused from error
    if namespace in SEED32_NAMESPACES:
        env = Seed32(env)
    try:
        return flatten_observations(env)
    except ValueError as error:
        env.close()
        raise ValueError(f"environment {name!r}: {error}") from error


def _missing(name: str, module: str, cause: Exception) -> ValueError:
    """The one-line error for an environment whose module or package is not installed."""
    top = module.split(".")[0]
    install = PACKAGES.get(top, top)
    return ValueError(f"environment {name!r} needs the module {module!r}, which cannot be imported ({cause}): "
                      f"pip install {install!r}" + ("" if top in PACKAGES else " (or the package that provides it)"))


def _unknown(name: str, cause: Exception) -> ValueError:
    return ValueError(
        f"unknown environment {name!r}: not one of ours {list(OWN_ENVS)} and not a registered "
        f"Gymnasium id ({cause})"
    )


def _unknown_argument(name: str, kwargs: dict[str, Any], error: TypeError, cls: type | None) -> ValueError | None:
    """The one-line error for a keyword argument the environment's constructor refused, or None
    when ``error`` is about something else."""
    match = re.search(r"unexpected keyword argument '([^']+)'", str(error))
    if match is None or match.group(1) not in kwargs:
        return None
    accepted = _arguments(cls if cls is not None else gym.spec(name).entry_point)
    takes = f"; it takes {', '.join(accepted)}" if accepted else ""
    return ValueError(f"environment {name!r} does not take the argument {match.group(1)!r} "
                      f"(given in env_kwargs){takes}")


def _arguments(creator: Any) -> list[str]:
    """The named arguments of an environment class or entry point (empty if it cannot be told)."""
    try:
        if isinstance(creator, str):
            creator = gym.envs.registration.load_env_creator(creator)
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError, ImportError, AttributeError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds and p.name != "self"]


def frame_size_kwargs(name: str, height: int, width: int) -> dict[str, Any]:
    """The keyword arguments that make environment ``name`` render ``[height, width, 3]`` frames
    (pixels): ``render_size`` for ours, ``width``/``height`` where its constructor takes them
    (Gymnasium's MuJoCo tasks), ``render_kwargs`` for DeepMind Control; empty for any other
    (its frames keep their own size)."""
    if name in _OWN_CLASSES:
        return {"render_size": (height, width)}
    env_id = name.split(":", 1)[-1]
    try:
        if gym.envs.registration.parse_env_id(env_id)[0] == "dm_control":  # registered only once shimmy is imported
            return {"render_kwargs": {"height": height, "width": width}}
        spec = gym.spec(env_id)
    except gym.error.Error:
        return {}
    takes = {"width", "height"} <= set(_arguments(spec.entry_point)) or _is_mujoco_env(spec.entry_point)
    return {"width": width, "height": height} if takes else {}


def _is_mujoco_env(creator: Any) -> bool:
    """Whether an entry point is a Gymnasium MuJoCo environment class (which takes ``width`` and
    ``height`` through its ``**kwargs``)."""
    try:
        if isinstance(creator, str):
            creator = gym.envs.registration.load_env_creator(creator)
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except (ImportError, AttributeError, gym.error.Error):
        return False
    return isinstance(creator, type) and issubclass(creator, MujocoEnv)


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
