"""Plan2Explore's disagreement reward for a latent agent (Sekar et al., 2020): an ensemble of
one-step predictors in the world model's latent space, whose disagreement about where an imagined
step leads is an intrinsic reward.

Each of the ``K`` heads predicts the next posterior stochastic state ``stoch_{t+1}`` from the
features of state ``t`` and the action that followed, trained by mean squared error on the
posterior states of every world-model batch (pairs across an episode start are left out). Where
the data has been, the heads agree; where it has not, they disagree, and

    disagreement(features, action) = mean over dims d of (std over heads of their predictions_d) / scale_d

is what an imagined step earns on top of the predicted reward, times ``exploration_bonus``.
``scale_d`` is the typical size of the target ``stoch_{t+1, d}``: its standard deviation in the
training batches, averaged over updates (rate ``scale_decay``). The spread is then in the same
units as the planners' (``planning.exploration``): heads that know nothing of a step spread about
as widely as the targets, a disagreement near 1, so ``exploration_bonus = 1`` makes such a step
worth about one unit of reward, whatever the size of the latent space.

    heads = DisagreementHeads(feature_dim, action_dim, stoch_dim, heads=5, seed=0)
    heads.train(states, batch.action, batch.is_first)       # posterior states [B, L, ...]
    bonus = heads.disagreement(features, actions)            # [N]
"""

from __future__ import annotations

import torch

from forethought.models.ensemble_mlp import EnsembleMLP
from forethought.models.rssm import LatentState
from forethought.seeding import derive_seed
from forethought.serialization import CheckpointError, load_module_tensors, module_tensors

__all__ = ["DisagreementHeads"]


class DisagreementHeads:
    """``heads`` MLPs (two hidden layers of ``hidden`` units) ``[features, action] -> stoch``, Adam
    at ``lr``; initial weights from the ``"disagreement"`` stream of ``seed``, on ``device``. The
    targets' scale starts at the first batch's standard deviation and then moves by
    ``scale_decay`` per update (1 in every dimension before any update)."""

    def __init__(self, feature_dim: int, action_dim: int, stoch_dim: int, heads: int = 5, hidden: int = 200,
                 lr: float = 3e-4, seed: int = 0, device: torch.device | str = "cpu",
                 scale_decay: float = 0.99) -> None:
        if heads < 2:
            raise ValueError(f"disagreement needs at least 2 heads, got {heads}")
        init = torch.Generator().manual_seed(derive_seed(seed, "disagreement"))
        self.net = EnsembleMLP(feature_dim + action_dim, stoch_dim, heads, hidden, hidden_layers=2,
                               generator=init).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, eps=1e-5)
        self.scale_decay = scale_decay
        self.target_scale = torch.ones(stoch_dim, device=device)  # [stoch]
        self.updates = 0

    def train(self, states: LatentState, action: torch.Tensor, is_first: torch.Tensor) -> dict[str, float]:
        """One update on posterior ``states`` ``[B, L, ...]``, ``action`` ``[B, L, a]`` (the action
        that led to each frame) and ``is_first`` ``[B, L]``; returns ``disagreement_loss``."""
        device = self.net.weights[0].device
        features, stoch = states.features.detach(), states.stoch.detach()
        inputs = torch.cat([features[:, :-1], action[:, 1:].to(device)], -1).reshape(-1, self.net.in_dim)
        target = stoch[:, 1:].reshape(-1, stoch.shape[-1])
        keep = (~is_first[:, 1:].to(device)).reshape(-1).to(inputs.dtype)
        error = (self.net(inputs) - target).pow(2).mean(-1)  # [K, N]
        loss = (error * keep).sum() / (keep.sum().clamp(min=1.0) * self.net.ensemble_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        kept = target[keep > 0]
        if kept.shape[0] > 1:
            batch_scale = kept.std(0, unbiased=False).clamp(min=1e-6)
            rate = 0.0 if self.updates == 0 else self.scale_decay
            self.target_scale = rate * self.target_scale + (1 - rate) * batch_scale
            self.updates += 1
        return {"disagreement_loss": loss.item()}

    def disagreement(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The heads' disagreement ``[...]`` about the step from ``features`` ``[..., F]`` under
        ``action`` ``[..., a]``; differentiable w.r.t. both (not w.r.t. the heads' weights)."""
        lead = features.shape[:-1]
        inputs = torch.cat([features, action], -1).reshape(-1, self.net.in_dim)
        self.net.requires_grad_(False)
        try:
            predictions = self.net(inputs)
        finally:
            self.net.requires_grad_(True)
        # sqrt(var + tiny) rather than std: finite gradients where the heads agree exactly
        spread = (predictions.var(dim=0, unbiased=False) + 1e-12).sqrt() / self.target_scale  # [N, stoch]
        return spread.mean(-1).reshape(lead)

    def tensors(self, prefix: str = "disagreement") -> dict[str, torch.Tensor]:
        """Weights, optimiser moments and the targets' scale, by name."""
        return {**module_tensors(prefix, self.net, self.optimizer), f"{prefix}.target_scale": self.target_scale,
                f"{prefix}.updates": torch.tensor(self.updates)}

    def load_tensors(self, tensors: dict[str, torch.Tensor], prefix: str = "disagreement") -> None:
        load_module_tensors(prefix, tensors, self.net, self.optimizer)
        scale = tensors.get(f"{prefix}.target_scale")
        if scale is None or scale.shape != self.target_scale.shape or f"{prefix}.updates" not in tensors:
            raise CheckpointError(f"the disagreement heads' checkpoint has no {prefix}.target_scale of shape "
                                  f"{tuple(self.target_scale.shape)} and {prefix}.updates (saved by another version)")
        self.target_scale = scale.to(self.target_scale.device)
        self.updates = int(tensors[f"{prefix}.updates"])
