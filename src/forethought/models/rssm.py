"""Recurrent state-space model: the latent dynamics of a world model learned from pixels.

The latent state is a deterministic recurrent part ``h_t`` and a stochastic part ``z_t``:

    h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])
    prior      p(z_t | h_t)                    (imagination: no observation)
    posterior  q(z_t | h_t, e_t)               (filtering: ``e_t`` the image embedding)

``z`` is Gaussian (``classes == 0``: ``stoch`` dimensions, mean and std with a floor) or
categorical (``classes > 0``: ``stoch`` groups of ``classes`` one-hot classes, sampled with
straight-through gradients and mixed 1 % with uniform so no class has probability zero).
Distribution parameters travel as one tensor ``stats``: ``[B, 2 * stoch]`` (mean, std) for the
Gaussian, ``[B, stoch * classes]`` logits for the categorical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LatentState:
    """``deter`` ``[B, deter_size]`` and ``stoch`` ``[B, stoch_dim]`` (one-hot groups flattened)."""

    deter: torch.Tensor
    stoch: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        """``[B, deter_size + stoch_dim]``: what the heads, the actor and the critic read."""
        return torch.cat([self.deter, self.stoch], dim=-1)

    def detach(self) -> "LatentState":
        return LatentState(self.deter.detach(), self.stoch.detach())

    def reshape(self, *shape: int) -> "LatentState":
        """Reshape the leading (batch) dimensions, keeping the feature dimension."""
        return LatentState(self.deter.reshape(*shape, self.deter.shape[-1]), self.stoch.reshape(*shape, self.stoch.shape[-1]))

    def repeat(self, count: int) -> "LatentState":
        """Each of the ``B`` states ``count`` times in a row: ``[B * count, ...]``."""
        return LatentState(self.deter.repeat_interleave(count, 0), self.stoch.repeat_interleave(count, 0))

    @staticmethod
    def stack(states: list["LatentState"], dim: int = 1) -> "LatentState":
        return LatentState(torch.stack([s.deter for s in states], dim), torch.stack([s.stoch for s in states], dim))


class RSSM(nn.Module):
    """GRU core with prior and posterior heads; every method is batched over ``B`` rows."""

    def __init__(self, action_dim: int, embed_dim: int, deter_size: int = 200, stoch: int = 30,
                 classes: int = 0, hidden_size: int = 200, min_std: float = 0.1, unimix: float = 0.01) -> None:
        super().__init__()
        if min(action_dim, embed_dim, deter_size, stoch, hidden_size) < 1 or classes < 0 or classes == 1:
            raise ValueError(f"RSSM sizes must be >= 1 and classes 0 (Gaussian) or >= 2, got action_dim={action_dim}, "
                             f"embed_dim={embed_dim}, deter_size={deter_size}, stoch={stoch}, classes={classes}, "
                             f"hidden_size={hidden_size}")
        self.deter_size, self.stoch, self.classes = deter_size, stoch, classes
        self.min_std, self.unimix = min_std, unimix
        self.stoch_dim = stoch * classes if classes else stoch
        stats_dim = stoch * classes if classes else 2 * stoch
        self.input_layer = nn.Sequential(nn.Linear(self.stoch_dim + action_dim, hidden_size), nn.ELU())
        self.gru = nn.GRUCell(hidden_size, deter_size)
        self.prior_net = nn.Sequential(nn.Linear(deter_size, hidden_size), nn.ELU(), nn.Linear(hidden_size, stats_dim))
        self.posterior_net = nn.Sequential(nn.Linear(deter_size + embed_dim, hidden_size), nn.ELU(),
                                           nn.Linear(hidden_size, stats_dim))

    @property
    def feature_dim(self) -> int:
        return self.deter_size + self.stoch_dim

    def initial(self, batch: int) -> LatentState:
        """The all-zero state every episode starts from."""
        weight = self.gru.weight_hh
        return LatentState(weight.new_zeros(batch, self.deter_size), weight.new_zeros(batch, self.stoch_dim))

    # ------------------------------------------------------------------ distributions
    def _stats(self, raw: torch.Tensor) -> torch.Tensor:
        if self.classes:
            return raw
        mean, std = raw.chunk(2, dim=-1)
        return torch.cat([mean, F.softplus(std) + self.min_std], dim=-1)

    def _probs(self, stats: torch.Tensor) -> torch.Tensor:
        probs = stats.reshape(*stats.shape[:-1], self.stoch, self.classes).softmax(-1)
        return (1 - self.unimix) * probs + self.unimix / self.classes

    def sample(self, stats: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A reparameterised draw of ``z`` ``[B, stoch_dim]`` (straight-through for categorical)."""
        if self.classes:
            probs = self._probs(stats)
            index = torch.multinomial(probs.reshape(-1, self.classes), 1, generator=generator)
            one_hot = F.one_hot(index.squeeze(-1), self.classes).to(probs.dtype).reshape(probs.shape)
            return (one_hot + probs - probs.detach()).flatten(-2)
        mean, std = stats.chunk(2, dim=-1)
        return mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)

    def mode(self, stats: torch.Tensor) -> torch.Tensor:
        """The most likely ``z``: the mean, or each group's most probable class."""
        if self.classes:
            probs = self._probs(stats)
            return F.one_hot(probs.argmax(-1), self.classes).to(probs.dtype).flatten(-2)
        return stats.chunk(2, dim=-1)[0]

    def kl(self, posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """``KL(posterior || prior)`` in nats per row, summed over ``z``'s dimensions: ``[...]``."""
        if self.classes:
            q, p = self._probs(posterior), self._probs(prior)
            return (q * (q.log() - p.log())).sum((-2, -1))
        q_mean, q_std = posterior.chunk(2, dim=-1)
        p_mean, p_std = prior.chunk(2, dim=-1)
        ratio = (q_std / p_std) ** 2
        return 0.5 * (ratio + ((q_mean - p_mean) / p_std) ** 2 - 1 - ratio.log()).sum(-1)

    # ------------------------------------------------------------------ one step
    def img_step(self, state: LatentState, action: torch.Tensor, generator: torch.Generator | None,
                 sample: bool = True) -> tuple[LatentState, torch.Tensor]:
        """One step without an observation: ``(next state drawn from the prior, prior stats)``.
        ``action`` ``[B, action_dim]``."""
        deter = self.gru(self.input_layer(torch.cat([state.stoch, action], dim=-1)), state.deter)
        prior = self._stats(self.prior_net(deter))
        stoch = self.sample(prior, generator) if sample else self.mode(prior)
        return LatentState(deter, stoch), prior

    def obs_step(self, state: LatentState, action: torch.Tensor, embed: torch.Tensor,
                 generator: torch.Generator | None) -> tuple[LatentState, torch.Tensor, torch.Tensor]:
        """One filtering step: ``(state with z drawn from the posterior, posterior stats, prior stats)``.
        ``embed`` ``[B, embed_dim]`` is the new observation's embedding."""
        deter = self.gru(self.input_layer(torch.cat([state.stoch, action], dim=-1)), state.deter)
        prior = self._stats(self.prior_net(deter))
        posterior = self._stats(self.posterior_net(torch.cat([deter, embed], dim=-1)))
        return LatentState(deter, self.sample(posterior, generator)), posterior, prior
