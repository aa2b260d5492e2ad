"""The interface every trajectory optimiser implements, and the action-space handling they share.

An optimiser searches over action sequences ``[H, act_dim]`` for the one an objective scores
highest. The objective scores a whole population at once:

    evaluator = TrajectoryEvaluator(model, task.reward, task.termination)
    objective = evaluator.objective(obs)         # [P, H, act_dim] float32 -> [P], higher is better

    optimizer = make_optimizer("cem", env.action_space, horizon=15)
    sequence = optimizer.optimize(objective)     # [H, act_dim], inside the action space
    action = optimizer.plan(objective)[0]        # MPC: warm-started from the previous call

Conventions:

- Sequences are float32. A Box space of shape ``(act_dim,)`` is searched inside ``[low, high]``;
  samplers need finite bounds. A Discrete space (where an optimiser supports it) is a float tensor
  ``[P, H, 1]`` of integer indices ``0 .. n-1``; index ``i`` is the action ``space.start + i``.
- The objective may return ``-inf`` to veto a sequence: a vetoed sequence is never returned unless
  every sequence was vetoed, and then ``last_info["all_vetoed"]`` says so. ``NaN`` and ``+inf``
  are errors.
- Randomness comes only from the optimiser's ``generator`` (a fixed seed, 0, when none is given).
- Settings are typed: each optimiser's dataclass (``CEMSettings``, ``ICEMSettings``, ...) holds
  its defaults and checks; ``make_optimizer(name, ..., population=500)`` overrides fields of it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from forethought.planning.settings import check_int, settings_from

Objective = Callable[[torch.Tensor], torch.Tensor]
"""Scores action sequences: ``[P, H, act_dim]`` float32 -> ``[P]``, higher is better."""

_OPTIMIZERS: dict[str, type["TrajectoryOptimizer"]] = {}


class RolloutObjective:
    """An objective that scores sequences by rolling them out from one observation in a model, and
    that shows its pieces to optimisers that differentiate the model step by step (iLQR):

    * ``objective(actions [P, H, a]) -> [P]`` scores, as any objective;
    * ``obs [o]``: the observation the rollouts start from;
    * ``step(obs [B, o], action [B, a]) -> [B, o]``: the model's expected next observation,
      differentiable w.r.t. both;
    * ``reward(obs [B, o], action [B, a], next_obs [B, o]) -> [B]``: the reward of a step.

    :meth:`forethought.planning.TrajectoryEvaluator.objective` builds one.
    """

    def __init__(self, score: Objective, obs: torch.Tensor, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 reward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.score, self.obs, self.step, self.reward = score, obs, step, reward

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        return self.score(actions)


# ---------------------------------------------------------------------- action spaces
@dataclass(frozen=True)
class ActionBounds:
    """What an optimiser needs to know about an action space.

    ``low`` and ``high`` are float32 ``[act_dim]``; for a Discrete space they are ``0`` and
    ``n - 1`` with ``act_dim = 1`` and ``n`` set.
    """

    low: torch.Tensor
    high: torch.Tensor
    n: int | None = None

    @property
    def discrete(self) -> bool:
        return self.n is not None

    @property
    def act_dim(self) -> int:
        return int(self.low.shape[0])

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.low).all() and torch.isfinite(self.high).all())

    @property
    def centre(self) -> torch.Tensor:
        """``[act_dim]`` middle of the range (finite bounds only)."""
        return 0.5 * (self.low + self.high)

    @property
    def range(self) -> torch.Tensor:
        """``[act_dim]`` width ``high - low``."""
        return self.high - self.low

    def project(self, sequences: torch.Tensor) -> torch.Tensor:
        """Clamp ``[..., act_dim]`` into the bounds (and round to an index for Discrete)."""
        if self.discrete:
            sequences = sequences.round()
        return torch.maximum(torch.minimum(sequences, self.high), self.low)

    def uniform(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """``[*shape, act_dim]`` uniform samples (uniform indices for Discrete)."""
        if self.discrete:
            return torch.randint(0, self.n, (*shape, 1), generator=generator, device=self.low.device).float()
        unit = torch.rand((*shape, self.act_dim), generator=generator, device=self.low.device)
        return self.project(self.low + unit * self.range)


def _float32_inside(bound: np.ndarray, up: bool) -> np.ndarray:
    """``bound`` in float32, rounded towards the inside of the space (``up`` for a lower bound),
    so a float32 action never lies outside a float64 Box."""
    rounded = np.asarray(bound, dtype=np.float32)
    outside = rounded.astype(np.float64) < bound if up else rounded.astype(np.float64) > bound
    towards = np.float32(np.inf if up else -np.inf)
    return np.where(outside, np.nextafter(rounded, towards), rounded).astype(np.float32)


def action_bounds(space: Any, device: torch.device | str = "cpu") -> ActionBounds:
    """Read a Box (1-D) or Discrete space; any other space is a TypeError."""
    if isinstance(space, gym.spaces.Discrete):
        return ActionBounds(torch.zeros(1, device=device), torch.full((1,), float(space.n - 1), device=device),
                            n=int(space.n))
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) != 1:
            raise TypeError(f"action space must be a 1-D Box of shape (act_dim,), got a Box of shape {space.shape}")
        low, high = _float32_inside(space.low, up=True), _float32_inside(space.high, up=False)
        return ActionBounds(torch.as_tensor(low, device=device), torch.as_tensor(high, device=device))
    raise TypeError(f"unsupported action space {space!r}: expected gymnasium.spaces.Box (1-D) or "
                    f"gymnasium.spaces.Discrete")


def action_std(name: str, value: Any, bounds: ActionBounds) -> torch.Tensor:
    """A sampling std ``[act_dim]`` in action units: ``value`` (a number or one per action
    dimension, each finite and > 0), or a quarter of the action range when ``value`` is None."""
    if value is None:
        return bounds.range / 4.0
    std = torch.as_tensor(value, dtype=torch.float32, device=bounds.low.device).reshape(-1)
    if std.numel() == 1:
        std = std.expand(bounds.act_dim)
    if std.shape != (bounds.act_dim,) or not bool((std > 0).all() and torch.isfinite(std).all()):
        raise ValueError(f"{name} must be a finite number > 0 or {bounds.act_dim} of them (one per action "
                         f"dimension), got {value!r}")
    return std.clone()


def shift_steps(sequence: torch.Tensor, fresh_step: torch.Tensor) -> torch.Tensor:
    """Drop the first step of ``[..., H, d]`` and append ``fresh_step`` ``[d]`` as the last one."""
    last = fresh_step.expand(*sequence.shape[:-2], 1, sequence.shape[-1])
    return torch.cat([sequence[..., 1:, :], last.to(sequence.dtype)], dim=-2)


# ---------------------------------------------------------------------- scoring
def evaluate(objective: Objective, sequences: torch.Tensor, keep_graph: bool = False) -> torch.Tensor:
    """Score ``[P, H, a]`` sequences in one objective call; returns ``[P]`` scores.

    Raises TypeError if the objective does not return a tensor, ValueError if its output is not
    ``[P]`` or holds NaN or ``+inf`` (``-inf`` is a veto and allowed). The scores are detached
    unless ``keep_graph``.
    """
    scores = objective(sequences)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"the objective must return a torch.Tensor of shape ({sequences.shape[0]},), "
                        f"got {type(scores).__name__}")
    if scores.shape != (sequences.shape[0],):
        raise ValueError(f"the objective returned scores of shape {tuple(scores.shape)} for "
                         f"{sequences.shape[0]} sequences of shape {tuple(sequences.shape[1:])}; "
                         f"expected ({sequences.shape[0]},), one score per sequence")
    values = scores.detach()
    bad = torch.isnan(values) | (values == math.inf)
    if bad.any():
        row = int(bad.nonzero()[0])
        raise ValueError(f"the objective's output holds {int(bad.sum())} NaN or +inf score(s) of "
                         f"{values.shape[0]} (first at row {row}: {float(values[row])}); scores must be "
                         f"finite, or -inf to veto a sequence")
    return scores if keep_graph else values


class BestSoFar:
    """The highest-scoring sequence seen over several populations."""

    def __init__(self) -> None:
        self.sequence: torch.Tensor | None = None
        self.score = -math.inf

    def update(self, sequences: torch.Tensor, scores: torch.Tensor) -> None:
        """Consider ``sequences [P, H, a]`` with ``scores [P]``."""
        index = int(torch.argmax(scores))
        if self.sequence is None or float(scores[index]) > self.score:
            self.sequence, self.score = sequences[index].detach().clone(), float(scores[index])


@dataclass
class SearchResult:
    """What one run of an optimiser's search produced.

    ``best`` is the returned sequence ``[H, a]``; ``state`` is what the next ``plan`` call starts
    from after shifting (a mean, a nominal sequence or probability vectors, ``[H, d]``).
    """

    best: torch.Tensor
    best_score: float
    state: torch.Tensor
    info: dict[str, Any]


# ---------------------------------------------------------------------- base class
class TrajectoryOptimizer(ABC):
    """Base class: action-space checks, settings, objective checks, warm starts and ``last_info``.

    Subclasses set ``name``, ``settings_class`` (the dataclass of their settings, with the
    defaults), ``supports_discrete``, ``needs_gradients`` (the objective must be differentiable)
    and ``needs_dynamics`` (the objective must be a
    :class:`~forethought.planning.rollout.RolloutObjective`, whose model the optimiser
    differentiates step by step), and implement :meth:`_start_state`, :meth:`_fresh_state_step`
    and :meth:`_search`.

    Args:
        action_space: a 1-D ``gymnasium.spaces.Box`` with finite bounds, or (where supported) a
            ``gymnasium.spaces.Discrete``.
        horizon: number of steps ``H`` in a sequence, ``>= 1``.
        generator: source of all randomness; ``torch.Generator().manual_seed(0)`` when None.
        settings: an instance of ``settings_class`` (its defaults when None).
        **overrides: fields of ``settings_class`` replacing those of ``settings``.

    ``settings`` holds the checked settings; the subclasses also keep each one as an attribute.
    """

    name: ClassVar[str] = ""
    settings_class: ClassVar[type]
    supports_discrete: ClassVar[bool] = False
    needs_gradients: ClassVar[bool] = False
    needs_dynamics: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):  # a class that names itself is what make_optimizer(name) builds
            _OPTIMIZERS[cls.name] = cls

    def __init__(self, action_space: gym.spaces.Box | gym.spaces.Discrete, horizon: int, *,
                 generator: torch.Generator | None = None, settings: Any = None, **overrides: Any) -> None:
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.action_space = action_space
        self.bounds = action_bounds(action_space, self.generator.device)
        if self.bounds.discrete and not self.supports_discrete:
            raise TypeError(f"{type(self).__name__} supports Box action spaces only, got {action_space!r}; "
                            f"for Discrete actions use 'random' or 'cem'")
        if not self.bounds.finite:
            raise ValueError(f"{type(self).__name__} samples inside the action bounds, so they must be finite; "
                             f"got low={self.bounds.low.tolist()}, high={self.bounds.high.tolist()}")
        self.horizon = check_int("horizon", horizon)
        self.act_dim = self.bounds.act_dim
        self.settings = self._settings(settings, overrides)
        self.last_info: dict[str, Any] = {}
        self._warm: torch.Tensor | None = None
        self._proposals: torch.Tensor | None = None

    def _settings(self, settings: Any, overrides: dict[str, Any]) -> Any:
        if settings is None:
            return settings_from(self.settings_class, self.name, overrides)
        if not isinstance(settings, self.settings_class):
            raise TypeError(f"{type(self).__name__} takes settings={self.settings_class.__name__}(...), "
                            f"got {type(settings).__name__}")
        return settings_from(self.settings_class, self.name, {**asdict(settings), **overrides}) if overrides else settings

    # ------------------------------------------------------------------ public API
    def optimize(self, objective: Objective, initial: torch.Tensor | None = None,
                 proposals: torch.Tensor | None = None) -> torch.Tensor:
        """Best sequence ``[H, act_dim]`` (float32, inside the action space) for ``objective``.

        ``initial`` ``[H, act_dim]``, if given, is where the search starts (a CEM mean, an MPPI
        nominal, a candidate for random shooting); it is clamped into the action space.
        ``proposals`` ``[N, H, act_dim]`` (Box spaces), if given, join the first population of the
        search as candidates of their own (e.g. a learned policy's plans), clamped into the space:
        they can become elites, and one of them is returned if nothing better is found.
        """
        start = None if initial is None else self._check_initial(initial)
        return self._run(objective, self._start_state(start), proposals)

    def plan(self, objective: Objective, proposals: torch.Tensor | None = None) -> torch.Tensor:
        """Like :meth:`optimize`, warm-started from the previous solution shifted one step (its
        last step re-initialised); the new solution is kept for the next call."""
        if self._warm is None:
            return self._run(objective, self._start_state(None), proposals)
        return self._run(objective, shift_steps(self._warm, self._fresh_state_step()), proposals)

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self._warm = None

    # ------------------------------------------------------------------ shared machinery
    def _check_initial(self, initial: Any) -> torch.Tensor:
        sequence = torch.as_tensor(initial, dtype=torch.float32, device=self.bounds.low.device)
        if sequence.shape != (self.horizon, self.act_dim):
            raise ValueError(f"initial has shape {tuple(sequence.shape)}, expected (horizon, act_dim) = "
                             f"({self.horizon}, {self.act_dim})")
        if not torch.isfinite(sequence).all():
            raise ValueError("initial must be finite")
        return self.bounds.project(sequence)

    def _check_proposals(self, proposals: Any) -> torch.Tensor:
        if self.bounds.discrete:
            raise TypeError(f"{type(self).__name__}: proposals are supported for Box action spaces only")
        sequences = torch.as_tensor(proposals, dtype=torch.float32, device=self.bounds.low.device)
        if sequences.ndim != 3 or sequences.shape[1:] != (self.horizon, self.act_dim) or sequences.shape[0] < 1:
            raise ValueError(f"proposals have shape {tuple(sequences.shape)}, expected (N, horizon, act_dim) = "
                             f"(N, {self.horizon}, {self.act_dim}) with N >= 1")
        if not torch.isfinite(sequences).all():
            raise ValueError("proposals must be finite")
        return self.bounds.project(sequences)

    def _seeded(self, candidates: torch.Tensor) -> torch.Tensor:
        """``candidates [P, H, a]`` followed by the proposals, the first time a search asks (its
        first population); unchanged afterwards or when there are none."""
        if self._proposals is None:
            return candidates
        candidates, self._proposals = torch.cat([candidates, self._proposals.to(candidates.dtype)]), None
        return candidates

    def _run(self, objective: Objective, state: torch.Tensor | None,
             proposals: torch.Tensor | None = None) -> torch.Tensor:
        if not callable(objective):
            raise TypeError(f"objective must be callable [P, H, act_dim] -> [P], got {objective!r}")
        self._proposals = None if proposals is None else self._check_proposals(proposals)
        try:
            result = self._search(objective, state)
        finally:
            self._proposals = None
        self._warm = result.state
        best = self.bounds.project(result.best.detach().to(torch.float32))
        self.last_info = {"optimizer": self.name, "best_score": result.best_score,
                          "all_vetoed": result.best_score == -math.inf, **result.info}
        return best

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor | None:
        """The search state ``[H, d]`` to start from, given a clamped ``initial [H, a]`` or None
        (None: the search has no start state, e.g. random shooting without ``initial``)."""

    @abstractmethod
    def _fresh_state_step(self) -> torch.Tensor:
        """The state ``[d]`` for the step appended when a warm start is shifted."""

    @abstractmethod
    def _search(self, objective: Objective, state: torch.Tensor | None) -> SearchResult:
        """Run the search from ``state`` ``[H, d]``."""


def optimizer_names(include_model_based: bool = False) -> list[str]:
    """Names :func:`make_optimizer` accepts for any objective; with ``include_model_based`` also
    those that need a :class:`~forethought.planning.rollout.RolloutObjective` (``ilqr``, ``lqr``)."""
    return sorted(name for name, cls in _OPTIMIZERS.items() if include_model_based or not cls.needs_dynamics)


def optimizer_class(name: str) -> type[TrajectoryOptimizer]:
    """The optimiser class called ``name``; a ValueError listing the valid names otherwise."""
    cls = _OPTIMIZERS.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}")
    return cls


def make_optimizer(name: str, action_space: gym.spaces.Box | gym.spaces.Discrete, horizon: int,
                   generator: torch.Generator | None = None, **settings: Any) -> TrajectoryOptimizer:
    """Build the optimiser called ``name`` (see :func:`optimizer_names`); ``settings`` are fields
    of its settings dataclass (e.g. ``population=500``), checked with errors that name them."""
    return optimizer_class(name)(action_space, horizon, generator=generator, **settings)
