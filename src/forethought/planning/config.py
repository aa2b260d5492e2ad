"""How an MPC agent plans: :class:`PlannerConfig`, with its defaults defined once (what PETS plans
with) and every value checked when it is built.

    PlannerConfig()                                             # iCEM, 100 candidates, TS-inf, 5 particles
    PlannerConfig(optimizer="cem", settings={"population": 500})
    PlannerConfig(optimizer="ilqr", propagation="expectation", particles=1)

From the command line the same fields are ``agent.planner.<key>=<value>`` overrides, e.g.
``agent.planner.optimizer=mppi agent.planner.settings.temperature=0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# the optimiser modules register their optimisers (and settings classes) when imported
from forethought.planning import cem, gradient, icem, ilqr, mppi, random_shooting  # noqa: F401
from forethought.planning.exploration import check_dims, check_exploration
from forethought.planning.horizon import DEFAULT_THRESHOLD, check_auto_horizon
from forethought.planning.optimizer import optimizer_class, optimizer_names
from forethought.planning.propagation import PROPAGATIONS
from forethought.planning.settings import settings_from

COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclass
class PlannerConfig:
    """How an MPC agent plans.

    Attributes:
        optimizer: the trajectory optimiser, one of ``optimizer_names(include_model_based=True)``
            (``cem``, ``gradient``, ``icem``, ``ilqr``, ``lqr``, ``mppi``, ``random``).
        horizon: steps per plan, ``>= 1``; or ``"auto"`` (PETS): chosen after every model fit
            as the longest within ``horizon_bounds`` whose held-out open-loop error stays under
            ``horizon_threshold`` (see :mod:`forethought.planning.horizon`), 15 (clipped to the
            bounds) until there is held-out data.
        horizon_bounds: ``[low, high]``, the horizons ``auto`` chooses among.
        horizon_threshold: the open-loop error ``auto`` allows, relative to the state's spread
            (RMS over dimensions), ``> 0``.
        particles: rollouts per candidate (per member in ``all-members`` mode), ``>= 1``.
        propagation: how particles move through an ensemble: ``ts1``, ``tsinf``, ``expectation``
            or ``all-members`` (see :mod:`forethought.planning.rollout`).
        risk_penalty: weight of the members' disagreement subtracted from a candidate's return, ``>= 0``.
        exploration_bonus: ``beta >= 0``: every imagined step also earns ``beta`` times the
            members' spread about it (see :mod:`forethought.planning.exploration`), so the plan
            seeks what the model does not know yet; 0: none. Only while learning: evaluation
            episodes plan without it.
        exploration_anneal_steps: the bonus falls linearly to 0 over this many real environment
            steps (None: kept).
        disagreement_dims: the observation indices the members' disagreement is measured on, for
            the exploration bonus, ``risk_penalty`` and ``veto_threshold`` (None: all). Leave out
            dimensions that grow without bound (a cart's position), where novelty is cheap and
            says nothing about the task.
        veto_threshold: candidates whose disagreement exceeds it are never chosen (None: no veto).
        replan_every: the plan is recomputed every this many steps, ``1 <= replan_every <= horizon``.
        compute_dtype: ``float32``, or ``bfloat16`` to run an ensemble's forward passes in
            bfloat16 (several times faster on CPUs with AMX/AVX512-BF16; candidate returns stay
            within the tolerance documented in :class:`~forethought.planning.TrajectoryEvaluator`).
        settings: the optimiser's settings that differ from its defaults, by name; the keys and
            values must be those of the optimiser's settings dataclass (:meth:`optimizer_settings`:
            ``ICEMSettings``, ``CEMSettings``, ``MPPISettings``, ``GradientSettings``,
            ``RandomSettings``, ``ILQRSettings``, ``LQRSettings``). Empty: all its defaults.

    Every error names the key and what is allowed.
    """

    optimizer: str = "icem"
    horizon: int | str = 15
    horizon_bounds: tuple[int, int] = (5, 30)
    horizon_threshold: float = DEFAULT_THRESHOLD
    particles: int = 5
    propagation: str = "tsinf"
    risk_penalty: float = 0.0
    exploration_bonus: float = 0.0
    exploration_anneal_steps: int | None = None
    disagreement_dims: list[int] | None = None
    veto_threshold: float | None = None
    replan_every: int = 1
    compute_dtype: str = "float32"
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = optimizer_names(include_model_based=True)
        if self.optimizer not in names:
            raise ValueError(f"planner.optimizer must be one of {names}, got {self.optimizer!r}")
        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"planner.propagation must be one of {list(PROPAGATIONS)}, got {self.propagation!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"planner.compute_dtype must be one of {list(COMPUTE_DTYPES)}, got {self.compute_dtype!r}")
        if self.horizon != "auto" and (isinstance(self.horizon, bool) or not isinstance(self.horizon, int)
                                       or self.horizon < 1):
            raise ValueError(f"planner.horizon must be an integer >= 1 or 'auto', got {self.horizon!r}")
        if isinstance(self.particles, bool) or not isinstance(self.particles, int) or self.particles < 1:
            raise ValueError(f"planner.particles must be an integer >= 1, got {self.particles!r}")
        check_auto_horizon(self.horizon_bounds, self.horizon_threshold, prefix="planner.")
        self.horizon_bounds = tuple(self.horizon_bounds)
        shortest = self.horizon_bounds[0] if self.horizon == "auto" else self.horizon
        if isinstance(self.replan_every, bool) or not isinstance(self.replan_every, int) or \
                not 1 <= self.replan_every <= shortest:
            raise ValueError(f"planner.replan_every must be an integer between 1 and the (shortest) horizon "
                             f"{shortest}, got {self.replan_every!r}")
        if not _number(self.risk_penalty) or not (math.isfinite(self.risk_penalty) and self.risk_penalty >= 0):
            raise ValueError(f"planner.risk_penalty must be a finite number >= 0, got {self.risk_penalty!r}")
        check_exploration(self.exploration_bonus, self.exploration_anneal_steps, prefix="planner.")
        check_dims(self.disagreement_dims, None, "planner.disagreement_dims")
        if self.veto_threshold is not None and not (
                _number(self.veto_threshold) and math.isfinite(self.veto_threshold) and self.veto_threshold >= 0):
            raise ValueError(f"planner.veto_threshold must be None or a finite number >= 0, got {self.veto_threshold!r}")
        if not isinstance(self.settings, dict):
            raise ValueError(f"planner.settings must be a mapping of {self.optimizer!r} settings, got {self.settings!r}")
        self.optimizer_settings()

    def optimizer_settings(self) -> Any:
        """The optimiser's typed, checked settings: its settings dataclass with :attr:`settings`
        applied (a ValueError naming ``planner.settings.<key>``, the optimiser and what it allows
        for an unknown key or a bad value)."""
        cls = optimizer_class(self.optimizer).settings_class
        return settings_from(cls, self.optimizer, self.settings, prefix="planner.settings.")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))
