"""A latent world model learned from pixels: encoder, RSSM, decoder, reward and continue heads.

    model = LatentWorldModel(LatentModelConfig(), action_dim=1)
    metrics = model.train_step(buffer.sample(16, 32, g))        # one Adam step on a sequence batch
    states, post, prior = model.observe(batch.obs, batch.action, batch.is_first)   # filter: [B, L, ...]
    future = model.imagine(states_at_t, actions)                  # roll forward: [N, H, ...]
    model.save("ckpt/world_model"); LatentWorldModel.load("ckpt/world_model")

Loss per sequence batch (averaged over batch and time): image reconstruction ``0.5 * sum of
squared pixel errors`` (the negative log-likelihood of a unit-variance Gaussian, up to a constant),
reward ``0.5 * squared error`` (of standardised rewards by default; ``reward_mse`` is reported
in the environment's units), continue binary cross-entropy, and the balanced KL with free bits:

    kl_scale * (balance * max(free_nats, KL(sg(q) || p)) + (1 - balance) * max(free_nats, KL(q || sg(p))))

so the prior is pulled toward the posterior faster than the posterior toward the prior; when the
two are equal the KL term is exactly ``kl_scale * free_nats``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from forethought.data.sequences import SequenceBatch
from forethought.models.rssm import RSSM, LatentState
from forethought.models.vision import ConvDecoder, ConvEncoder, preprocess
from forethought.seeding import set_state
from forethought.serialization import CheckpointError, load_checkpoint, load_module_tensors, module_tensors, save_checkpoint

Policy = Callable[[torch.Tensor], torch.Tensor]
"""Maps latent features ``[N, feature_dim]`` to actions ``[N, action_dim]``."""


@dataclass
class LatentModelConfig:
    """Sizes and loss weights of :class:`LatentWorldModel` (defaults after PlaNet/Dreamer, with the
    convolution ``depth`` the main lever on CPU cost: it scales conv FLOPs quadratically).

    ``normalize_rewards``: the reward head regresses rewards standardised by a running mean and
    standard deviation of the training batches (EMA, decay 0.99), so tasks whose rewards sit far
    from zero (Pendulum: around -20 per step with an action repeat of 2) are learned as fast as
    those in ``[0, 1]`` with full resolution; :meth:`LatentWorldModel.reward` returns rewards in
    the environment's units either way.
    """

    image_size: int = 64
    depth: int = 32
    deter_size: int = 200
    stoch: int = 30
    classes: int = 0
    hidden_size: int = 200
    min_std: float = 0.1
    free_nats: float = 1.0
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    reward_scale: float = 1.0
    normalize_rewards: bool = True
    continue_scale: float = 1.0
    learning_rate: float = 6e-4
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"kl_balance must be in [0, 1], got {self.kl_balance}")
        for name in ("free_nats", "kl_scale", "reward_scale", "continue_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and self.grad_clip > 0 and self.min_std > 0):
            raise ValueError("learning_rate, grad_clip and min_std must be > 0")


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def mlp_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, out_dim))


def balanced_kl_loss(rssm: RSSM, posterior: torch.Tensor, prior: torch.Tensor, free_nats: float,
                     balance: float) -> torch.Tensor:
    """The KL term per row ``[...]``: each direction's stop-gradient KL floored at ``free_nats``."""
    to_prior = rssm.kl(posterior.detach(), prior).clamp(min=free_nats)
    to_posterior = rssm.kl(posterior, prior.detach()).clamp(min=free_nats)
    return balance * to_prior + (1.0 - balance) * to_posterior


class LatentWorldModel(nn.Module):
    """Encoder + RSSM + decoder + reward head + continue head, trained together with one Adam;
    ``seed`` seeds the initial weights (drawn on the CPU, so every device starts from the same
    ones) and the sampling generator, on ``device`` with the weights. Batches are moved there."""

    def __init__(self, config: LatentModelConfig, action_dim: int, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.config, self.action_dim = config, int(action_dim)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left as it was
            torch.manual_seed(seed)
            self.encoder = ConvEncoder(config.image_size, config.depth)
            self.rssm = RSSM(action_dim, self.encoder.embed_dim, config.deter_size, config.stoch, config.classes,
                             config.hidden_size, config.min_std)
            features = self.rssm.feature_dim
            self.decoder = ConvDecoder(features, config.image_size, config.depth)
            self.reward_head = mlp_head(features, config.hidden_size, 1)
            self.continue_head = mlp_head(features, config.hidden_size, 1)
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))
        self.register_buffer("reward_statistics_set", torch.zeros((), dtype=torch.bool))
        self.to(device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.updates = 0

    @property
    def feature_dim(self) -> int:
        return self.rssm.feature_dim

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.reward_mean.device

    # ------------------------------------------------------------------ filtering and imagination
    def _check_sequences(self, obs: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor) -> None:
        size = self.config.image_size
        if obs.ndim != 5 or obs.shape[2:] != (3, size, size) or obs.dtype != torch.uint8:
            raise ValueError(f"obs must be uint8 [B, L, 3, {size}, {size}], got {obs.dtype} {tuple(obs.shape)}")
        if action.shape != (*obs.shape[:2], self.action_dim):
            raise ValueError(f"action must be [B, L, {self.action_dim}] matching obs, got {tuple(action.shape)}")
        if is_first.shape != obs.shape[:2]:
            raise ValueError(f"is_first must be [B, L] matching obs, got {tuple(is_first.shape)}")

    def observe(self, obs: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: LatentState | None = None) -> tuple[LatentState, torch.Tensor, torch.Tensor]:
        """Filter sequences: ``obs`` uint8 ``[B, L, 3, S, S]``, ``action`` ``[B, L, a]`` (the action
        that led to each frame), ``is_first`` ``[B, L]`` (resets the state to zero there).
        Returns posterior states ``[B, L, ...]`` and posterior and prior stats ``[B, L, stats]``."""
        self._check_sequences(obs, action, is_first)
        embeds = self.encoder(preprocess(obs))
        state = self.rssm.initial(obs.shape[0]) if state is None else state
        states, posteriors, priors = [], [], []
        for t in range(obs.shape[1]):
            keep = (~is_first[:, t]).to(embeds.dtype)[:, None]
            state = LatentState(state.deter * keep, state.stoch * keep)
            state, posterior, prior = self.rssm.obs_step(state, action[:, t] * keep, embeds[:, t], self.generator)
            states.append(state), posteriors.append(posterior), priors.append(prior)
        return LatentState.stack(states), torch.stack(posteriors, 1), torch.stack(priors, 1)

    def observe_step(self, state: LatentState | None, action: torch.Tensor, obs: torch.Tensor) -> LatentState:
        """Filter one new frame (acting): ``obs`` uint8 ``[B, 3, S, S]``, ``action`` ``[B, a]`` the
        action that led to it; ``state`` None at an episode's first frame."""
        embed = self.encoder(preprocess(obs))
        if state is None:
            state, action = self.rssm.initial(obs.shape[0]), torch.zeros_like(action)
        return self.rssm.obs_step(state, action, embed, self.generator)[0]

    def imagine(self, start: LatentState, horizon: int, actions: torch.Tensor | None = None,
                policy: Policy | None = None, generator: torch.Generator | None = None,
                sample: bool = True) -> tuple[LatentState, torch.Tensor]:
        """Roll ``horizon`` steps from ``start`` (``[N, ...]``) under ``actions`` ``[N, H, a]`` or a
        ``policy`` of the features. Returns the states after each step ``[N, H, ...]`` and the actions
        taken ``[N, H, a]``. Randomness only from ``generator`` (the model's own when None)."""
        if (actions is None) == (policy is None):
            raise ValueError("imagine needs exactly one of actions [N, H, a] or a policy")
        if actions is not None and (actions.ndim != 3 or actions.shape[1] < horizon or actions.shape[2] != self.action_dim):
            raise ValueError(f"actions must be [N, >= {horizon}, {self.action_dim}], got {tuple(actions.shape)}")
        generator = self.generator if generator is None else generator
        state, states, taken = start, [], []
        for t in range(horizon):
            action = actions[:, t] if actions is not None else policy(state.features)
            state, _ = self.rssm.img_step(state, action, generator, sample=sample)
            states.append(state), taken.append(action)
        return LatentState.stack(states), torch.stack(taken, 1)

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted reward of arriving at each state (environment units): ``[..., feature_dim]`` -> ``[...]``."""
        return self.reward_head(features).squeeze(-1) * self.reward_std + self.reward_mean

    def continue_probability(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted probability that the episode goes on after each state: ``[...]``."""
        return torch.sigmoid(self.continue_head(features).squeeze(-1))

    # ------------------------------------------------------------------ training
    def loss(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float], LatentState]:
        """Total loss, its parts as floats, and the posterior states ``[B, L, ...]``."""
        c, batch = self.config, batch.to(self.device)
        states, posterior, prior = self.observe(batch.obs, batch.action, batch.is_first)
        features = states.features
        target = preprocess(batch.obs)
        reconstruction = 0.5 * (self.decoder(features) - target).pow(2).sum((-3, -2, -1)).mean()
        not_first = (~batch.is_first).float()
        rows = not_first.sum().clamp(min=1)
        if c.normalize_rewards:
            self._update_reward_statistics(batch.reward, not_first)
        raw = self.reward_head(features).squeeze(-1)
        target_reward = (batch.reward - self.reward_mean) / self.reward_std
        reward_error = 0.5 * ((raw - target_reward).pow(2) * not_first).sum() / rows
        continue_loss = F.binary_cross_entropy_with_logits(self.continue_head(features).squeeze(-1),
                                                           (~batch.is_terminal).float())
        kl_term = balanced_kl_loss(self.rssm, posterior, prior, c.free_nats, c.kl_balance).mean()
        total = reconstruction + c.reward_scale * reward_error + c.continue_scale * continue_loss + c.kl_scale * kl_term
        with torch.no_grad():
            kl_value = self.rssm.kl(posterior, prior).mean()
            predicted = raw * self.reward_std + self.reward_mean
            reward_mse = ((predicted - batch.reward).pow(2) * not_first).sum() / rows
        parts = {"loss": total.item(), "reconstruction": reconstruction.item(), "reward_mse": reward_mse.item(),
                 "continue_bce": continue_loss.item(), "kl": kl_value.item()}
        return total, parts, states

    @torch.no_grad()
    def _update_reward_statistics(self, reward: torch.Tensor, weight: torch.Tensor) -> None:
        """EMA of the mean and std of the rewards in ``reward`` where ``weight`` is 1 (the first
        batch sets them); the std is floored at 1e-3 so constant rewards stay finite."""
        count = weight.sum().clamp(min=1)
        mean = (reward * weight).sum() / count
        std = (((reward - mean) ** 2 * weight).sum() / count).sqrt().clamp(min=1e-3)
        decay = 0.99 if self.reward_statistics_set else 0.0
        self.reward_mean.mul_(decay).add_((1 - decay) * mean)
        self.reward_std.mul_(decay).add_((1 - decay) * std)
        self.reward_statistics_set.fill_(True)

    def train_step(self, batch: SequenceBatch) -> tuple[dict[str, float], LatentState]:
        """One Adam step with gradient-norm clipping; returns the loss parts and the (detached)
        posterior states, the start states Dreamer imagines from."""
        total, parts, states = self.loss(batch)
        if not torch.isfinite(total):
            raise FloatingPointError(f"world-model loss is not finite ({parts}); lower learning_rate or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        parts["grad_norm"] = float(nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip))
        self.optimizer.step()
        self.updates += 1
        return parts, states.detach()

    # ------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def open_loop(self, batch: SequenceBatch, context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Observe the first ``context`` frames, then imagine the rest under the recorded actions
        (prior means, no sampling). Returns predicted frames uint8 ``[B, L, 3, S, S]`` (the first
        ``context`` reconstructed, the rest imagined) and predicted rewards ``[B, L]``."""
        length, batch = batch.obs.shape[1], batch.to(self.device)
        if not 1 <= context < length:
            raise ValueError(f"context must be in [1, {length - 1}] for sequences of {length} frames, got {context}")
        states, _, _ = self.observe(batch.obs[:, :context], batch.action[:, :context], batch.is_first[:, :context])
        last = LatentState(states.deter[:, -1], states.stoch[:, -1])
        future, _ = self.imagine(last, length - context, actions=batch.action[:, context:], sample=False)
        features = torch.cat([states.features, future.features], 1)
        frames = ((self.decoder(features) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return frames, self.reward(features)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Weights, optimiser moments and config as a safetensors + JSON checkpoint (atomic)."""
        tensors = module_tensors("model", self, self.optimizer)
        save_checkpoint(path, tensors, {"kind": "latent-world-model", "config": asdict(self.config),
                                        "action_dim": self.action_dim, "updates": self.updates,
                                        "generator": self.generator.get_state().tolist()})

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "LatentWorldModel":
        """The model :meth:`save` wrote, on ``device`` (its generator's state loads only on the
        kind of device it was saved on)."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "latent-world-model":
            raise CheckpointError(f"{path} is not a latent world model checkpoint (kind={meta.get('kind')!r})")
        model = cls(LatentModelConfig(**meta["config"]), meta["action_dim"], device=device)
        load_module_tensors("model", tensors, model, model.optimizer)
        model.updates = meta["updates"]
        set_state(model.generator, torch.tensor(meta["generator"], dtype=torch.uint8), f"{path}: generator")
        return model
