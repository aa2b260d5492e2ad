"""Dynamics models behind one interface (see :mod:`forethought.models.base`)."""

from forethought.models.base import DynamicsModel, FitReport, MemberPredictor, Prediction
from forethought.models.baseline import ConstantDelta
from forethought.models.config import ModelConfig, TrainConfig, build_model
from forethought.models.dropout import MCDropoutDynamics
from forethought.models.known import KnownDynamics
from forethought.models.lagrangian import LagrangianDynamics
from forethought.models.laplace import LastLayerLaplaceDynamics
from forethought.models.linear import LinearGaussian
from forethought.models.neural import (DeterministicEnsemble, DeterministicMLP, MLPDynamics, ProbabilisticEnsemble,
                                       ProbabilisticMLP, make_model)
from forethought.models.residual import ResidualModel, Simulator
from forethought.models.reward import RewardModel, TerminationClassifier

__all__ = ["ConstantDelta", "DynamicsModel", "FitReport", "KnownDynamics", "LagrangianDynamics", "LastLayerLaplaceDynamics", "LinearGaussian",
           "MCDropoutDynamics", "MemberPredictor", "ModelConfig", "Prediction", "MLPDynamics", "DeterministicMLP",
           "ProbabilisticMLP", "DeterministicEnsemble", "ProbabilisticEnsemble", "ResidualModel", "RewardModel",
           "Simulator", "TerminationClassifier", "TrainConfig", "build_model", "make_model"]
