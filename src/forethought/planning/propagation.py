"""How particles move through an ensemble: member predictions and member-to-particle assignment.

A rollout of ``R`` particle rows through ``E`` ensemble members is one batched call per step on
an ``[E, B, dim]`` block, member ``e`` predicting for row block ``e``. The helpers here build that
call and decide which particle row lands in which block:

* :func:`member_predictor` wraps a model's elite members as one function
  ``(obs [E, B, o], action [E, B, a]) -> (means [E, B, o], stds [E, B, o] or None)``;
* :func:`shuffled_slots` (TS1) and :func:`fixed_slots` (TS-infinity) give the ``order`` of rows:
  slot ``s`` of the flattened ``[E * B]`` block holds row ``order[s]`` and belongs to member
  ``s // B``. ``E * B`` may exceed the number of real rows; the extra rows are padding;
* :func:`start_rollout` gives the particles of one evaluation, a :class:`MemberRollout` for an
  ensemble or a :class:`SingleModelRollout` otherwise, which the evaluator in
  :mod:`forethought.planning.rollout` steps through the horizon (the propagation modes are
  described there).
"""

from __future__ import annotations

from dataclasses import dataclass
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


def member_predictor(model: Any, cache: dict | None = None,
                     compute_dtype: torch.dtype | str = torch.float32) -> MemberPredictor | None:
    """A :class:`MemberPredictor` over ``model``'s elites, or ``None`` for a model without members.

    A model has members when it has ``predict_members`` and ``ensemble_size > 1`` (a one-member
    ensemble is treated as a single model). Its elites are ``model.elites`` when present, else all
    members. For :class:`~forethought.models.neural.MLPDynamics` the elites' current weights are
    taken into one smaller network, so non-elite members cost nothing: without autograd a
    :class:`~forethought.models.ensemble_mlp.FrozenEnsemble` computing in ``compute_dtype``
    (float32 or bfloat16), with autograd (differentiable rollouts) an ``E``-member copy of the
    network in float32 that ``cache`` (a dict the caller keeps between calls) holds so it is
    built once and only refreshed afterwards. Other models are called through
    ``predict_members`` on ``[K, B, o]`` blocks (in float32), the non-elite blocks being copies
    whose predictions are discarded.
    """
    if not hasattr(model, "predict_members") or int(getattr(model, "ensemble_size", 1)) <= 1:
        return None
    size = int(model.ensemble_size)
    elites = sorted(int(k) for k in getattr(model, "elites", range(size)))
    from forethought.models.neural import MLPDynamics  # planning sits after models on the data's path

    if isinstance(model, MLPDynamics):
        if torch.is_grad_enabled():
            network = _elite_network_fn(model, elites, cache)
        else:
            network = _frozen_network_fn(model, elites, compute_dtype)
        return MemberPredictor(elites, model.probabilistic, network)
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


def _with_normalizers(model: Any, network: Callable) -> MemberFn:
    """``MLPDynamics.predict_members``'s computation around ``network`` (normalised inputs ``[E, B,
    o + a]`` -> normalised ``(mean, log_std)``): raw obs ``[E, B, o]`` and actions in, raw next-obs
    means and stds ``[E, B, o]`` out, all in float32."""
    obs_norm, act_norm, delta_norm = model.obs_norm, model.act_norm, model.delta_norm

    def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.cat([obs_norm.normalize(obs), act_norm.normalize(action)], dim=-1)
        mean, log_std = network(x)
        means = obs + delta_norm.denormalize(mean)
        return means, None if log_std is None else log_std.exp() * delta_norm.std.to(log_std)

    return predict


def _frozen_network_fn(model: Any, elites: list[int], compute_dtype: torch.dtype | str) -> MemberFn:
    """``MLPDynamics.predict_members``'s computation for the elites (no autograd), the input
    normalisers applied inside a :class:`~forethought.models.ensemble_mlp.FrozenEnsemble` snapshot."""
    from forethought.models.ensemble_mlp import FrozenEnsemble

    norms = (model.obs_norm, model.act_norm)
    scale = torch.cat([1.0 / norm.std for norm in norms])
    network = FrozenEnsemble(model.network, elites, compute_dtype, scale, -torch.cat([n.mean for n in norms]) * scale)
    delta_mean, delta_std = model.delta_norm.mean, model.delta_norm.std

    def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mean, log_std = network(obs, action)
        means = torch.addcmul(obs + delta_mean, mean, delta_std)
        return means, None if log_std is None else log_std.exp_().mul_(delta_std)

    return predict


def _elite_network_fn(model: Any, elites: list[int], cache: dict | None) -> MemberFn:
    """The computation of ``MLPDynamics.predict_members`` restricted to ``elites``, with autograd."""
    network = model.network
    if len(elites) < model.ensemble_size:
        network = _elite_network(model, elites, cache if cache is not None else {})
    return _with_normalizers(model, network)


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


@dataclass
class RolloutSettings:
    """What a rollout needs to know: the propagation mode, particles per candidate, the generator,
    whether to follow the reference trajectory (``measure``), the per-dimension disagreement
    ``scale [o]``, and whether to log member indices (``record``), and the dtype an ensemble network computes in
    (``compute_dtype``, see :func:`member_predictor`)."""

    propagation: str
    particles: int
    generator: torch.Generator
    measure: bool
    scale: torch.Tensor
    record: bool = False
    compute_dtype: torch.dtype | str = torch.float32


def start_rollout(model: Any, obs: torch.Tensor, actions: torch.Tensor, settings: RolloutSettings,
                  cache: dict | None = None) -> "Rollout":
    """The particles of candidates ``actions [P, H, a]`` starting at ``obs [o]`` in ``model``
    (``cache`` as in :func:`member_predictor`)."""
    predictor = member_predictor(model, cache, settings.compute_dtype)
    if predictor is None:
        return SingleModelRollout(model, obs, actions, settings)
    return MemberRollout(predictor, obs, actions, settings)


class Rollout:
    """The particles of one evaluation and how they advance.

    ``state`` is the propagated tensor, ``visible()`` the ``[rows, o]`` rows the reward sees
    (laid out as ``[groups, P, particles]``, candidate-major), ``actions [H, >= rows, a]`` their
    actions per step, ``advance(t)`` moves one step and returns that step's disagreement ``[P]``
    along the reference trajectory (None when not measured), ``member_log`` collects the member
    index of every row ``[P, particles]`` per step when recording."""

    groups = 1

    def __init__(self, obs: torch.Tensor, actions: torch.Tensor, settings: RolloutSettings, particles: int) -> None:
        self.generator, self.scale, self.record = settings.generator, settings.scale, settings.record
        self.measure = settings.measure
        self.candidates, self.particles = actions.shape[0], particles
        self.rows = self.groups * self.candidates * particles
        self.step_actions = actions.transpose(0, 1)  # [H, P, a]
        horizon, act_dim = self.step_actions.shape[0], actions.shape[2]
        self.actions = (self.step_actions[:, None, :, None, :]
                        .expand(horizon, self.groups, self.candidates, particles, act_dim)
                        .reshape(horizon, self.rows, act_dim))
        self.member_log: list[torch.Tensor] = []

    def visible(self) -> torch.Tensor:
        return self.state

    def advance(self, t: int) -> torch.Tensor | None:
        raise NotImplementedError

    def _spread(self, std: torch.Tensor | None) -> torch.Tensor:
        """Step disagreement ``[P]`` from a per-dimension std ``[P, o]`` (None: zeros)."""
        if std is None:
            return torch.zeros(self.candidates)
        return (std / self.scale).mean(dim=-1)


class SingleModelRollout(Rollout):
    """A model without members: ``model.sample`` per step, or ``predict().mean`` in expectation mode."""

    def __init__(self, model: Any, obs: torch.Tensor, actions: torch.Tensor, settings: RolloutSettings) -> None:
        self.model, self.expectation = model, settings.propagation == "expectation"
        super().__init__(obs, actions, settings, 1 if self.expectation else settings.particles)
        self.state = obs.expand(self.rows, -1)
        self.reference = obs.expand(self.candidates, -1) if self.measure and not self.expectation else None

    def advance(self, t: int) -> torch.Tensor | None:
        if self.expectation:
            prediction = self.model.predict(self.state, self.actions[t])
            self.state = prediction.mean
            return self._epistemic(prediction) if self.measure else None
        self.state = self.model.sample(self.state, self.actions[t], self.generator)
        if self.reference is None:
            return None
        prediction = self.model.predict(self.reference, self.step_actions[t])
        self.reference = prediction.mean
        return self._epistemic(prediction)

    def _epistemic(self, prediction: Any) -> torch.Tensor:
        var = prediction.epistemic_var
        return self._spread(None if var is None else var.clamp_min(0.0).sqrt())


class MemberRollout(Rollout):
    """An ensemble: one call per step on ``[E, B, .]`` member blocks, plus the shared reference
    rows ``[P, .]`` (given to every member) when disagreement is measured."""

    def __init__(self, predictor: MemberPredictor, obs: torch.Tensor, actions: torch.Tensor,
                 settings: RolloutSettings) -> None:
        self.predictor, self.mode, members = predictor, settings.propagation, predictor.size
        self.groups = members if self.mode == "all-members" else 1  # read by Rollout.__init__
        deterministic = self.mode == "expectation" or (self.mode == "all-members" and not predictor.probabilistic)
        super().__init__(obs, actions, settings, 1 if deterministic else settings.particles)
        self.member_ids = torch.tensor(predictor.members)
        self.order, self.block = None, 0
        if self.mode == "expectation":
            self.state = obs.expand(self.candidates, -1)
        elif self.mode == "all-members":
            self.state = obs.expand(members, self.rows // members, -1)
            if self.record:
                self.member_log_static = self.member_ids[:, None, None].expand(
                    members, self.candidates, self.particles).permute(1, 0, 2).reshape(self.candidates, -1)
        else:
            if self.mode == "tsinf":
                self.order, self.block = fixed_slots(self.candidates, self.particles, members, self.generator)
                self.inverse = torch.empty_like(self.order)
                self.inverse[self.order] = torch.arange(self.order.shape[0])
            else:
                self.block = -(-self.rows // members)
            padded = members * self.block
            self.state = obs.expand(padded, -1)
            pad = torch.zeros(self.actions.shape[0], padded - self.rows, self.actions.shape[2])
            self.actions = torch.cat([self.actions, pad], dim=1)
        self.reference = obs.expand(self.candidates, -1) if self.measure and self.mode != "expectation" else None

    def visible(self) -> torch.Tensor:
        if self.mode == "all-members":
            return self.state.reshape(self.rows, -1)
        return self.state[:self.rows] if self.state.shape[0] != self.rows else self.state

    def advance(self, t: int) -> torch.Tensor | None:
        if self.mode == "expectation":
            means, _ = self._predict(None, None, self.state, self.step_actions[t])
            self.state = means.mean(dim=0)
            return self._spread(means.std(dim=0, unbiased=False)) if self.measure else None
        order = self.order if self.mode != "ts1" else shuffled_slots(self.rows, self.predictor.size, self.generator)[0]
        obs_blocks, act_blocks = self._blocks(self.state, order), self._blocks(self.actions[t], order)
        means, stds = self._predict(obs_blocks, act_blocks, self.reference, self.step_actions[t])
        blocks = obs_blocks.shape[1]
        next_blocks = means[:, :blocks]
        if stds is not None:
            next_blocks = next_blocks + stds[:, :blocks] * torch.randn(next_blocks.shape, generator=self.generator)
        self._store(next_blocks, order)
        if self.reference is None:
            return None
        reference = means[:, blocks:]
        self.reference = reference.mean(dim=0)
        return self._spread(reference.std(dim=0, unbiased=False))

    def _blocks(self, rows: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
        """``[E, B, .]`` member blocks of ``rows``: as they are in "all-members" mode (``[E, B, .]``
        state, or ``[E * B, .]`` actions), else row ``order[s]`` in slot ``s``."""
        members = self.predictor.size
        if order is None:
            return rows.reshape(members, -1, rows.shape[-1])
        return rows.index_select(0, order).view(members, self.block, -1)

    def _store(self, next_blocks: torch.Tensor, order: torch.Tensor | None) -> None:
        """Make ``next_blocks [E, B, o]`` the new state (back in row order) and log the members."""
        if order is None:
            self.state = next_blocks
            if self.record:
                self.member_log.append(self.member_log_static)
            return
        if order is self.order:  # TS-infinity: the same slots every step
            inverse = self.inverse
        else:
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.shape[0])
        self.state = next_blocks.reshape(-1, next_blocks.shape[-1]).index_select(0, inverse)
        if self.record:
            self.member_log.append(self.member_ids[inverse[:self.rows] // self.block].view(self.candidates,
                                                                                          self.particles))

    def _predict(self, obs_blocks: torch.Tensor | None, act_blocks: torch.Tensor | None,
                 reference: torch.Tensor | None, reference_actions: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One member call on ``[E, B + P, .]``: the member blocks, then the shared reference rows."""
        members = self.predictor.size
        if reference is None:
            return self.predictor(obs_blocks, act_blocks)
        shared_obs = reference.expand(members, -1, -1)
        shared_act = reference_actions.expand(members, -1, -1)
        if obs_blocks is None:
            return self.predictor(shared_obs, shared_act)
        return self.predictor(torch.cat([obs_blocks, shared_obs], dim=1), torch.cat([act_blocks, shared_act], dim=1))
