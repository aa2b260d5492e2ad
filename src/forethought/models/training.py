"""Training loop for :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork`.

All tensors here are already normalised (the model owns the normalisers). One call of
:func:`train_ensemble`:

1. splits the rows into training and validation parts (``val_fraction``, from the generator);
2. gives each member its own bootstrap resample of the training rows and, every epoch, its own
   shuffled minibatch order;
3. runs Adam on the sum of the members' losses (members share no parameters, so each member's
   gradient is that of its own loss), clipping each member's gradient norm separately;
4. after every epoch measures each member's validation MSE and keeps each member's best weights;
5. stops after ``patience`` epochs in which no member improved, or at ``max_epochs``, or at the
   first non-finite loss, and puts every member's best weights back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from forethought.data.buffer import bootstrap_indices
from forethought.models.base import FitReport
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.progress import ProgressBar

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class TrainingOptions:
    """Hyper-parameters of :func:`train_ensemble` (defaults follow common PETS/MBPO practice).

    Attributes:
        learning_rate: Adam step size.
        weight_decay: L2 penalty on the weight matrices (not biases or log-std bounds), added to
            the gradients by Adam.
        batch_size: rows per member per minibatch.
        min_epoch_batches: when one pass over the training rows makes fewer minibatches than
            this, an epoch is this many full minibatches (from repeated shuffled passes), so that
            a small dataset (the first trials of PETS: a few dozen rows) still gets enough
            gradient steps between validations.
        max_epochs: upper bound on epochs.
        patience: stop after this many epochs without any member's validation loss improving.
        val_fraction: share of rows held out for validation (at least one row is).
        grad_clip: maximum gradient norm per member; ``None`` disables clipping.
        bound_penalty: weight of the log-std bound regulariser (probabilistic networks).
        bootstrap: give each member of an ensemble (K > 1) its own bootstrap resample.
        frozen_layers: the first this many weight layers (weights and biases) keep their values,
            for fine-tuning a trained network on a changed system; ``hidden_layers`` leaves only
            the output layer (and the log-std bounds) to train.
        progress: show a live progress bar (rich) while training.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    min_epoch_batches: int = 1
    max_epochs: int = 100
    patience: int = 10
    val_fraction: float = 0.1
    grad_clip: float | None = 10.0
    bound_penalty: float = 0.01
    bootstrap: bool = True
    frozen_layers: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        checks = {
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "batch_size": self.batch_size >= 1,
            "min_epoch_batches": self.min_epoch_batches >= 1,
            "max_epochs": self.max_epochs >= 1,
            "patience": self.patience >= 1,
            "val_fraction": 0.0 < self.val_fraction < 1.0,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "bound_penalty": self.bound_penalty >= 0,
            "frozen_layers": self.frozen_layers >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"training option {name}={getattr(self, name)!r} is out of range")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def member_training_loss(network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor,
                         bound_penalty: float) -> torch.Tensor:
    """Per-member training objective ``[K]`` for inputs ``[K, B, in]`` and targets ``[K, B, out]``:
    Gaussian negative log-likelihood plus the bound regulariser for a probabilistic network, MSE
    for a deterministic one (both averaged over rows and features)."""
    mean, log_std = network(x)
    if log_std is None:
        return (mean - y).pow(2).mean(dim=(1, 2))
    nll = 0.5 * ((y - mean) * torch.exp(-log_std)).pow(2) + log_std + _HALF_LOG_2PI
    return nll.mean(dim=(1, 2)) + bound_penalty * network.bound_penalty()


@torch.no_grad()
def member_validation_mse(network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor,
                          chunk: int = 8192) -> torch.Tensor:
    """Per-member MSE ``[K]`` of the predicted means on shared rows x ``[N, in]``, y ``[N, out]``."""
    total = torch.zeros(network.ensemble_size, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        mean, _ = network(x[start:start + chunk])
        total += (mean - y[start:start + chunk]).pow(2).sum(dim=(1, 2)).double()
    return (total / (x.shape[0] * y.shape[1])).float()


def clip_member_gradients(network: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Scale each member's gradient so its norm (over all its parameters) is at most ``max_norm``.
    Every parameter has the member axis first. Returns the norms before clipping, ``[K]``."""
    grads = [p.grad for p in network.parameters() if p.grad is not None]
    squares = sum(g.pow(2).flatten(1).sum(dim=1) for g in grads)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))
    return norms


def train_step(network: EnsembleDynamicsNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, options: TrainingOptions) -> torch.Tensor | None:
    """One Adam step on minibatch x ``[K, B, in]``, y ``[K, B, out]``. Returns the detached
    per-member losses ``[K]``, or ``None`` (without stepping) if a loss or gradient is non-finite."""
    losses = member_training_loss(network, x, y, options.bound_penalty)
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    if options.grad_clip is not None:
        norms = clip_member_gradients(network, options.grad_clip)
        if not torch.isfinite(norms).all():
            return None
    if not torch.isfinite(losses).all():
        return None
    optimizer.step()
    return losses.detach()


class _BestWeights:
    """Each member's lowest validation loss so far and a copy of its weights at that epoch."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network
        self.state = {name: p.detach().clone() for name, p in network.named_parameters()}
        self.loss: torch.Tensor | None = None

    def update(self, val: torch.Tensor) -> bool:
        """Record members whose validation loss ``val [K]`` beats their best; True if any did."""
        improved = val < self.loss if self.loss is not None else torch.ones_like(val, dtype=torch.bool)
        if improved.any():
            self.loss = val if self.loss is None else torch.where(improved, val, self.loss)
            for name, p in self.network.named_parameters():
                self.state[name][improved] = p.detach()[improved]
        return bool(improved.any())

    @torch.no_grad()
    def restore(self) -> None:
        """Put every member's best weights back (its starting weights if it never had a finite loss)."""
        for name, p in self.network.named_parameters():
            p.copy_(self.state[name])


def _freeze(network: EnsembleDynamicsNetwork, layers: int) -> None:
    """Stop gradients into the first ``layers`` weight layers of the body."""
    body = network.body
    if layers > len(body.weights) - 1:
        raise ValueError(f"frozen_layers={layers} would freeze the output layer too: the network has "
                         f"{len(body.weights)} weight layers, so at most {len(body.weights) - 1} can be frozen")
    for weight, bias in list(zip(body.weights, body.biases))[:layers]:
        weight.requires_grad_(False)
        bias.requires_grad_(False)


def _adam(network: EnsembleDynamicsNetwork, options: TrainingOptions) -> torch.optim.Adam:
    # weight decay on the weight matrices only: biases and log-std bounds are not shrunk
    decayed = [w for w in network.body.weights if w.requires_grad]
    others = [p for p in network.parameters() if p.requires_grad and all(p is not w for w in decayed)]
    return torch.optim.Adam([{"params": decayed, "weight_decay": options.weight_decay},
                             {"params": others, "weight_decay": 0.0}], lr=options.learning_rate)


def _train_epoch(network: EnsembleDynamicsNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor, member_rows: torch.Tensor, options: TrainingOptions,
                 generator: torch.Generator) -> tuple[float | None, int]:
    """One epoch: member k visits its rows ``member_rows[k]`` (``[K, n]``) in its own random order.
    When one pass makes fewer than ``options.min_epoch_batches`` minibatches, the epoch is instead
    that many full minibatches, drawn from as many freshly shuffled passes as they need.
    Returns ``(mean training loss, batches)``, or ``(None, index of the bad batch)`` at the first
    non-finite loss."""
    k, n = member_rows.shape
    epoch_rows = n if math.ceil(n / options.batch_size) >= options.min_epoch_batches else \
        options.min_epoch_batches * options.batch_size
    shuffled = torch.cat([member_rows.gather(1, torch.argsort(torch.rand(k, n, generator=generator), dim=1))
                          for _ in range(math.ceil(epoch_rows / n))], dim=1)[:, :epoch_rows]
    losses = []
    for batch, start in enumerate(range(0, epoch_rows, options.batch_size)):
        rows = shuffled[:, start:start + options.batch_size]
        member_losses = train_step(network, optimizer, x[rows], y[rows], options)
        if member_losses is None:
            return None, batch
        losses.append(member_losses.mean())
    return float(torch.stack(losses).mean()), len(losses)


def train_ensemble(network: EnsembleDynamicsNetwork, inputs: torch.Tensor, targets: torch.Tensor,
                   options: TrainingOptions, generator: torch.Generator) -> FitReport:
    """Train ``network`` in place on normalised inputs ``[N, in]`` and targets ``[N, out]``.

    Returns a :class:`FitReport`: ``train_loss`` is the training objective (averaged over members
    and minibatches), ``val_loss`` the validation MSE averaged over members, per epoch;
    ``member_val_loss`` each member's validation MSE with the weights kept (its best epoch);
    ``best_epoch`` the index into ``val_loss`` of its minimum. Each member keeps the weights of its
    own best epoch. On a non-finite loss training stops, every member's best weights so far (its
    initial weights if it has none) are restored, and ``nonfinite`` is set.
    """
    n, k = inputs.shape[0], network.ensemble_size
    if n < 2:
        raise ValueError(f"need at least 2 transitions to fit (one for training, one for validation), got {n}")
    order = torch.randperm(n, generator=generator)
    n_val = min(n - 1, max(1, int(round(options.val_fraction * n))))
    x_val, y_val = inputs[order[:n_val]], targets[order[:n_val]]
    x_train, y_train = inputs[order[n_val:]], targets[order[n_val:]]
    if options.bootstrap and k > 1:
        member_rows = bootstrap_indices(n - n_val, k, generator)
    else:
        member_rows = torch.arange(n - n_val).expand(k, n - n_val)

    network.requires_grad_(True)
    _freeze(network, options.frozen_layers)
    optimizer, best, report = _adam(network, options), _BestWeights(network), FitReport()
    with ProgressBar(options.progress, options.max_epochs, "fitting") as bar:
        try:
            _run_epochs(network, optimizer, best, report, x_train, y_train, x_val, y_val, member_rows, options,
                        generator, bar)
        finally:
            best.restore()
            network.requires_grad_(False)
    if report.val_loss:
        report.best_epoch = min(range(len(report.val_loss)), key=report.val_loss.__getitem__)
    report.member_val_loss = member_validation_mse(network, x_val, y_val).tolist()
    return report


def _run_epochs(network, optimizer, best, report: FitReport, x_train, y_train, x_val, y_val, member_rows,
                options: TrainingOptions, generator: torch.Generator, bar: ProgressBar) -> None:
    """The epoch loop: train, validate, keep each member's best weights, stop early or on non-finite loss."""
    since_improvement = 0
    for epoch in range(options.max_epochs):
        train_loss, batches = _train_epoch(network, optimizer, x_train, y_train, member_rows, options, generator)
        val = member_validation_mse(network, x_val, y_val) if train_loss is not None else None
        if val is None or not torch.isfinite(val).all():
            where = f"training loss (batch {batches})" if val is None else "validation loss"
            report.nonfinite = True
            report.message = (f"non-finite {where} at epoch {epoch}; training stopped and each member's "
                              "best weights so far were restored")
            return
        report.train_loss.append(train_loss)
        report.val_loss.append(float(val.mean()))
        report.epochs = epoch + 1
        since_improvement = 0 if best.update(val) else since_improvement + 1
        bar.advance()
        bar.describe(f"fitting: train {train_loss:.4g}  val {report.val_loss[-1]:.4g}")
        if since_improvement >= options.patience:
            report.stopped_early = True
            report.message = f"stopped early after {report.epochs} epochs (no improvement for {options.patience})"
            return
