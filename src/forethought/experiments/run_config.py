"""The config of ``forethought run ALGO``: what every run has (environment, budget, evaluation,
checkpoints, seed, output) plus the agent's own config, with per-algorithm defaults.

    config = load_config(RUN_CONFIGS["sac"], None, ["env=Pendulum-v1", "steps=2000"])

Budgets: ``steps`` counts raw real environment steps (action repeats included), ``episodes``
counts episodes (PETS: trials); a run ends at whichever comes first. Step-wise agents (SAC,
Dyna, MBPO) stop exactly at ``steps``; episode-wise ones after the episode that reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forethought.agents.dreamer import DreamerConfig
from forethought.agents.dyna import DynaConfig
from forethought.agents.guided import GuidedMPCConfig
from forethought.agents.mbpo import MBPOConfig
from forethought.agents.muzero import MuZeroConfig
from forethought.agents.pets import PETSConfig
from forethought.agents.planet import PlaNetConfig
from forethought.agents.sac import SACConfig
from forethought.device import check_device
from forethought.envs.curriculum import CurriculumConfig


@dataclass
class RunConfig:
    """Settings every run shares.

    ``eval_every``: real environment steps between evaluations, each ``eval_episodes`` episodes
    of the agent acting deterministically in a separate copy of the environment, after the
    episode that crosses the mark and at the end (None: no evaluations; the training episodes'
    returns are the learning curve). ``checkpoint_every``: episodes between agent checkpoints
    (and one at the end). ``oracle_episodes``: episodes of the PETS planner in the exact
    dynamics, the reference return (where the environment has them; 0 skips it).
    ``target``: a return whose first reaching is reported (default: ``oracle_fraction`` of the
    oracle's return). ``video``: film the last episode where the environment renders headless.
    ``continue_untrained``: go on when a model fit diverged (non-finite loss) before any model was
    trained, instead of stopping with an error. ``action_repeat``: environment steps each agent
    action is held for (the rewards summed; the training and evaluation environments alike);
    ``steps``, ``eval_every`` and ``env_steps`` count the raw environment steps. ``device``:
    where the agent's networks, models, planner candidates, generators and sampled batches live,
    ``cpu`` (bit-reproducible), ``cuda`` or ``auto`` (cuda where available, else cpu); it is a
    setting of the run rather than of the algorithm, like ``seed``: the agent's saved config
    does not hold it, so a saved agent loads onto whichever device the next run names.
    ``curriculum``: a start-state curriculum for the training episodes of the swing-up tasks
    (:class:`~forethought.envs.curriculum.CurriculumConfig`; off by default); evaluations start as
    the task does, so a run with one needs ``eval_every``."""

    env: str = "Pendulum-v1"
    env_kwargs: dict = field(default_factory=dict)
    action_repeat: int = 1
    seed: int = 0
    out: str | None = None
    steps: int | None = None
    episodes: int | None = None
    eval_every: int | None = None
    eval_episodes: int = 5
    checkpoint_every: int = 1
    oracle_episodes: int = 0
    oracle_fraction: float = 0.9
    target: float | None = None
    video: bool = True
    continue_untrained: bool = False
    device: str = "cpu"
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("steps", "episodes", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or null), got {value}")
        if self.steps is None and self.episodes is None:
            raise ValueError("give a budget: steps (real environment steps) and/or episodes")
        for name in ("eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.oracle_episodes < 0:
            raise ValueError(f"oracle_episodes must be >= 0, got {self.oracle_episodes}")
        if not 0.0 < self.oracle_fraction <= 1.0:
            raise ValueError(f"oracle_fraction must be in (0, 1], got {self.oracle_fraction}")
        if not self.env:
            raise ValueError("env must name an environment")
        if isinstance(self.action_repeat, bool) or not isinstance(self.action_repeat, int) or self.action_repeat < 1:
            raise ValueError(f"action_repeat must be an integer >= 1, got {self.action_repeat!r}")
        check_device(self.device)
        if self.curriculum.enabled and self.eval_every is None:
            raise ValueError(f"curriculum.start_spread={self.curriculum.start_spread} needs eval_every (steps between "
                             f"evaluations): training episodes start off the task, so only evaluations measure it")


@dataclass
class PETSRunConfig(RunConfig):
    env: str = "cartpole-swingup"
    episodes: int | None = 15
    oracle_episodes: int = 1
    agent: PETSConfig = field(default_factory=PETSConfig)


@dataclass
class SACRunConfig(RunConfig):
    steps: int | None = 20_000
    eval_every: int | None = 1000
    agent: SACConfig = field(default_factory=SACConfig)


@dataclass
class DynaRunConfig(SACRunConfig):
    agent: DynaConfig = field(default_factory=DynaConfig)


@dataclass
class MBPORunConfig(SACRunConfig):
    agent: MBPOConfig = field(default_factory=MBPOConfig)


@dataclass
class GuidedRunConfig(SACRunConfig):
    agent: GuidedMPCConfig = field(default_factory=GuidedMPCConfig)


@dataclass
class PixelRunConfig(RunConfig):
    """A run from 64x64 frames (``agent.model.image_size``), each action held ``action_repeat``
    environment steps (2 by default). The evaluation episodes are also the held-out data of the open-loop
    diagnostics (``open_loop_context`` filtered frames, then prediction up to
    ``open_loop_length``)."""

    env: str = "pendulum-swingup"
    steps: int | None = 50_000
    action_repeat: int = 2
    eval_every: int | None = 5000
    eval_episodes: int = 1
    checkpoint_every: int = 10
    oracle_episodes: int = 1
    oracle_fraction: float = 0.7
    open_loop_context: int = 5
    open_loop_length: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.open_loop_context < self.open_loop_length:
            raise ValueError(f"need 1 <= open_loop_context < open_loop_length, got {self.open_loop_context}, "
                             f"{self.open_loop_length}")


@dataclass
class PlaNetRunConfig(PixelRunConfig):
    agent: PlaNetConfig = field(default_factory=PlaNetConfig)


@dataclass
class DreamerRunConfig(PixelRunConfig):
    agent: DreamerConfig = field(default_factory=DreamerConfig)


@dataclass
class MuZeroRunConfig(RunConfig):
    """A MuZero run: Discrete actions, evaluated every 2,000 real steps on 3 episodes (each step of
    an evaluation is a whole tree search)."""

    env: str = "CartPole-v1"
    steps: int | None = 20_000
    eval_every: int | None = 2000
    eval_episodes: int = 3
    agent: MuZeroConfig = field(default_factory=MuZeroConfig)


RUN_CONFIGS: dict[str, type[RunConfig]] = {"pets": PETSRunConfig, "sac": SACRunConfig, "dyna": DynaRunConfig,
                                           "mbpo": MBPORunConfig, "guided": GuidedRunConfig, "planet": PlaNetRunConfig,
                                           "dreamer": DreamerRunConfig, "muzero": MuZeroRunConfig}
RUN_ALGOS = tuple(RUN_CONFIGS)


def run_config_class(algo: str) -> type[RunConfig]:
    """The config dataclass of ``forethought run <algo>``."""
    if algo not in RUN_CONFIGS:
        raise ValueError(f"run command must be one of {list(RUN_ALGOS)}, got {algo!r}")
    return RUN_CONFIGS[algo]
