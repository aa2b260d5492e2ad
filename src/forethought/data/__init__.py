"""Transition storage, splits, bootstrap resampling and offline loading."""

from forethought.data.buffer import FIELDS, ReplayBuffer, TransitionBatch, bootstrap_indices
from forethought.data.collect import collect, flat_dim
from forethought.data.normalizer import Normalizer
from forethought.data.offline import load_minari, load_npz

__all__ = ["FIELDS", "collect", "flat_dim", "Normalizer", "ReplayBuffer", "TransitionBatch", "bootstrap_indices", "load_minari", "load_npz"]
