"""The one training loop of the neural models: dynamics ensembles, the reward model and the
termination classifier all train through :func:`train_ensemble`.

All tensors here are already normalised (the models own their normalisers). One call:

1. splits the rows into training and validation parts (``val_fraction``, from the generator);
2. gives each member its own bootstrap resample of the training rows and, every epoch, its own
   shuffled minibatch order;
3. runs Adam on the sum of the members' losses (members share no parameters, so each member's
   gradient is that of its own loss), clipping each member's gradient norm separately;
4. after every epoch measures each member's validation loss and keeps each member's best weights;
5. stops after ``patience`` epochs in which no member improved, or at ``max_epochs``, or at the
   first non-finite loss (the fit has diverged: the report names the epoch and the members), and
   puts every member's best weights back.

What is minimised and validated is a :class:`TrainingLoss`: :class:`GaussianLoss` (negative
log-likelihood or MSE, validated by MSE) for regression, or any other per-member loss (the
termination classifier's class-balanced cross-entropy).
"""

from __future__ import annotations

import math

import torch

from forethought.data.buffer import bootstrap_indices
from forethought.models.base import FitReport
from forethought.models.config import TrainConfig
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.schedules import PlateauScale, lambda_scheduler
from forethought.progress import ProgressBar

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


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
    total = torch.zeros(network.ensemble_size, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        mean, _ = network(x[start:start + chunk])
        total += (mean - y[start:start + chunk]).pow(2).sum(dim=(1, 2)).double()
    return (total / (x.shape[0] * y.shape[1])).float()


class TrainingLoss:
    """What :func:`train_ensemble` minimises and what it validates with, per member."""

    def training(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Differentiable per-member loss ``[K]`` on a minibatch x ``[K, B, in]``, y ``[K, B, out]``."""
        raise NotImplementedError

    def validation(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member validation loss ``[K]`` on shared rows x ``[N, in]``, y ``[N, out]`` (lower is better)."""
        raise NotImplementedError


class GaussianLoss(TrainingLoss):
    """Regression: :func:`member_training_loss` to train, :func:`member_validation_mse` to validate."""

    def __init__(self, bound_penalty: float) -> None:
        self.bound_penalty = float(bound_penalty)

    def training(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return member_training_loss(network, x, y, self.bound_penalty)

    def validation(self, network: EnsembleDynamicsNetwork, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return member_validation_mse(network, x, y)


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
               y: torch.Tensor, loss: TrainingLoss, grad_clip: float | None) -> torch.Tensor:
    """One Adam step on minibatch x ``[K, B, in]``, y ``[K, B, out]``. Returns the detached
    per-member losses ``[K]``, NaN for a member whose gradient norm is not finite; when any entry
    is not finite no step is taken."""
    losses = loss.training(network, x, y)
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    losses = losses.detach()
    if grad_clip is not None:
        norms = clip_member_gradients(network, grad_clip)
        losses = torch.where(torch.isfinite(norms), losses, torch.full_like(losses, math.nan))
    if torch.isfinite(losses).all():
        optimizer.step()
    return losses


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


def _adam(network: EnsembleDynamicsNetwork, train: TrainConfig, lr_scale: float = 1.0) -> torch.optim.Adam:
    # weight decay on the weight matrices only: biases and log-std bounds are not shrunk
    decayed = [w for w in network.body.weights if w.requires_grad]
    others = [p for p in network.parameters() if p.requires_grad and all(p is not w for w in decayed)]
    return torch.optim.Adam([{"params": decayed, "weight_decay": train.weight_decay},
                             {"params": others, "weight_decay": 0.0}], lr=train.lr * lr_scale)


def epoch_rows(n: int, train: TrainConfig) -> int:
    """Rows each member visits per epoch when it has ``n`` training rows: ``n``, or
    ``train.min_epoch_batches`` full minibatches when one pass makes fewer minibatches than that."""
    return n if math.ceil(n / train.batch_size) >= train.min_epoch_batches else \
        train.min_epoch_batches * train.batch_size


def _scheduler(optimizer: torch.optim.Optimizer, n: int,
               train: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The within-fit schedule (``warmup_cosine``: over ``max_epochs`` epochs of ``n`` training
    rows), or None for the schedules that hold the rate fixed during a fit."""
    if train.lr_schedule != "warmup_cosine":
        return None
    total = train.max_epochs * math.ceil(epoch_rows(n, train) / train.batch_size)
    return lambda_scheduler(optimizer, train.warmup_steps, total, train.min_lr_fraction)


def _train_epoch(network: EnsembleDynamicsNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor, member_rows: torch.Tensor, train: TrainConfig, loss: TrainingLoss,
                 generator: torch.Generator, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
                 ) -> tuple[float | None, int, list[int]]:
    """One epoch: member k visits its rows ``member_rows[k]`` (``[K, n]``) in its own random order.
    When one pass makes fewer than ``train.min_epoch_batches`` minibatches, the epoch is instead
    that many full minibatches, drawn from as many freshly shuffled passes as they need.
    ``scheduler`` (if any) steps after every minibatch. Returns ``(mean training loss, batches,
    [])``, or ``(None, index of the bad batch, members whose loss was not finite)`` at the first
    non-finite loss."""
    k, n = member_rows.shape
    rows_per_epoch = epoch_rows(n, train)
    shuffled = torch.cat([member_rows.gather(1, torch.argsort(torch.rand(k, n, generator=generator, device=generator.device).to(member_rows.device), dim=1))
                          for _ in range(math.ceil(rows_per_epoch / n))], dim=1)[:, :rows_per_epoch]
    losses = []
    for batch, start in enumerate(range(0, rows_per_epoch, train.batch_size)):
        rows = shuffled[:, start:start + train.batch_size]
        member_losses = train_step(network, optimizer, x[rows], y[rows], loss, train.grad_clip)
        if scheduler is not None:
            scheduler.step()
        if not torch.isfinite(member_losses).all():
            return None, batch, (~torch.isfinite(member_losses)).nonzero()[:, 0].tolist()
        losses.append(member_losses.mean())
    return float(torch.stack(losses).mean()), len(losses), []


def train_ensemble(network: EnsembleDynamicsNetwork, inputs: torch.Tensor, targets: torch.Tensor,
                   train: TrainConfig, generator: torch.Generator, loss: TrainingLoss | None = None,
                   plateau: PlateauScale | None = None) -> FitReport:
    """Train ``network`` in place on normalised inputs ``[N, in]`` and targets ``[N, out]``,
    minimising ``loss`` (default :class:`GaussianLoss` with ``train.bound_penalty``).

    The learning rate follows ``train.lr_schedule``. For ``plateau``, ``plateau`` is the model's
    multiplier across fits: this fit trains at ``train.lr * plateau.scale`` and then records its
    mean member validation loss in it (without one, ``plateau`` trains at ``train.lr``).

    Returns a :class:`FitReport`: ``train_loss`` is the training loss (averaged over members and
    minibatches), ``val_loss`` the validation loss averaged over members, per epoch;
    ``member_val_loss`` each member's validation loss with the weights kept (its best epoch);
    ``best_epoch`` the index into ``val_loss`` of its minimum. Each member keeps the weights of its
    own best epoch (with ``train.early_stopping`` False: every row trains for ``max_epochs`` and
    the last weights are kept; validation figures are in-sample). On a non-finite loss training stops, every member's best weights so far (its
    starting weights if it has none) are restored, and ``nonfinite``, ``nonfinite_epoch`` and
    ``nonfinite_members`` say where it diverged.
    """
    loss = loss if loss is not None else GaussianLoss(train.bound_penalty)
    n, k = inputs.shape[0], network.ensemble_size
    if n < (2 if train.early_stopping else 1):
        raise ValueError(f"need at least 2 transitions to fit (one for training, one for validation), got {n}")
    if train.early_stopping:
        order = torch.randperm(n, generator=generator, device=generator.device).to(inputs.device)
        n_val = min(n - 1, max(1, int(round(train.val_fraction * n))))
        x_val, y_val = inputs[order[:n_val]], targets[order[:n_val]]
        x_train, y_train = inputs[order[n_val:]], targets[order[n_val:]]
    else:  # every row trains; the "validation" figures are in-sample
        n_val, x_train, y_train, x_val, y_val = 0, inputs, targets, inputs, targets
    if train.bootstrap and k > 1:
        member_rows = bootstrap_indices(n - n_val, k, generator).to(inputs.device)
    else:
        member_rows = torch.arange(n - n_val, device=inputs.device).expand(k, n - n_val)

    network.requires_grad_(True)
    _freeze(network, train.frozen_layers)
    plateau = plateau if train.lr_schedule == "plateau" else None
    optimizer = _adam(network, train, plateau.scale if plateau is not None else 1.0)
    scheduler, best, report = _scheduler(optimizer, n - n_val, train), _BestWeights(network), FitReport()
    with ProgressBar(train.progress, train.max_epochs, "fitting") as bar:
        try:
            _run_epochs(network, (optimizer, scheduler), best, report, (x_train, y_train, x_val, y_val), member_rows,
                        train, loss, generator, bar)
        finally:
            if train.early_stopping or report.nonfinite:
                best.restore()
            network.requires_grad_(False)
    if report.val_loss:
        report.best_epoch = min(range(len(report.val_loss)), key=report.val_loss.__getitem__)
    with torch.no_grad():
        report.member_val_loss = loss.validation(network, x_val, y_val).tolist()
    if plateau is not None and report.produced_model:
        plateau.update(sum(report.member_val_loss) / len(report.member_val_loss))
    return report


def _run_epochs(network: EnsembleDynamicsNetwork, optimizers: tuple, best: _BestWeights,
                report: FitReport, data: tuple[torch.Tensor, ...], member_rows: torch.Tensor, train: TrainConfig,
                loss: TrainingLoss, generator: torch.Generator, bar: ProgressBar) -> None:
    """The epoch loop: train, validate, keep each member's best weights, stop early or on a
    non-finite loss. ``data`` is ``(x_train, y_train, x_val, y_val)``, ``optimizers`` is
    ``(optimizer, scheduler or None)``."""
    x_train, y_train, x_val, y_val = data
    optimizer, scheduler = optimizers
    since_improvement = 0
    for epoch in range(train.max_epochs):
        train_loss, batches, bad = _train_epoch(network, optimizer, x_train, y_train, member_rows, train, loss,
                                                generator, scheduler)
        val = None
        if train_loss is not None:
            with torch.no_grad():
                val = loss.validation(network, x_val, y_val)
            bad = (~torch.isfinite(val)).nonzero()[:, 0].tolist()
        if bad:
            where = f"training loss (batch {batches})" if val is None else "validation loss"
            report.nonfinite, report.nonfinite_epoch, report.nonfinite_members = True, epoch, bad
            report.message = (f"non-finite {where} of member(s) {bad} at epoch {epoch}: the fit diverged; training "
                              "stopped and each member's best weights so far were restored")
            return
        report.train_loss.append(train_loss)
        report.val_loss.append(float(val.mean()))
        report.epochs = epoch + 1
        since_improvement = 0 if best.update(val) else since_improvement + 1
        bar.advance()
        bar.describe(f"fitting: train {train_loss:.4g}  val {report.val_loss[-1]:.4g}")
        if train.early_stopping and since_improvement >= train.patience:
            report.stopped_early = True
            report.message = f"stopped early after {report.epochs} epochs (no improvement for {train.patience})"
            return
