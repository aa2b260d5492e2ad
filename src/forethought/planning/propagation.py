"""How particles move through an ensemble: member-to-particle assignment and the rollout steps.

A rollout of ``R`` particle rows through ``E`` ensemble members is one batched call per step on
an ``[E, B, dim]`` block, member ``e`` predicting for row block ``e``. That call is the model's own
:class:`~forethought.models.MemberPredictor` over its elites
(``model.frozen_member_predictor(dtype)`` without autograd, ``model.member_predictor()`` for
differentiable rollouts); the helpers here decide which particle row lands in which block:

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

import torch

from forethought.models.base import DynamicsModel, MemberPredictor, Prediction

PROPAGATIONS = ("ts1", "tsinf", "expectation", "all-members")


def shuffled_slots(rows: int, members: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """TS1 assignment for one step: ``(order [E * B], B)`` with ``B = ceil(rows / E)``.

    ``order`` is a uniformly random permutation of ``range(E * B)``, so every row (padding rows
    ``rows..E*B-1`` included) lands in each member's block with probability ``1 / E``, and the
    blocks are all full."""
    block = -(-rows // members)
    return torch.randperm(members * block, generator=generator, device=generator.device), block


def fixed_slots(candidates: int, particles: int, members: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, int]:
    """TS-infinity assignment: ``(order [E * B], B)`` for candidate-major rows ``p * particles + j``.

    Particle ``j`` of candidate ``p`` uses member ``(j + u_p) mod E`` with an offset ``u_p`` drawn
    uniformly per candidate: each candidate's particles are spread as evenly as possible over the
    members, each particle's member is uniform, and the caller keeps the assignment for the whole
    horizon. ``B`` is the largest member's share; padding rows (after the real ones) fill the
    other blocks."""
    device = generator.device
    offsets = torch.randint(members, (candidates, 1), generator=generator, device=device)
    member = ((torch.arange(particles, device=device) + offsets) % members).reshape(-1)
    counts = torch.bincount(member, minlength=members)
    block = int(counts.max())
    padding = torch.repeat_interleave(torch.arange(members, device=device), block - counts)
    order = torch.argsort(torch.cat([member, padding]), stable=True)
    return order, block


@dataclass
class RolloutSettings:
    """What a rollout needs to know: the propagation mode, particles per candidate, the generator,
    whether to follow the reference trajectory (``measure``), the per-dimension disagreement
    ``scale [o]`` and the dimensions it averages over (``dims``, long ``[k]``; None: all), whether to log member indices (``record``), whether it must keep the autograd
    graph (``differentiable``), and the dtype an ensemble's frozen members compute in
    (``compute_dtype``; differentiable rollouts compute in float32)."""

    propagation: str
    particles: int
    generator: torch.Generator
    measure: bool
    scale: torch.Tensor
    record: bool = False
    differentiable: bool = False
    compute_dtype: torch.dtype | str = torch.float32
    dims: torch.Tensor | None = None


def start_rollout(model: DynamicsModel, obs: torch.Tensor, actions: torch.Tensor,
                  settings: RolloutSettings) -> "Rollout":
    """The particles of candidates ``actions [P, H, a]`` starting at ``obs [o]`` in ``model``:
    through its elite members when it has several, else through ``sample``/``predict``."""
    if settings.differentiable:
        predictor = model.member_predictor()
    else:
        predictor = model.frozen_member_predictor(settings.compute_dtype)
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
        self.dims = settings.dims
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
            return torch.zeros(self.candidates, device=self.step_actions.device)
        ratio = std / self.scale
        return (ratio if self.dims is None else ratio.index_select(-1, self.dims)).mean(dim=-1)


class SingleModelRollout(Rollout):
    """A model without members: ``model.sample`` per step, or ``predict().mean`` in expectation mode."""

    def __init__(self, model: DynamicsModel, obs: torch.Tensor, actions: torch.Tensor,
                 settings: RolloutSettings) -> None:
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

    def _epistemic(self, prediction: Prediction) -> torch.Tensor:
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
        self.member_ids = torch.tensor(predictor.members, device=obs.device)
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
                self.inverse[self.order] = torch.arange(self.order.shape[0], device=self.order.device)
            else:
                self.block = -(-self.rows // members)
            padded = members * self.block
            self.state = obs.expand(padded, -1)
            pad = torch.zeros(self.actions.shape[0], padded - self.rows, self.actions.shape[2], device=obs.device)
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
            next_blocks = next_blocks + stds[:, :blocks] * torch.randn(next_blocks.shape, generator=self.generator,
                                                                           device=next_blocks.device)
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
            inverse[order] = torch.arange(order.shape[0], device=order.device)
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
