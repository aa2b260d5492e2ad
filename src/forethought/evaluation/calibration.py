"""Is the model's uncertainty honest? Interval coverage and disagreement-versus-error checks.

For a calibrated Gaussian prediction, 68.3 % of real next states fall within one predicted standard
deviation of the mean and 95.4 % within two. Lower coverage means the model is overconfident
(dangerous for planning); higher means it is needlessly vague. Separately, epistemic uncertainty
(ensemble disagreement) is only useful if it is large where the model is actually wrong, which
the rank correlation between disagreement and error measures, and if it grows away from the
training data, which :func:`disagreement_shift` measures.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from forethought.evaluation.prediction import held_out_tensors, predict_batched
from forethought.models.base import DynamicsModel

EXPECTED_1SIGMA = math.erf(1.0 / math.sqrt(2.0))  # 0.6827
EXPECTED_2SIGMA = math.erf(2.0 / math.sqrt(2.0))  # 0.9545


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks ``[N]`` (float64) of ``values [N]``; tied values share the mean of their ranks
    (e.g. ``[10, 20, 20, 30]`` -> ``[1, 2.5, 2.5, 4]``)."""
    if values.ndim != 1:
        raise ValueError(f"average_ranks expects a 1-D tensor, got shape {tuple(values.shape)}")
    _, group, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)
    last_rank = counts.cumsum(0).to(torch.float64)  # rank of the last member of each tie group
    return (last_rank - (counts.to(torch.float64) - 1) / 2)[group]


def spearman_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of ``x [N]`` and ``y [N]``: the Pearson correlation of their
    average ranks, in [-1, 1]. NaN when either input is constant (no ranking to compare)."""
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman_correlation expects two 1-D tensors of equal length, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = (rx.pow(2).sum() * ry.pow(2).sum()).sqrt()
    return float((rx * ry).sum() / denominator) if denominator > 0 else math.nan


def _disagreement(epistemic_var: torch.Tensor) -> torch.Tensor:
    """Per-row disagreement ``[N]``: epistemic standard deviation averaged over state dimensions."""
    return epistemic_var.clamp_min(0.0).sqrt().mean(dim=-1)


def calibration(model: DynamicsModel, data: Any, *, var_floor: float = 1e-12,
                batch_size: int = 4096) -> dict[str, Any]:
    """Coverage of the predicted intervals and usefulness of the disagreement on held-out data.

    Args:
        model: any fitted dynamics model.
        data: a :class:`ReplayBuffer`, a :class:`TransitionBatch`, or ``(obs [N, o], actions [N, a],
            next_obs [N, o])``.
        var_floor: added to the predicted total variance, so a zero variance covers only exact hits.
        batch_size: rows per ``predict`` call.

    Returns:
        ``n``; ``coverage_1sigma_per_dim`` / ``coverage_2sigma_per_dim`` (``o`` floats) and
        ``coverage_1sigma`` / ``coverage_2sigma`` (over all rows and dimensions): fraction of true
        next observations within 1 / 2 predicted standard deviations (total = aleatoric +
        epistemic) of the mean, to compare with ``expected_1sigma`` (0.683) and ``expected_2sigma``
        (0.954); ``None`` when the model predicts no variance.
        ``mean_disagreement``: mean epistemic standard deviation (averaged over dimensions, raw
        units) and ``spearman_disagreement_error``: rank correlation between each row's
        disagreement and its absolute error (mean over dimensions); ``None`` without epistemic
        variance. Averaging over dimensions lets the widest dimensions dominate both sides.
        ``spearman_epistemic_var_sq_error``: the same with each row's epistemic variance and
        squared error, each summed over dimensions (``None`` without epistemic variance).
    """
    obs, act, nxt = held_out_tensors(model, data)
    pred = predict_batched(model, obs, act, batch_size)
    abs_error = (pred.mean - nxt.to(torch.float64)).abs()
    result: dict[str, Any] = {"n": int(obs.shape[0]), "expected_1sigma": EXPECTED_1SIGMA,
                              "expected_2sigma": EXPECTED_2SIGMA}
    variance = pred.variance
    for k in (1, 2):
        inside = None if variance is None else (abs_error <= k * (variance + var_floor).sqrt()).to(torch.float64)
        result[f"coverage_{k}sigma_per_dim"] = None if inside is None else inside.mean(dim=0).tolist()
        result[f"coverage_{k}sigma"] = None if inside is None else float(inside.mean())
    if pred.epistemic_var is None:
        result["mean_disagreement"] = result["spearman_disagreement_error"] = None
        result["spearman_epistemic_var_sq_error"] = None
    else:
        disagreement = _disagreement(pred.epistemic_var)
        result["mean_disagreement"] = float(disagreement.mean())
        result["spearman_disagreement_error"] = spearman_correlation(disagreement, abs_error.mean(dim=-1))
        result["spearman_epistemic_var_sq_error"] = spearman_correlation(
            pred.epistemic_var.to(torch.float64).sum(dim=-1), abs_error.pow(2).sum(dim=-1))
    return result


def disagreement_shift(model: DynamicsModel, in_dist_obs: Any, in_dist_actions: Any, off_dist_obs: Any,
                       off_dist_actions: Any, *, batch_size: int = 4096) -> dict[str, float | None]:
    """Mean disagreement on inputs like the training data versus inputs far from it.

    Args:
        in_dist_obs ``[N, o]``, in_dist_actions ``[N, a]``: inputs from the training distribution.
        off_dist_obs ``[M, o]``, off_dist_actions ``[M, a]``: inputs the model has not seen.

    Returns:
        ``in_distribution`` and ``off_distribution`` (mean epistemic standard deviation, averaged
        over dimensions, raw units) and ``ratio`` = off / in (a useful uncertainty estimate gives a
        ratio well above 1; ``inf`` when in-distribution disagreement is exactly 0). All ``None``
        for a model without epistemic variance.
    """
    means = []
    for obs, actions in ((in_dist_obs, in_dist_actions), (off_dist_obs, off_dist_actions)):
        pred = predict_batched(model, torch.as_tensor(obs), torch.as_tensor(actions), batch_size)
        if pred.epistemic_var is None:
            return {"in_distribution": None, "off_distribution": None, "ratio": None}
        means.append(float(_disagreement(pred.epistemic_var).mean()))
    inside, outside = means
    ratio = outside / inside if inside > 0 else (math.inf if outside > 0 else math.nan)
    return {"in_distribution": inside, "off_distribution": outside, "ratio": ratio}
