"""What acts in an environment: one :class:`Agent` interface implemented by PETS (model-predictive
control in a learned model), soft actor-critic, Dyna, MBPO, policy-guided MPC, PlaNet,
Dreamer and MuZero (tree search in a learned model, Discrete actions), plus the MPC controllers they plan with."""

from forethought.agents.base import Agent, EpisodeResult
from forethought.agents.dreamer import Dreamer, DreamerConfig
from forethought.agents.dyna import Dyna, DynaConfig
from forethought.agents.guided import GuidedMPC, GuidedMPCConfig
from forethought.agents.hybrid import HybridConfig, PolicyGuidedMPC
from forethought.agents.mbpo import MBPO, MBPOConfig
from forethought.agents.mpc import MPCAgent
from forethought.agents.muzero import MuZero, MuZeroConfig
from forethought.agents.pets import PETS, PETSConfig
from forethought.agents.planet import PlaNet, PlaNetConfig
from forethought.agents.sac import SAC, SACConfig

AGENTS: dict[str, type[Agent]] = {cls.name: cls for cls in (PETS, SAC, Dyna, MBPO, GuidedMPC, PlaNet, Dreamer,
                                                              MuZero)}

__all__ = ["AGENTS", "Agent", "Dreamer", "DreamerConfig", "Dyna", "DynaConfig", "EpisodeResult", "GuidedMPC",
           "GuidedMPCConfig", "HybridConfig",
           "MBPO", "MBPOConfig", "MPCAgent", "MuZero", "MuZeroConfig", "PETS", "PETSConfig", "PlaNet", "PlaNetConfig", "PolicyGuidedMPC",
           "SAC", "SACConfig"]
