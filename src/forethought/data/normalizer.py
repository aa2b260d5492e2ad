"""Per-feature standardisation used inside models (callers always see raw values)."""

from __future__ import annotations

import torch


class Normalizer:
    """Standardises ``[..., dim]`` tensors with a mean and std fitted on data.

    Features with (near-)zero spread keep a std of 1 so they pass through unscaled instead of
    exploding.
    """

    def __init__(self, dim: int, min_std: float = 1e-6) -> None:
        self.dim, self.min_std = dim, min_std
        self.mean = torch.zeros(dim)
        self.std = torch.ones(dim)

    def fit(self, data: torch.Tensor) -> "Normalizer":
        """Fit mean and std on ``data`` of shape ``[N, dim]``."""
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"Normalizer expects data of shape (N, {self.dim}), got {tuple(data.shape)}")
        data = data.to(torch.float64)
        std = data.std(dim=0, unbiased=False) if data.shape[0] > 1 else torch.ones_like(data[0])
        self.mean = data.mean(dim=0).float()
        self.std = torch.where(std < self.min_std, torch.ones_like(std), std).float()
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x) + self.mean.to(x)

    def to(self, device: torch.device | str) -> "Normalizer":
        """Move the statistics to ``device``; returns itself."""
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def state_dict(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.mean": self.mean.clone(), f"{prefix}.std": self.std.clone()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        device = self.mean.device  # loading keeps the statistics where they were
        self.mean = tensors[f"{prefix}.mean"].float().to(device)
        self.std = tensors[f"{prefix}.std"].float().to(device)
