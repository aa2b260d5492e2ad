"""What acts in an environment: model-predictive control and PETS."""

from forethought.agents.episode import Episode, random_policy, run_episode
from forethought.agents.mpc import MPCAgent, PlannerConfig
from forethought.agents.pets import PETS, PETSConfig, TrialResult

__all__ = ["Episode", "MPCAgent", "PETS", "PETSConfig", "PlannerConfig", "TrialResult", "random_policy", "run_episode"]
