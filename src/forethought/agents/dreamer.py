"""Dreamer (Hafner et al., 2020; return normalisation after DreamerV3): an actor and a critic trained
only on imagined latent trajectories of a world model learned from pixels.

After each world-model update, every posterior state of the batch starts an imagined rollout of
``imagination_horizon`` steps under the actor. The critic regresses the symlog of the
lambda-returns of those rollouts (as DreamerV3, so returns of -1000 are as easy to fit as returns
of 10: Pendulum's are the former); the actor maximises them, divided by a running scale (the
5th-95th percentile range, at least 1), plus an entropy bonus, either by backpropagating through
the learned dynamics (``actor_gradient="dynamics"``, the default) or with score-function
gradients baselined by the critic (``"reinforce"``). The world model's own weights are not
changed by these losses. :class:`ImaginationActorCritic` holds this behaviour learning; it runs
on any :class:`ImaginedWorld`.

    agent = Dreamer(make_pixel_env("pendulum-swingup", action_repeat=2), DreamerConfig())
    agent.learn(episodes=100)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from forethought.agents.base import EpisodeResult
from forethought.agents.latent import LatentAgent, LatentAgentConfig
from forethought.agents.plan2explore import DisagreementHeads
from forethought.data.sequences import SequenceBatch
from forethought.models.rssm import LatentState
from forethought.models.world_model import Policy, mlp_head, symexp, symlog
from forethought.planning.exploration import annealed_bonus, check_exploration
from forethought.seeding import derive_seed, generator, set_state
from forethought.serialization import load_module_tensors, module_tensors


@dataclass
class DreamerConfig(LatentAgentConfig):
    """Dreamer settings: the shared latent-agent ones plus behaviour learning (defaults after
    DreamerV1, with DreamerV3's return normalisation, entropy bonus and symlog critic; learning
    rates above DreamerV1's 8e-5, since a CPU budget allows far fewer updates per environment step).
    ``exploration_noise`` is the std of Gaussian noise added to the actor's sampled (normalised)
    action while collecting, as in DreamerV1: a saturated actor still tries other actions.
    ``actor_init_std`` and ``actor_min_std`` are the actor's initial and smallest standard
    deviation before the tanh (DreamerV1: 5 and 1e-4). ``actor_gradient``: "dynamics"
    backpropagates the returns through the learned dynamics (DreamerV1); "reinforce" uses the
    score-function gradient with the critic as baseline (DreamerV3), so imagination needs no
    backward pass through the world model.

    ``exploration_bonus`` (``beta >= 0``): every imagined step also earns ``beta`` times the
    disagreement of ``disagreement_heads`` one-step latent predictors (Plan2Explore, see
    :mod:`~forethought.agents.plan2explore`), annealed linearly to 0 over
    ``exploration_anneal_steps`` real environment steps (None: kept); 0: no heads are trained."""

    imagination_horizon: int = 15
    gamma: float = 0.99
    lambda_: float = 0.95
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    entropy_scale: float = 3e-4
    actor_hidden: int = 200
    target_tau: float = 0.02
    return_scale_decay: float = 0.99
    grad_clip: float = 100.0
    exploration_noise: float = 0.3
    actor_init_std: float = 5.0
    actor_min_std: float = 1e-4
    actor_gradient: str = "dynamics"
    exploration_bonus: float = 0.0
    exploration_anneal_steps: int | None = None
    disagreement_heads: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_exploration(self.exploration_bonus, self.exploration_anneal_steps)
        if isinstance(self.disagreement_heads, bool) or not isinstance(self.disagreement_heads, int) \
                or self.disagreement_heads < 2:
            raise ValueError(f"disagreement_heads must be an integer >= 2, got {self.disagreement_heads!r}")
        if self.imagination_horizon < 1:
            raise ValueError(f"imagination_horizon must be >= 1, got {self.imagination_horizon}")
        for name in ("gamma", "lambda_", "return_scale_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.target_tau <= 1.0:
            raise ValueError(f"target_tau must be in (0, 1], got {self.target_tau}")
        if not (self.actor_lr > 0 and self.critic_lr > 0 and self.entropy_scale >= 0 and self.exploration_noise >= 0):
            raise ValueError("actor_lr and critic_lr must be > 0, entropy_scale and exploration_noise >= 0")
        if self.actor_gradient not in ("dynamics", "reinforce"):
            raise ValueError(f"actor_gradient must be 'dynamics' or 'reinforce', got {self.actor_gradient!r}")
        if not (self.actor_init_std > 0 and self.actor_min_std > 0):
            raise ValueError(f"actor_init_std and actor_min_std must be > 0, got {self.actor_init_std}, {self.actor_min_std}")


class TanhGaussianActor(nn.Module):
    """Features ``[N, F]`` -> a tanh-squashed Gaussian over normalised actions ``[N, a]``."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: int, min_std: float = 1e-4, init_std: float = 5.0) -> None:
        super().__init__()
        self.net = mlp_head(feature_dim, hidden, 2 * action_dim)
        self.min_std, self.raw_init_std = min_std, math.log(math.exp(init_std) - 1.0)

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation ``[N, a]`` of the Gaussian before the tanh."""
        mean, raw_std = self.net(features).chunk(2, dim=-1)
        return 5.0 * torch.tanh(mean / 5.0), nn.functional.softplus(raw_std + self.raw_init_std) + self.min_std

    @staticmethod
    def log_prob(mean: torch.Tensor, std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[N]`` of the action ``tanh(pre_tanh)`` (tanh correction included)."""
        log_prob = torch.distributions.Normal(mean, std).log_prob(pre_tanh) - 2.0 * (
            math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
        return log_prob.sum(-1)

    def sample(self, features: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reparameterised action ``[N, a]``, its log-probability ``[N]`` and the Gaussian sample
        before the tanh ``[N, a]``."""
        mean, std = self.distribution(features)
        pre_tanh = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
        return torch.tanh(pre_tanh), self.log_prob(mean, std, pre_tanh), pre_tanh

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        """The deterministic action ``tanh(mean)`` ``[N, a]``."""
        return torch.tanh(self.distribution(features)[0])


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor, lambda_: float) -> torch.Tensor:
    """TD(lambda) returns ``[N, H]`` of imagined steps: ``rewards`` and ``discounts`` ``[N, H]`` belong
    to the step into state ``t + 1``, ``values`` ``[N, H + 1]`` to states ``0 .. H``:
    ``R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1})`` with ``R_H = v_H``."""
    horizon = rewards.shape[1]
    if values.shape[1] != horizon + 1 or discounts.shape != rewards.shape:
        raise ValueError(f"need rewards/discounts [N, H] and values [N, H + 1], got {tuple(rewards.shape)}, "
                         f"{tuple(discounts.shape)}, {tuple(values.shape)}")
    returns, following = [], values[:, -1]
    for t in reversed(range(horizon)):
        following = rewards[:, t] + discounts[:, t] * ((1 - lambda_) * values[:, t + 1] + lambda_ * following)
        returns.append(following)
    return torch.stack(returns[::-1], dim=1)


class ImaginedWorld(Protocol):
    """What behaviour learning needs of a world model: imagination under a policy of the features,
    and the reward and continue predictions of the states it reaches. :class:`LatentWorldModel`
    is one; ``benchmarks/dreamer_exact_dynamics.py`` wraps an exact simulator as another."""

    feature_dim: int

    def imagine(self, start: LatentState, horizon: int, *, policy: Policy,
                generator: torch.Generator) -> tuple[LatentState, torch.Tensor]: ...

    def reward(self, features: torch.Tensor) -> torch.Tensor: ...

    def continue_probability(self, features: torch.Tensor) -> torch.Tensor: ...

    def requires_grad_(self, requires_grad: bool = True) -> object: ...


class ImaginationActorCritic:
    """Dreamer's behaviour learning: an actor and a critic over the features of any
    :class:`ImaginedWorld`, trained on rollouts imagined from given start states; ``seed``
    seeds the initial weights (drawn on the CPU) and the imagination generator (streams named
    after them), on ``device`` with the networks."""

    def __init__(self, feature_dim: int, action_dim: int, config: DreamerConfig, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left as it was
            torch.manual_seed(derive_seed(seed, "behaviour"))
            self.actor = TanhGaussianActor(feature_dim, action_dim, config.actor_hidden, config.actor_min_std,
                                           config.actor_init_std)
            self.critic = mlp_head(feature_dim, config.actor_hidden, 1)
            self.target_critic = mlp_head(feature_dim, config.actor_hidden, 1)
        for module in (self.actor, self.critic, self.target_critic):
            module.to(device)
        self.target_critic.load_state_dict(self.critic.state_dict())
        self.target_critic.requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=1e-5)
        self.return_scale = torch.ones((), device=device)
        self.imagine_generator = generator(seed, "imagination", device=device)

    def act(self, features: torch.Tensor, explore: bool, generator: torch.Generator) -> torch.Tensor:
        """Actions ``[N, a]`` in ``[-1, 1]``: the actor's mode, or a sample plus exploration noise."""
        if not explore:
            return self.actor.mode(features)
        action = self.actor.sample(features, generator)[0]
        noise = torch.randn(action.shape, generator=generator, device=action.device) * self.config.exploration_noise
        return (action + noise).clamp(-1.0, 1.0)

    def imagine(self, world: ImaginedWorld, start: LatentState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features ``[N, H + 1, F]`` of rollouts in ``world`` under the actor from ``start``
        (``[N, ...]``), the log-probabilities ``[N, H]`` of the actions taken and their samples
        before the tanh ``[N, H, a]``."""
        log_probs: list[torch.Tensor] = []
        pre_tanhs: list[torch.Tensor] = []

        def policy(features: torch.Tensor) -> torch.Tensor:
            action, log_prob, pre_tanh = self.actor.sample(features.detach(), self.imagine_generator)
            log_probs.append(log_prob), pre_tanhs.append(pre_tanh)
            return action

        future, _ = world.imagine(start, self.config.imagination_horizon, policy=policy,
                                  generator=self.imagine_generator)
        return (torch.cat([start.features[:, None], future.features], 1), torch.stack(log_probs, 1),
                torch.stack(pre_tanhs, 1))

    def train(self, world: ImaginedWorld, states: LatentState,
              intrinsic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """One actor and one critic update on rollouts imagined from ``states`` (any leading shape);
        ``world``'s own weights are left alone. ``intrinsic`` (features ``[N, H, F]`` of the states
        stepped from, actions ``[N, H, a]`` -> ``[N, H]``) is added to the predicted rewards.
        Returns the losses and imagination statistics."""
        c = self.config
        dynamics = c.actor_gradient == "dynamics"
        world.requires_grad_(False)
        try:
            with torch.set_grad_enabled(dynamics):
                features, log_probs, pre_tanh = self.imagine(world, states.reshape(-1).detach())
                rewards = world.reward(features[:, 1:])
                if intrinsic is not None:
                    bonus = intrinsic(features[:, :-1], torch.tanh(pre_tanh))
                    rewards = rewards + bonus
                discounts = c.gamma * world.continue_probability(features[:, 1:])
                values = symexp(self.target_critic(features).squeeze(-1))
                returns = lambda_returns(rewards, values, discounts, c.lambda_)
            weights = torch.cumprod(torch.cat([torch.ones_like(discounts[:, :1]), discounts[:, :-1]], 1), 1).detach()
            with torch.no_grad():
                spread = torch.quantile(returns, 0.95) - torch.quantile(returns, 0.05)
                self.return_scale = c.return_scale_decay * self.return_scale + (1 - c.return_scale_decay) * spread
            scale = self.return_scale.clamp(min=1.0)
            if dynamics:
                objective = returns / scale - c.entropy_scale * log_probs
            else:
                # Score-function gradient of the sampled actions, baselined by the critic; the
                # entropy bonus from a fresh reparameterised sample of the same distributions.
                mean, std = self.actor.distribution(features[:, :-1])
                advantage = (returns - values[:, :-1]) / scale
                fresh = mean + std * torch.randn(mean.shape, generator=self.imagine_generator, device=mean.device)
                log_probs = self.actor.log_prob(mean, std, fresh)
                objective = self.actor.log_prob(mean, std, pre_tanh) * advantage - c.entropy_scale * log_probs
            actor_loss = -(weights * objective).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
            self.actor_optimizer.step()
        finally:
            world.requires_grad_(True)
        predicted = self.critic(features[:, :-1].detach()).squeeze(-1)
        critic_loss = 0.5 * (weights * (predicted - symlog(returns.detach())) ** 2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        self.critic_optimizer.step()
        with torch.no_grad():
            for target, source in zip(self.target_critic.parameters(), self.critic.parameters()):
                target.lerp_(source, c.target_tau)
        stats = {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(),
                 "imagined_return": returns[:, 0].mean().item(), "entropy": -log_probs.mean().item(),
                 "return_scale": float(self.return_scale)}
        if intrinsic is not None:
            stats["intrinsic_reward"] = bonus.mean().item()
        return stats

    def _parts(self) -> tuple[tuple[str, nn.Module, torch.optim.Optimizer | None], ...]:
        return (("actor", self.actor, self.actor_optimizer), ("critic", self.critic, self.critic_optimizer),
                ("target_critic", self.target_critic, None))

    def tensors(self) -> dict[str, torch.Tensor]:
        """Networks, optimiser moments, return scale and imagination generator, by name."""
        tensors = {"return_scale": self.return_scale.clone(), "imagine_generator": self.imagine_generator.get_state()}
        for prefix, module, optimizer in self._parts():
            tensors.update(module_tensors(prefix, module, optimizer))
        return tensors

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`tensors` returned."""
        self.return_scale = tensors["return_scale"].to(self.return_scale.device)
        set_state(self.imagine_generator, tensors["imagine_generator"], "the behaviour's imagine_generator")
        for prefix, module, optimizer in self._parts():
            load_module_tensors(prefix, tensors, module, optimizer)


class Dreamer(LatentAgent):
    """Actor-critic in imagination; see the module docstring."""

    name = "dreamer"
    metrics = (*LatentAgent.metrics, "actor_loss", "critic_loss", "imagined_return", "entropy", "intrinsic_reward",
               "disagreement_loss")
    config_class = DreamerConfig

    def __init__(self, env: gym.Env, config: DreamerConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        config = config or DreamerConfig()
        super().__init__(env, config, seed, device)
        self.behaviour = ImaginationActorCritic(self.model.feature_dim, self.action_dim, config, self.seed,
                                                self.device)
        self.explorer = (DisagreementHeads(self.model.feature_dim, self.action_dim, self.model.rssm.stoch_dim,
                                           config.disagreement_heads, config.actor_hidden, config.critic_lr,
                                           self.seed, self.device) if config.exploration_bonus > 0 else None)

    def advance(self, max_steps: int | None = None, render: bool = False) -> EpisodeResult:
        """See :meth:`LatentAgent.advance`; without an exploration bonus the Plan2Explore columns
        are empty."""
        result = super().advance(max_steps, render)
        for key in ("intrinsic_reward", "disagreement_loss"):
            result.info.setdefault(key, None)
        return result

    def act_latent(self, state: LatentState, explore: bool) -> np.ndarray:
        return self.behaviour.act(state.features, explore, self.generator)[0].cpu().numpy().astype(np.float32)

    def train_behaviour(self, states: LatentState, batch: SequenceBatch | None = None) -> dict[str, float]:
        """With an exploration bonus, the disagreement heads learn from ``batch`` (when given)
        first, and the behaviour's imagined rewards carry their annealed disagreement."""
        if self.explorer is None:
            return self.behaviour.train(self.model, states)
        c = self.config
        parts = {} if batch is None else self.explorer.train(states, batch.action, batch.is_first)
        beta = annealed_bonus(c.exploration_bonus, c.exploration_anneal_steps, self.env_steps)
        parts.update(self.behaviour.train(self.model, states,
                                          lambda features, action: beta * self.explorer.disagreement(features, action)))
        return parts

    # ------------------------------------------------------------------ persistence
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        explorer = {} if self.explorer is None else self.explorer.tensors()
        return {**self.behaviour.tensors(), **explorer}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.behaviour.load_tensors(tensors)
        if self.explorer is not None:
            self.explorer.load_tensors(tensors)
