"""Planning: trajectory optimisers that search action sequences ``[H, act_dim]`` for the one an
objective scores highest, and (i)LQR for linear-quadratic and differentiable problems."""

from forethought.planning.cem import CEM
from forethought.planning.gradient import GradientOptimizer
from forethought.planning.icem import ICEM, colored_noise
from forethought.planning.lqr import ILQR, LQRController, LQRSolution, infinite_horizon_lqr, lqr, lqr_from_model
from forethought.planning.mppi import MPPI, softmax_weights
from forethought.planning.optimizer import Objective, TrajectoryOptimizer, make_optimizer, optimizer_names
from forethought.planning.random_shooting import RandomShooting

__all__ = [
    "CEM",
    "GradientOptimizer",
    "ICEM",
    "ILQR",
    "LQRController",
    "LQRSolution",
    "MPPI",
    "Objective",
    "RandomShooting",
    "TrajectoryOptimizer",
    "colored_noise",
    "infinite_horizon_lqr",
    "lqr",
    "lqr_from_model",
    "make_optimizer",
    "optimizer_names",
    "softmax_weights",
]

from forethought.planning.rollout import PROPAGATIONS, Evaluation, TrajectoryEvaluator  # noqa: E402

__all__ += ["PROPAGATIONS", "Evaluation", "TrajectoryEvaluator"]
