"""Transition storage, splits, bootstrap resampling and offline loading."""

from forethought.data.buffer import FIELDS, ReplayBuffer, TransitionBatch, bootstrap_indices
from forethought.data.normalizer import Normalizer
from forethought.data.offline import load_minari, load_npz

__all__ = ["FIELDS", "Normalizer", "ReplayBuffer", "TransitionBatch", "bootstrap_indices", "load_minari", "load_npz"]
