"""Planning: trajectory optimisers that search action sequences ``[H, act_dim]`` for the one an
objective scores highest, the scoring of sequences in a model (:class:`TrajectoryEvaluator`),
(i)LQR, and the planner's config. Models are seen only through the
:class:`~forethought.models.DynamicsModel` interface."""

from forethought.planning.cem import CEM, CEMSettings
from forethought.planning.gradient import GradientOptimizer, GradientSettings
from forethought.planning.icem import ICEM, ICEMSettings, colored_noise
from forethought.planning.ilqr import ILQR, ILQROptimizer, ILQRSettings, LQROptimizer, LQRSettings
from forethought.planning.lqr import LQRController, LQRSolution, infinite_horizon_lqr, lqr, lqr_from_model
from forethought.planning.mppi import MPPI, MPPISettings, softmax_weights
from forethought.planning.optimizer import (Objective, RolloutObjective, TrajectoryOptimizer, make_optimizer,
                                            optimizer_class, optimizer_names)
from forethought.planning.random_shooting import RandomSettings, RandomShooting
from forethought.planning.config import PlannerConfig
from forethought.planning.rollout import PROPAGATIONS, Evaluation, TrajectoryEvaluator

__all__ = [
    "CEM", "CEMSettings", "Evaluation", "GradientOptimizer", "GradientSettings", "ICEM", "ICEMSettings", "ILQR",
    "ILQROptimizer", "ILQRSettings", "LQRController", "LQROptimizer", "LQRSettings", "LQRSolution", "MPPI",
    "MPPISettings", "Objective", "PROPAGATIONS", "PlannerConfig", "RandomSettings", "RandomShooting",
    "RolloutObjective", "TrajectoryEvaluator", "TrajectoryOptimizer", "colored_noise", "infinite_horizon_lqr", "lqr",
    "lqr_from_model", "make_optimizer", "optimizer_class", "optimizer_names", "softmax_weights",
]
