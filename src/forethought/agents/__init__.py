"""What acts in an environment: model-predictive control, PETS, soft actor-critic, and MPC guided by a
learned policy."""

from forethought.agents.episode import Episode, random_policy, run_episode
from forethought.agents.hybrid import HybridConfig, PolicyGuidedMPC
from forethought.agents.mpc import MPCAgent, PlannerConfig
from forethought.agents.pets import PETS, PETSConfig, TrialResult
from forethought.agents.sac import SAC, EpisodeRecord, SACConfig

__all__ = ["Episode", "EpisodeRecord", "HybridConfig", "MPCAgent", "PolicyGuidedMPC", "PETS", "PETSConfig", "PlannerConfig", "SAC", "SACConfig", "TrialResult",
           "random_policy", "run_episode"]
