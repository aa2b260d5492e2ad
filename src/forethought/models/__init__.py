"""Dynamics models behind one interface (see :mod:`forethought.models.base`)."""

from forethought.models.base import DynamicsModel, FitReport, Prediction

__all__ = ["DynamicsModel", "FitReport", "Prediction"]
