"""How particles move through an ensemble: member predictions and member-to-particle assignment.

A rollout of ``R`` particle rows through ``E`` ensemble members is one batched call per step on
an ``[E, B, dim]`` block, member ``e`` predicting for row block ``e``. The helpers here build that
call and decide which particle row lands in which block:

* :func:`member_predictor` wraps a model's elite members as one function
  ``(obs [E, B, o], action [E, B, a]) -> (means [E, B, o], stds [E, B, o] or None)``;
* :func:`shuffled_slots` (TS1) and :func:`fixed_slots` (TS-infinity) give the ``order`` of rows:
  slot ``s`` of the flattened ``[E * B]`` block holds row ``order[s]`` and belongs to member
  ``s // B``. ``E * B`` may exceed the number of real rows; the extra rows are padding.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

MemberFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]

PROPAGATIONS = ("ts1", "tsinf", "expectation", "all-members")


class MemberPredictor:
    """The elite members of an ensemble as one batched function.

    Calling it on obs ``[E, B, o]`` and action ``[E, B, a]`` (member ``e`` reads block ``e``; raw
    units) returns ``(means [E, B, o], stds [E, B, o] or None)``: each elite's predicted next
    observation and, for probabilistic members, its predicted aleatoric standard deviation.

    Attributes:
        members: the model's member index of each elite, ``len == E``.
        probabilistic: whether ``stds`` is returned.
    """

    def __init__(self, members: list[int], probabilistic: bool, fn: MemberFn) -> None:
        self.members, self.probabilistic, self._fn = list(members), bool(probabilistic), fn

    @property
    def size(self) -> int:
        return len(self.members)

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._fn(obs, action)


def member_predictor(model: Any, cache: dict | None = None) -> MemberPredictor | None:
    """A :class:`MemberPredictor` over ``model``'s elites, or ``None`` for a model without members.

    A model has members when it has ``predict_members`` and ``ensemble_size > 1`` (a one-member
    ensemble is treated as a single model). Its elites are ``model.elites`` when present, else all
    members. For :class:`~forethought.models.neural.MLPDynamics` the elites' weights are gathered
    into one smaller network, so non-elite members cost nothing; ``cache`` (a dict the caller
    keeps between calls) holds that network so it is built once and only refreshed afterwards.
    Other models are called through ``predict_members`` on ``[K, B, o]`` blocks, the non-elite
    blocks being copies whose predictions are discarded.
    """
    if not hasattr(model, "predict_members") or int(getattr(model, "ensemble_size", 1)) <= 1:
        return None
    size = int(model.ensemble_size)
    elites = sorted(int(k) for k in getattr(model, "elites", range(size)))
    from forethought.models.neural import MLPDynamics  # planning sits after models on the data's path

    if isinstance(model, MLPDynamics):
        return MemberPredictor(elites, model.probabilistic, _elite_network_fn(model, elites, cache))
    return MemberPredictor(elites, bool(getattr(model, "probabilistic", True)),
                           _predict_members_fn(model, elites, size))


def _predict_members_fn(model: Any, elites: list[int], size: int) -> MemberFn:
    # block of each model member: its own when it is an elite, else elite 0's (prediction dropped)
    block = torch.tensor([elites.index(k) if k in elites else 0 for k in range(size)])
    keep = torch.tensor(elites)
    all_members = elites == list(range(size))

    def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not all_members:
            obs, action = obs.index_select(0, block), action.index_select(0, block)
        means, variances = model.predict_members(obs, action)
        if not all_members:
            means = means.index_select(0, keep)
            variances = None if variances is None else variances.index_select(0, keep)
        return means, None if variances is None else variances.sqrt()

    return predict


def _elite_network_fn(model: Any, elites: list[int], cache: dict | None) -> MemberFn:
    """The computation of ``MLPDynamics.predict_members`` restricted to ``elites``."""
    network = model.network
    if len(elites) < model.ensemble_size:
        network = _elite_network(model, elites, cache if cache is not None else {})
    obs_norm, act_norm, delta_norm = model.obs_norm, model.act_norm, model.delta_norm

    def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.cat([obs_norm.normalize(obs), act_norm.normalize(action)], dim=-1)
        mean, log_std = network(x)
        means = obs + delta_norm.denormalize(mean)
        return means, None if log_std is None else log_std.exp() * delta_norm.std.to(log_std)

    return predict


def _elite_network(model: Any, elites: list[int], cache: dict) -> torch.nn.Module:
    """An ``E``-member copy of ``model.network`` holding the elites' current weights.

    Built on first use for this (network, elites) pair and refreshed by copying (every parameter
    has the member axis first), so a model refitted in place is always seen as it is now."""
    from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork

    key = (id(model.network), tuple(elites))
    if cache.get("key") != key:
        body = model.network.body
        sub = EnsembleDynamicsNetwork(body.in_dim, model.network.out_dim, model.network.probabilistic, len(elites),
                                      body.hidden_size, body.hidden_layers)
        sub.requires_grad_(False)
        cache.clear()
        cache.update(key=key, network=sub, index=torch.tensor(elites))
    sub, index = cache["network"], cache["index"]
    with torch.no_grad():
        for mine, theirs in zip(sub.parameters(), model.network.parameters()):
            mine.copy_(theirs.index_select(0, index))
    return sub


def shuffled_slots(rows: int, members: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """TS1 assignment for one step: ``(order [E * B], B)`` with ``B = ceil(rows / E)``.

    ``order`` is a uniformly random permutation of ``range(E * B)``, so every row (padding rows
    ``rows..E*B-1`` included) lands in each member's block with probability ``1 / E``, and the
    blocks are all full."""
    block = -(-rows // members)
    return torch.randperm(members * block, generator=generator), block


def fixed_slots(candidates: int, particles: int, members: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, int]:
    """TS-infinity assignment: ``(order [E * B], B)`` for candidate-major rows ``p * particles + j``.

    Particle ``j`` of candidate ``p`` uses member ``(j + u_p) mod E`` with an offset ``u_p`` drawn
    uniformly per candidate: each candidate's particles are spread as evenly as possible over the
    members, each particle's member is uniform, and the caller keeps the assignment for the whole
    horizon. ``B`` is the largest member's share; padding rows (after the real ones) fill the
    other blocks."""
    offsets = torch.randint(members, (candidates, 1), generator=generator)
    member = ((torch.arange(particles) + offsets) % members).reshape(-1)
    counts = torch.bincount(member, minlength=members)
    block = int(counts.max())
    padding = torch.repeat_interleave(torch.arange(members), block - counts)
    order = torch.argsort(torch.cat([member, padding]), stable=True)
    return order, block
