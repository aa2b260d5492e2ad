"""How good is a dynamics model? One-step error, compounding error, calibration and plots.

Everything here uses only ``DynamicsModel.predict``, so any model (linear, ensemble, residual,
latent) is measured the same way.
"""

from forethought.evaluation.calibration import (EXPECTED_1SIGMA, EXPECTED_2SIGMA, average_ranks, calibration,
                                                disagreement_shift, spearman_correlation)
from forethought.evaluation.compounding import (linear_compounding_table, open_loop_rollout, rollout_error,
                                                trajectory_windows)
from forethought.evaluation.plots import plot_compounding_error, plot_predicted_trajectories
from forethought.evaluation.prediction import one_step_error, predict_batched

__all__ = [
    "EXPECTED_1SIGMA",
    "EXPECTED_2SIGMA",
    "average_ranks",
    "calibration",
    "disagreement_shift",
    "linear_compounding_table",
    "one_step_error",
    "open_loop_rollout",
    "plot_compounding_error",
    "plot_predicted_trajectories",
    "predict_batched",
    "rollout_error",
    "spearman_correlation",
    "trajectory_windows",
]
