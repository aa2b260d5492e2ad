"""Dynamics models behind one interface (see :mod:`forethought.models.base`)."""

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.models.baseline import ConstantDelta
from forethought.models.linear import LinearGaussian

__all__ = ["ConstantDelta", "DynamicsModel", "FitReport", "LinearGaussian", "Prediction"]
