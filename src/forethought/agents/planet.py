"""PlaNet (Hafner et al., 2019): model-predictive control in the latent space of a world model
learned from pixels.

Every step the current frame is filtered into the latent state; a trajectory optimiser (CEM by
default) scores candidate action sequences by the world model's predicted rewards along their
imagined latent rollouts; the first action of the best sequence is executed (with Gaussian
exploration noise while collecting data).

    env = make_pixel_env("pendulum-swingup", action_repeat=2)
    agent = PlaNet(env, PlaNetConfig())
    agent.learn(episodes=50)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.latent import LatentAgent, LatentAgentConfig
from forethought.models.rssm import LatentState
from forethought.planning import make_optimizer, optimizer_names
from forethought.seeding import generator, set_state


@dataclass
class PlaNetConfig(LatentAgentConfig):
    """PlaNet settings: the shared latent-agent ones plus the planner.

    ``optimizer`` and ``settings`` choose the trajectory optimiser over normalised actions
    (PlaNet's paper: CEM, horizon 12, 1000 candidates, 100 elites, 10 iterations; the defaults
    here are lighter for CPUs). ``exploration_noise`` is the std of the Gaussian noise added to
    planned actions while collecting. ``sample`` draws the imagined latents from the prior (as
    PlaNet does) instead of taking its mean."""

    optimizer: str = "cem"
    horizon: int = 12
    settings: dict = field(default_factory=lambda: {"population": 300, "elites": 30, "iterations": 5,
                                                    "momentum": 0.0, "init_std": 1.0})
    exploration_noise: float = 0.3
    sample: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.optimizer not in optimizer_names():
            raise ValueError(f"optimizer must be one of {optimizer_names()}, got {self.optimizer!r}")
        if self.horizon < 1 or self.exploration_noise < 0:
            raise ValueError(f"need horizon >= 1 and exploration_noise >= 0, got {self.horizon}, {self.exploration_noise}")


class PlaNet(LatentAgent):
    """Latent-space MPC; see the module docstring."""

    name = "planet"
    config_class = PlaNetConfig

    def __init__(self, env: gym.Env, config: PlaNetConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        config = config or PlaNetConfig()
        super().__init__(env, config, seed, device)
        space = gym.spaces.Box(-1.0, 1.0, shape=(self.action_dim,), dtype=np.float32)
        self.plan_generator = generator(self.seed, "planner", device=self.device)
        self.optimizer = make_optimizer(config.optimizer, space, config.horizon, generator=self.plan_generator,
                                        **config.settings)

    def reset(self) -> None:
        super().reset()
        self.optimizer.reset()

    def objective(self, state: LatentState):
        """Scores ``[P, H, a]`` normalised sequences from ``state`` (batch of one) by predicted return."""
        def score(actions: torch.Tensor) -> torch.Tensor:
            start = state.repeat(actions.shape[0])
            future, _ = self.model.imagine(start, actions.shape[1], actions=actions, generator=self.plan_generator,
                                           sample=self.config.sample)
            return self.model.reward(future.features).sum(1)
        return score

    def act_latent(self, state: LatentState, explore: bool) -> np.ndarray:
        action = self.optimizer.plan(self.objective(state))[0]
        if explore and self.config.exploration_noise > 0:
            noise = torch.randn(action.shape, generator=self.generator, device=action.device)
            action = (action + noise * self.config.exploration_noise).clamp(-1.0, 1.0)
        return action.cpu().numpy().astype(np.float32)

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"plan_generator": self.plan_generator.get_state()}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        set_state(self.plan_generator, tensors["plan_generator"], "the agent's plan_generator")
