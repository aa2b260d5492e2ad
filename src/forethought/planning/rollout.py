"""Scoring candidate action sequences in a learned model, under the model's uncertainty.

    evaluator = TrajectoryEvaluator(model, task.reward, task.termination, particles=20, propagation="ts1")
    evaluation = evaluator.evaluate(obs, actions)      # obs [o], actions [P, H, a]
    evaluation.score                                   # [P], what an optimiser maximises
    optimiser(evaluator.objective(obs))                # the same, as an ``actions -> score`` closure

Each of the ``P`` candidates is rolled out from ``obs`` by ``particles`` particles; all ``P *
particles`` rows advance together, one batched model call per step. Rows are candidate-major
(row ``p * particles + j`` is particle ``j`` of candidate ``p``; in "all-members" mode member
``k``'s rows come before member ``k + 1``'s), and the reward and termination functions see
exactly those rows, never padding.

Propagation (ensembles with more than one member; only the elites are used):

* ``"ts1"``: every particle draws its member uniformly at random at every step (rows are shuffled
  into equal member blocks each step, so one call serves every member);
* ``"tsinf"``: every particle keeps one member for the whole horizon (particle ``j`` of candidate
  ``p`` uses member ``(j + u_p) mod E``, ``u_p`` random per candidate and call);
* ``"expectation"``: the next state is the average of the members' mean predictions, with no
  sampling (PETS's "E"), so a candidate's particles would coincide and one is propagated;
* ``"all-members"``: every member rolls out every candidate with ``particles`` particles of its
  own (so ``E * particles`` rollouts per candidate) and the return is averaged over all of them.

Probabilistic members add Gaussian noise drawn from their predicted variance with the evaluator's
generator; deterministic members give their mean (in "all-members" mode their particles would
coincide, so one per member is propagated). The members are the model's own
:class:`~forethought.models.MemberPredictor` (``model.frozen_member_predictor`` without autograd,
``model.member_predictor`` when differentiable). A model without members (linear-Gaussian,
single MLP, residual, a one-member ensemble: ``ensemble_size == 1``) draws every step with
``model.sample(..., generator)`` in "ts1", "tsinf" and "all-members" mode (the mean for a model
without predicted noise), and propagates ``model.predict(...).mean`` in "expectation" mode.

Disagreement. For a candidate, it is measured along its *reference trajectory*: the
expected-state rollout (the "expectation" propagation, whichever mode scores the return), so it
is a deterministic function of the candidate, free of sampling noise. At each step ``t`` the
elite members predict the next state from the reference state; with ``std_d`` the standard
deviation over members (population, i.e. ``sqrt(Prediction.epistemic_var)``) of their mean
predictions in dimension ``d`` and ``sigma_d = model.delta_scale()[d]`` (the spread of one-step
changes in the training data; 1 for a model that does not normalise its targets),

    disagreement = mean over t = 0..H-1 of  mean over d of  std_d(t) / sigma_d

i.e. member spread in units of a typical one-step change, comparable across dimensions. Models
without members use ``sqrt(epistemic_var)`` from ``predict`` (0 when they report none).
Termination does not shorten this average. Measuring it costs one extra row per candidate for
every member each step (about ``E / particles`` more compute); by default it is measured only
when the score uses it (``risk_penalty > 0`` or a ``veto_threshold``) or when it is free
("expectation" mode), and is NaN otherwise.

Returns. ``return = sum_t discount^t * alive_t * r_t``: a particle earns the reward of the step on
which it terminates and nothing afterwards.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from forethought.models.base import DynamicsModel, require_model
from forethought.models.frozen import compute_dtype as ensemble_compute_dtype
from forethought.planning.config import PlannerConfig
from forethought.planning.exploration import check_dims, check_exploration
from forethought.planning.optimizer import RolloutObjective
from forethought.planning.propagation import PROPAGATIONS, Rollout, RolloutSettings, start_rollout

__all__ = ["PROPAGATIONS", "Evaluation", "TrajectoryEvaluator"]


@dataclass
class Evaluation:
    """How a population of ``P`` candidate action sequences scored.

    Attributes:
        score: ``[P]`` what an optimiser maximises: ``mean_return - risk_penalty * disagreement
            + exploration_bonus * H * disagreement`` (the bonus: ``exploration_bonus`` times the
            spread summed over the ``H`` steps), ``-inf`` for vetoed candidates and, with a bonus,
            for candidates whose disagreement is not finite (the model blew up along them).
        mean_return: ``[P]`` predicted (discounted) return averaged over the candidate's particles.
        disagreement: ``[P]`` members' disagreement along the candidate's reference trajectory (see
            the module docstring); NaN when not measured.
        vetoed: ``[P]`` bool, disagreement above the veto threshold.
        all_vetoed: every candidate was over the threshold, so the least uncertain one kept its
            mean return as score (its ``vetoed`` entry stays True) and the others got ``-inf``.
        member_indices: with ``evaluate(..., record_members=True)`` for a model with members in a
            sampling mode, ``[P, particles, H]`` long: the model member that predicted each step of
            each particle (``[P, E * particles', H]`` in "all-members" mode, member-major); else None.
    """

    score: torch.Tensor
    mean_return: torch.Tensor
    disagreement: torch.Tensor
    vetoed: torch.Tensor
    all_vetoed: bool
    member_indices: torch.Tensor | None = None


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class TrajectoryEvaluator:
    """Scores action sequences ``[P, H, a]`` from one observation by rolling them out in a model.

    Args:
        model: a :class:`~forethought.models.DynamicsModel` (one with ``ensemble_size > 1`` is
            rolled out through its elite members).
        reward_fn: ``(obs [B, o], action [B, a], next_obs [B, o]) -> [B]`` float, e.g.
            ``envs.task_functions(name).reward`` or a :class:`~forethought.models.RewardModel`.
        termination_fn: same arguments ``-> [B]`` bool, or None for a task that never terminates.
        particles: rollouts per candidate (per member in "all-members" mode).
        propagation: one of :data:`PROPAGATIONS` (see the module docstring).
        (``particles``, ``propagation``, ``risk_penalty``, ``veto_threshold`` and
        ``compute_dtype`` default to :class:`~forethought.planning.config.PlannerConfig`'s.)
        risk_penalty: weight of the disagreement subtracted from the mean return (>= 0).
        exploration_bonus: every step of a candidate also earns this times its spread (>= 0;
            see :mod:`forethought.planning.exploration`).
        disagreement_dims: the observation dimensions the disagreement averages over (None:
            all), e.g. a pendulum's angle and velocity but not a cart's unbounded position.
        veto_threshold: candidates whose disagreement exceeds it score ``-inf`` (None: no veto).
        discount: per-step discount in ``(0, 1]``.
        terminal_value: ``obs [B, o] -> [B]``, the value of the state each rollout ends in,
            added discounted by ``discount ** H`` (zero for a rollout that terminated), e.g. a
            :class:`~forethought.models.value.StateValue`; None: the score ends at the horizon.
        generator: drives member assignment and sampling (a fixed seed when omitted).
        differentiable: keep the autograd graph so scores can be differentiated w.r.t. actions
            (for gradient-based planners); otherwise rollouts run under ``torch.no_grad()``.
        measure_disagreement: True/False to force; None measures it only when the score uses it
            or it is free.
        compute_dtype: what an ensemble's frozen members
            (:meth:`~forethought.models.DynamicsModel.frozen_member_predictor`; a neural
            ensemble's network) compute in during (non-differentiable) rollouts: ``"float32"`` (default;
            within about 1e-6 relative of ``predict_members``) or ``"bfloat16"`` (matrix
            products several times faster on CPUs with AMX / AVX512-BF16; on cart-pole the
            next-state means move by 3e-3 of the one-step-change std on average, 2e-2 at most,
            and the candidates' ranking is kept: ``benchmarks/planning_speed.py --quality``).
            Inputs, outputs, the log-std bounds and the state update stay in float32; other
            models, and differentiable rollouts, always use float32.

    ``last_evaluation`` holds the most recent :class:`Evaluation`.
    """

    def __init__(self, model: DynamicsModel, reward_fn: Callable, termination_fn: Callable | None = None, *,
                 particles: int = PlannerConfig.particles, propagation: str = PlannerConfig.propagation,
                 risk_penalty: float = PlannerConfig.risk_penalty,
                 exploration_bonus: float = PlannerConfig.exploration_bonus,
                 disagreement_dims: list[int] | None = PlannerConfig.disagreement_dims,
                 veto_threshold: float | None = PlannerConfig.veto_threshold, discount: float = 1.0,
                 terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 generator: torch.Generator | None = None, differentiable: bool = False,
                 measure_disagreement: bool | None = None,
                 compute_dtype: torch.dtype | str = PlannerConfig.compute_dtype) -> None:
        require_model(model)
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable (obs, action, next_obs) -> [B], got {reward_fn!r}")
        if termination_fn is not None and not callable(termination_fn):
            raise TypeError(f"termination_fn must be callable (obs, action, next_obs) -> [B] bool or None, "
                            f"got {termination_fn!r}")
        if propagation not in PROPAGATIONS:
            raise ValueError(f"unknown propagation {propagation!r}; choose one of {list(PROPAGATIONS)}")
        if isinstance(particles, bool) or int(particles) != particles or particles < 1:
            raise ValueError(f"particles must be an integer >= 1, got {particles!r}")
        if not (math.isfinite(risk_penalty) and risk_penalty >= 0):
            raise ValueError(f"risk_penalty must be finite and >= 0, got {risk_penalty!r}")
        check_exploration(exploration_bonus, None)
        if veto_threshold is not None and not (math.isfinite(veto_threshold) and veto_threshold >= 0):
            raise ValueError(f"veto_threshold must be None or finite and >= 0, got {veto_threshold!r}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if terminal_value is not None and not callable(terminal_value):
            raise TypeError(f"terminal_value must be callable obs [B, o] -> [B] or None, got {terminal_value!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.compute_dtype = ensemble_compute_dtype(compute_dtype)
        self.model, self.reward_fn, self.termination_fn = model, reward_fn, termination_fn
        self.particles, self.propagation = int(particles), propagation
        self.risk_penalty, self.veto_threshold = float(risk_penalty), veto_threshold
        self.exploration_bonus = float(exploration_bonus)
        self.disagreement_dims = None if disagreement_dims is None else torch.as_tensor(
            check_dims(disagreement_dims, model.obs_dim, "disagreement_dims"), dtype=torch.long, device=model.device)
        self.discount, self.differentiable = float(discount), bool(differentiable)
        self.terminal_value = terminal_value
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if measure_disagreement is None:
            measure_disagreement = (risk_penalty > 0 or exploration_bonus > 0 or veto_threshold is not None
                                    or propagation == "expectation")
        elif not measure_disagreement and (risk_penalty > 0 or exploration_bonus > 0):
            raise ValueError("risk_penalty and exploration_bonus score the disagreement: they need "
                             "measure_disagreement=True (or None)")
        self.measure_disagreement = bool(measure_disagreement)
        self.last_evaluation: Evaluation | None = None

    # ------------------------------------------------------------------ public API
    def evaluate(self, obs: Any, actions: Any, *, record_members: bool = False) -> Evaluation:
        """Score candidates ``actions [P, H, a]`` from one observation ``obs [o]`` (raw units).

        ``record_members`` fills :attr:`Evaluation.member_indices` (for tests and diagnostics)."""
        obs_t, actions_t = self._check_obs(obs), self._check_actions(actions)
        if not self.model.fitted:
            raise RuntimeError(f"{type(self.model).__name__} has not been fitted: call fit(...) first")
        with contextlib.nullcontext() if self.differentiable else torch.no_grad():
            rollout = self._rollout(obs_t, actions_t, record_members)
            mean_return, disagreement = self._run(rollout, actions_t)
            evaluation = self._score(mean_return, disagreement, actions_t.shape[1])
        if record_members and rollout.member_log:
            evaluation.member_indices = torch.stack(rollout.member_log, dim=-1)
        self.last_evaluation = evaluation
        return evaluation

    def objective(self, obs: Any) -> RolloutObjective:
        """``actions [P, H, a] -> evaluate(obs, actions).score [P]``, for any optimiser; it also
        carries ``obs``, the model's expected step and the reward, for iLQR."""
        obs_t = self._check_obs(obs)
        return RolloutObjective(lambda actions: self.evaluate(obs_t, actions).score, obs_t, self.expected_step,
                                self.reward_fn)

    def expected_step(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The model's mean next observation ``[B, o]`` for obs ``[B, o]`` and action ``[B, a]``
        (over the elites for an ensemble), differentiable w.r.t. both."""
        return self.model.predict(obs, action).mean

    # ------------------------------------------------------------------ validation
    def _check_obs(self, obs: Any) -> torch.Tensor:
        o = self.model.obs_dim
        obs_t = obs if isinstance(obs, torch.Tensor) else torch.as_tensor(obs, dtype=torch.float32)
        if obs_t.shape != (o,):
            raise ValueError(f"obs has shape {tuple(obs_t.shape)}, expected ({o},): one observation of the "
                             f"model's obs_dim={o}")
        if not torch.isfinite(obs_t).all():
            raise ValueError(f"obs has a non-finite value: {obs_t.tolist()}")
        return obs_t.float().to(self.model.device)

    def _check_actions(self, actions: Any) -> torch.Tensor:
        a = self.model.act_dim
        act_t = actions if isinstance(actions, torch.Tensor) else torch.as_tensor(actions, dtype=torch.float32)
        if act_t.ndim != 3 or act_t.shape[2] != a or act_t.shape[0] < 1 or act_t.shape[1] < 1:
            raise ValueError(f"actions has shape {tuple(act_t.shape)}, expected (P, H, {a}) = (population >= 1, "
                             f"horizon >= 1, the model's act_dim={a})")
        if not torch.isfinite(act_t).all():
            bad = int((~torch.isfinite(act_t)).flatten(1).any(1).nonzero()[0])
            raise ValueError(f"actions has a non-finite value in candidate {bad}")
        return act_t.float().to(self.model.device)

    def _reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        reward = self.reward_fn(obs, action, next_obs)
        rows = obs.shape[0]
        if not isinstance(reward, torch.Tensor) or reward.shape != (rows,):
            got = tuple(reward.shape) if isinstance(reward, torch.Tensor) else type(reward).__name__
            raise ValueError(f"reward function {_name(self.reward_fn)} returned {got}, expected shape ({rows},): "
                             f"one reward per transition ([B] for B={rows})")
        return reward.float()

    def _check_finite_reward(self, reward: torch.Tensor, next_obs: torch.Tensor) -> None:
        if torch.isfinite(reward).all():
            return
        bad = int((~torch.isfinite(reward)).sum())
        why = (" (the model predicted non-finite next observations)" if not torch.isfinite(next_obs).all() else "")
        raise ValueError(f"reward function {_name(self.reward_fn)} returned non-finite rewards for {bad} of "
                         f"{reward.shape[0]} transitions{why}")

    def _value(self, final_obs: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        """The terminal value ``[B]`` of the rollouts' final observations, zero where terminated."""
        value = self.terminal_value(final_obs)
        rows = final_obs.shape[0]
        if not isinstance(value, torch.Tensor) or value.shape != (rows,):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"terminal value {_name(self.terminal_value)} returned {got}, expected shape ({rows},)")
        if not torch.isfinite(value).all():
            raise ValueError(f"terminal value {_name(self.terminal_value)} returned non-finite values for "
                             f"{int((~torch.isfinite(value)).sum())} of {rows} final states")
        value = value.float()
        return value if alive is None else torch.where(alive, value, torch.zeros((), device=value.device))

    def _terminated(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        done = self.termination_fn(obs, action, next_obs)
        rows = obs.shape[0]
        if not isinstance(done, torch.Tensor) or done.shape != (rows,) or done.dtype != torch.bool:
            got = (f"{done.dtype} of shape {tuple(done.shape)}" if isinstance(done, torch.Tensor)
                   else type(done).__name__)
            raise ValueError(f"termination function {_name(self.termination_fn)} returned {got}, expected a "
                             f"torch.bool tensor of shape ({rows},)")
        return done

    # ------------------------------------------------------------------ rollout
    def _rollout(self, obs: torch.Tensor, actions: torch.Tensor, record: bool) -> Rollout:
        settings = RolloutSettings(self.propagation, self.particles, self.generator, self.measure_disagreement,
                                   self.model.delta_scale(), record, self.differentiable, self.compute_dtype,
                                   self.disagreement_dims)
        return start_rollout(self.model, obs, actions, settings)

    def _run(self, rollout: Rollout, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``rollout`` over the horizon; ``(mean_return [P], disagreement [P])``."""
        population, horizon = actions.shape[:2]
        device = actions.device
        total = torch.zeros(rollout.rows, device=device)
        alive: torch.Tensor | None = None
        disagreement = torch.zeros(population, device=device) if self.measure_disagreement else None
        for t in range(horizon):
            obs_rows, action_rows = rollout.visible(), rollout.actions[t, :rollout.rows]
            step_disagreement = rollout.advance(t)
            next_rows = rollout.visible()
            reward = self._reward(obs_rows, action_rows, next_rows)
            if alive is not None:
                reward = torch.where(alive, reward, torch.zeros((), device=device))
            self._check_finite_reward(reward, next_rows)
            total = total + reward if t == 0 else total + self.discount ** t * reward
            if self.termination_fn is not None:
                done = self._terminated(obs_rows, action_rows, next_rows)
                alive = ~done if alive is None else alive & ~done
            if disagreement is not None:
                disagreement = disagreement + step_disagreement
        if self.terminal_value is not None:
            total = total + self.discount ** horizon * self._value(rollout.visible(), alive)
        mean_return = total.view(rollout.groups, population, rollout.particles).mean(dim=(0, 2))
        if disagreement is None:
            return mean_return, torch.full((population,), math.nan, device=device)
        return mean_return, torch.nan_to_num(disagreement / horizon, nan=math.inf)

    def _score(self, mean_return: torch.Tensor, disagreement: torch.Tensor, horizon: int) -> Evaluation:
        score = mean_return - self.risk_penalty * disagreement if self.risk_penalty > 0 else mean_return
        if self.exploration_bonus > 0:
            bonus = self.exploration_bonus * horizon * disagreement
            score = torch.where(torch.isfinite(disagreement), score + bonus, torch.full_like(score, -math.inf))
        vetoed = torch.zeros(mean_return.shape, dtype=torch.bool, device=mean_return.device)
        all_vetoed = False
        if self.veto_threshold is not None:
            vetoed = disagreement > self.veto_threshold
            minus_inf = torch.full_like(mean_return, -math.inf)
            if bool(vetoed.all()):
                all_vetoed = True
                keep = torch.arange(len(vetoed), device=vetoed.device) == torch.argmin(disagreement)
                score = torch.where(keep, mean_return, minus_inf)
            else:
                score = torch.where(vetoed, minus_inf, score)
        return Evaluation(score, mean_return, disagreement, vetoed, all_vetoed)
