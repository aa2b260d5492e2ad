"""Dynamics models behind one interface (see :mod:`forethought.models.base`)."""

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.models.baseline import ConstantDelta
from forethought.models.known import KnownDynamics
from forethought.models.linear import LinearGaussian
from forethought.models.neural import (DeterministicEnsemble, DeterministicMLP, MLPDynamics, ProbabilisticEnsemble,
                                       ProbabilisticMLP, make_model)
from forethought.models.residual import ResidualModel, Simulator

__all__ = ["ConstantDelta", "DynamicsModel", "FitReport", "KnownDynamics", "LinearGaussian", "Prediction",
           "MLPDynamics", "DeterministicMLP", "ProbabilisticMLP", "DeterministicEnsemble", "ProbabilisticEnsemble",
           "ResidualModel", "Simulator", "make_model"]

from forethought.models.reward import RewardModel, TerminationClassifier  # noqa: E402

__all__ += ["RewardModel", "TerminationClassifier"]
