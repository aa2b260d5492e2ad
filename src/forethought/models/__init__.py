"""Dynamics models behind one interface (see :mod:`forethought.models.base`)."""

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.models.baseline import ConstantDelta

__all__ = ["ConstantDelta", "DynamicsModel", "FitReport", "Prediction"]
