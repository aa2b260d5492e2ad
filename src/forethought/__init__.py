"""forethought: model-based reinforcement learning in PyTorch.

Learn how a system moves from a few real transitions, measure how good that model is, and plan or
train policies inside it.
"""

__version__ = "0.1.0"
