"""Iterative LQR: for a differentiable model and reward, and as an MPC optimiser.

- :class:`ILQR`: iterative LQR (Li and Todorov, 2004) for differentiable batched dynamics and
  costs (e.g. a learned model's mean prediction), warm-started between calls.
- :class:`ILQROptimizer` (``"ilqr"``) and :class:`LQROptimizer` (``"lqr"``): iLQR as a
  :class:`~forethought.planning.optimizer.TrajectoryOptimizer`, so ``PlannerConfig(optimizer="ilqr")``
  plans like any other optimiser. They take a
  :class:`~forethought.planning.optimizer.RolloutObjective` (what
  :meth:`~forethought.planning.TrajectoryEvaluator.objective` returns) and run iLQR on its
  expected step (the model's mean prediction) with the stage cost ``-reward(x, u, step(x, u))``;
  termination and the particles' noise are not part of iLQR's cost, but the returned plan is
  scored by the full objective.

Sign convention: the control law is ``u = U + K (x - X)``, costs are minimised, and the backward
pass runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.planning.lqr import positive_definite, symmetric
from forethought.planning.optimizer import (Objective, RolloutObjective, SearchResult, TrajectoryOptimizer,
                                            action_bounds, evaluate, shift_steps)
from forethought.planning.settings import check_int, check_nonnegative, check_positive, settings_from

Dynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Batched dynamics: state ``[B, o]``, action ``[B, a]`` -> next state ``[B, o]``."""
StageCost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Batched stage cost: state ``[B, o]``, action ``[B, a]`` -> ``[B]``."""


@dataclass
class ILQRSettings:
    """Settings of :class:`ILQR` and of the ``"ilqr"`` optimiser.

    Attributes:
        iterations: maximum iterations per call, ``>= 1``.
        regularization: initial Levenberg-Marquardt ``mu``, ``>= 0``.
        max_regularization: give up (not converged) once ``mu`` exceeds this, ``> 0``.
        tolerance: converged when an accepted step lowers the cost by less than
            ``tolerance * (1 + |cost|)``, ``>= 0``.
    """

    iterations: int = 50
    regularization: float = 1e-6
    max_regularization: float = 1e10
    tolerance: float = 1e-7

    def __post_init__(self) -> None:
        check_int("iterations", self.iterations)
        check_nonnegative("regularization", self.regularization)
        check_positive("max_regularization", self.max_regularization)
        check_nonnegative("tolerance", self.tolerance)


@dataclass
class LQRSettings:
    """Settings of the ``"lqr"`` optimiser (one iLQR iteration per plan).

    Attributes:
        regularization: Levenberg-Marquardt ``mu`` of the step, ``>= 0``.
        max_regularization: give up on the step once ``mu`` exceeds this, ``> 0``.
    """

    regularization: float = 1e-6
    max_regularization: float = 1e10

    def __post_init__(self) -> None:
        check_nonnegative("regularization", self.regularization)
        check_positive("max_regularization", self.max_regularization)


# Regularisation below this is dropped to 0 after a success, and a failure restarts from it.
_SMALLEST_REGULARIZATION = 1e-6


def _jacobian_rows(outputs: torch.Tensor, inputs: tuple[torch.Tensor, ...],
                   create_graph: bool = False) -> list[torch.Tensor]:
    """Per-row Jacobians of ``outputs [T, m]`` with respect to each of ``inputs`` ``[T, n_i]``,
    returned as ``[T, m, n_i]``; valid because row ``t`` of the outputs depends only on row ``t``
    of the inputs (batched dynamics and costs). One backward pass per output column."""
    rows: list[list[torch.Tensor]] = [[] for _ in inputs]
    for j in range(outputs.shape[1]):
        column = outputs[:, j].sum()
        grads = (None,) * len(inputs) if not column.requires_grad else torch.autograd.grad(
            column, inputs, retain_graph=True, create_graph=create_graph, allow_unused=True)
        for i, (x, g) in enumerate(zip(inputs, grads)):
            rows[i].append(torch.zeros_like(x) if g is None else g)
    return [torch.stack(r, dim=1) for r in rows]


@dataclass
class _Expansion:
    """Derivatives along a trajectory, float64: dynamics ``f_x [H, o, o]``, ``f_u [H, o, a]``;
    stage cost ``l_x [H, o]``, ``l_u [H, a]``, ``l_xx [H, o, o]``, ``l_uu [H, a, a]``,
    ``l_ux [H, a, o]``; terminal cost ``V_x [o]``, ``V_xx [o, o]``."""

    f_x: torch.Tensor
    f_u: torch.Tensor
    l_x: torch.Tensor
    l_u: torch.Tensor
    l_xx: torch.Tensor
    l_uu: torch.Tensor
    l_ux: torch.Tensor
    V_x: torch.Tensor
    V_xx: torch.Tensor


class ILQR:
    """Iterative LQR (Li and Todorov, 2004; regularisation and line search as in Tassa, Erez and
    Todorov, 2012) for differentiable batched dynamics and costs.

    Each iteration linearises the dynamics and quadratises the cost along the current plan with
    torch.autograd, runs an LQR backward pass with Levenberg-Marquardt regularisation ``mu I`` on
    the control Hessian (``mu`` grows tenfold when the pass fails or no step improves the cost and
    shrinks tenfold after a success), and a forward pass that tries all line-search step sizes at
    once as one batch. Action bounds are enforced by clamping each action in the forward pass; the
    backward pass does not know about them, so near a bound a step is a projected, not an exact,
    Newton step.

    Args:
        dynamics: ``(state [B, o], action [B, a]) -> next state [B, o]``, differentiable.
        cost: stage cost ``(state [B, o], action [B, a]) -> [B]``, differentiable, minimised.
        horizon: number of actions ``H``.
        action_space: Box of the actions (infinite bounds mean unbounded).
        terminal_cost: optional ``state [B, o] -> [B]`` on the final state.
        settings: an :class:`ILQRSettings` (its defaults when None); ``**overrides`` replace its
            fields (``iterations``, ``regularization``, ``max_regularization``, ``tolerance``).
        dtype: the dtype states and actions are passed in (default float32); the backward pass runs
            in float64.

    After :meth:`optimize`, ``states [H + 1, o]`` and ``gains [H, a, o]`` hold the final plan's
    trajectory and feedback gains (``u = U_t + K_t (x - states_t)`` tracks it).
    """

    line_search = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625, 0.001953125)

    def __init__(self, dynamics: Dynamics, cost: StageCost, horizon: int, action_space: gym.spaces.Box, *,
                 terminal_cost: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 settings: ILQRSettings | None = None, dtype: torch.dtype = torch.float32, **overrides: Any) -> None:
        if not callable(dynamics) or not callable(cost):
            raise TypeError("dynamics and cost must be callables of (state [B, o], action [B, a])")
        self.dynamics, self.cost, self.terminal_cost = dynamics, cost, terminal_cost
        self.horizon = check_int("horizon", horizon)
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"ILQR needs a Box action space, got {action_space!r}")
        self.bounds = action_bounds(action_space)
        self.act_dim = self.bounds.act_dim
        base = asdict(settings) if settings is not None else {}
        self.settings = settings_from(ILQRSettings, "ilqr", {**base, **overrides})
        s = self.settings
        self.iterations, self.regularization = s.iterations, float(s.regularization)
        self.max_regularization, self.tolerance = float(s.max_regularization), float(s.tolerance)
        self.dtype = dtype
        self.last_info: dict[str, Any] = {}
        self.states: torch.Tensor | None = None
        self.gains: torch.Tensor | None = None
        self._plan: torch.Tensor | None = None

    @classmethod
    def from_reward(cls, dynamics: Dynamics, reward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    horizon: int, action_space: gym.spaces.Box, **options: Any) -> "ILQR":
        """iLQR maximising ``reward(obs [B, o], action [B, a], next_obs [B, o]) -> [B]`` (the
        :func:`forethought.envs.task_functions` form): the stage cost is
        ``-reward(x, u, dynamics(x, u))``."""
        return cls(dynamics, lambda x, u: -reward(x, u, dynamics(x, u)), horizon, action_space, **options)

    # ------------------------------------------------------------------ public API
    def optimize(self, x0: Any, U0: Any = None) -> torch.Tensor:
        """Optimised actions ``[H, a]`` from the initial state ``x0 [o]``, starting from ``U0 [H, a]``
        (default: zeros clamped into the bounds)."""
        x0 = torch.as_tensor(np.asarray(x0.detach().cpu() if isinstance(x0, torch.Tensor) else x0),
                             dtype=self.dtype).reshape(-1)
        if not torch.isfinite(x0).all():
            raise ValueError("x0 must be finite")
        if U0 is None:
            U = self._fresh_action().expand(self.horizon, -1).clone()
        else:
            U = torch.as_tensor(U0, dtype=self.dtype)
            if U.shape != (self.horizon, self.act_dim):
                raise ValueError(f"U0 has shape {tuple(U.shape)}, expected (horizon, act_dim) = "
                                 f"({self.horizon}, {self.act_dim})")
            U = self._clamp(U)
        with torch.enable_grad():
            U = self._iterate(x0, U)
        self._plan = U
        return U.clone()

    def plan(self, x0: Any) -> torch.Tensor:
        """:meth:`optimize` warm-started from the previous plan shifted one step (the new last
        action is zero, clamped into the bounds); keeps the new plan."""
        start = None if self._plan is None else shift_steps(self._plan, self._fresh_action())
        return self.optimize(x0, start)

    def reset(self) -> None:
        """Forget the warm start."""
        self._plan = None

    # ------------------------------------------------------------------ pieces
    def _fresh_action(self) -> torch.Tensor:
        return self._clamp(torch.zeros(self.act_dim, dtype=self.dtype))

    def _clamp(self, U: torch.Tensor) -> torch.Tensor:
        low, high = self.bounds.low.to(U.dtype), self.bounds.high.to(U.dtype)
        return torch.maximum(torch.minimum(U, high), low)

    def _step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        next_x = self.dynamics(x, u)
        if not isinstance(next_x, torch.Tensor) or next_x.shape != x.shape:
            raise ValueError(f"dynamics must return next states of shape {tuple(x.shape)}, got "
                             f"{getattr(next_x, 'shape', type(next_x).__name__)}")
        return next_x.to(self.dtype)

    def _total_cost(self, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """``[n]`` costs of ``n`` trajectories ``X [n, H + 1, o]``, ``U [n, H, a]``."""
        n, o = X.shape[0], X.shape[-1]
        stage = self.cost(X[:, :-1].reshape(-1, o), U.reshape(-1, self.act_dim))
        if not isinstance(stage, torch.Tensor) or stage.shape != (n * self.horizon,):
            raise ValueError(f"cost must return shape ({n * self.horizon},) for {n * self.horizon} "
                             f"(state, action) pairs, got {getattr(stage, 'shape', type(stage).__name__)}")
        total = stage.reshape(n, self.horizon).to(torch.float64).sum(dim=1)
        if self.terminal_cost is not None:
            total = total + self.terminal_cost(X[:, -1]).to(torch.float64)
        return total

    def _forward(self, x0: torch.Tensor, X: torch.Tensor, U: torch.Tensor, k: torch.Tensor, K: torch.Tensor,
                 steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll out ``u_t = clamp(U_t + step k_t + K_t (x_t - X_t))`` for every step size in
        ``steps [n]`` at once: returns ``X [n, H + 1, o]``, ``U [n, H, a]``, costs ``[n]``."""
        with torch.no_grad():
            x = x0.expand(steps.shape[0], -1)
            states, actions = [x], []
            for t in range(self.horizon):
                u = U[t] + steps[:, None] * k[t] + (x - X[t]).to(torch.float64) @ K[t].T
                u = self._clamp(u.to(self.dtype))
                x = self._step(x, u)
                states.append(x)
                actions.append(u)
            X_new, U_new = torch.stack(states, dim=1), torch.stack(actions, dim=1)
            return X_new, U_new, self._total_cost(X_new, U_new)

    def _expand(self, X: torch.Tensor, U: torch.Tensor) -> _Expansion:
        """Linearise the dynamics and quadratise the costs along ``X [H + 1, o]``, ``U [H, a]``."""
        x = X[:-1].detach().clone().requires_grad_(True)
        u = U.detach().clone().requires_grad_(True)
        f_x, f_u = _jacobian_rows(self.dynamics(x, u), (x, u))
        l_x, l_u = _jacobian_rows(self.cost(x, u).unsqueeze(-1), (x, u), create_graph=True)
        l_x, l_u = l_x[:, 0], l_u[:, 0]
        l_xx, l_xu = _jacobian_rows(l_x, (x, u))
        _, l_uu = _jacobian_rows(l_u, (x, u))
        o = X.shape[-1]
        V_x, V_xx = torch.zeros(o, dtype=torch.float64), torch.zeros(o, o, dtype=torch.float64)
        if self.terminal_cost is not None:
            xf = X[-1:].detach().clone().requires_grad_(True)
            (g,) = _jacobian_rows(self.terminal_cost(xf).unsqueeze(-1), (xf,), create_graph=True)
            (h,) = _jacobian_rows(g[:, 0], (xf,))
            V_x, V_xx = g[0, 0].double(), symmetric(h[0].double())
        double = lambda t: t.detach().to(torch.float64)  # noqa: E731
        return _Expansion(double(f_x), double(f_u), double(l_x), double(l_u), symmetric(double(l_xx)),
                          symmetric(double(l_uu)), double(l_xu).transpose(1, 2), V_x.detach(), V_xx.detach())

    def _backward(self, e: _Expansion, mu: float) -> tuple[torch.Tensor, torch.Tensor, float, float] | None:
        """Gains ``k [H, a]``, ``K [H, a, o]`` and the expected cost change terms, or None when a
        regularised control Hessian is not positive definite."""
        V_x, V_xx = e.V_x, e.V_xx
        ks, Ks, linear, quadratic = [], [], 0.0, 0.0
        identity = torch.eye(self.act_dim, dtype=torch.float64)
        for t in reversed(range(self.horizon)):
            f_x, f_u = e.f_x[t], e.f_u[t]
            Q_x, Q_u = e.l_x[t] + f_x.T @ V_x, e.l_u[t] + f_u.T @ V_x
            Q_xx = e.l_xx[t] + f_x.T @ V_xx @ f_x
            Q_uu = e.l_uu[t] + f_u.T @ V_xx @ f_u
            Q_ux = e.l_ux[t] + f_u.T @ V_xx @ f_x
            regularized = symmetric(Q_uu) + mu * identity
            if not positive_definite(regularized):
                return None
            gains = -torch.linalg.solve(regularized, torch.cat([Q_u.unsqueeze(-1), Q_ux], dim=1))
            k, K = gains[:, 0], gains[:, 1:]
            V_x = Q_x + K.T @ Q_uu @ k + K.T @ Q_u + Q_ux.T @ k
            V_xx = symmetric(Q_xx + K.T @ Q_uu @ K + K.T @ Q_ux + Q_ux.T @ K)
            linear += float(k @ Q_u)
            quadratic += float(0.5 * k @ Q_uu @ k)
            ks.append(k)
            Ks.append(K)
        return torch.stack(ks[::-1]), torch.stack(Ks[::-1]), linear, quadratic

    def _iterate(self, x0: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        H, o = self.horizon, x0.shape[0]
        no_k, no_K = torch.zeros(H, self.act_dim, dtype=torch.float64), torch.zeros(H, self.act_dim, o,
                                                                                  dtype=torch.float64)
        X, _, cost = self._forward(x0, torch.zeros(H + 1, o, dtype=self.dtype), U, no_k, no_K,
                                   torch.zeros(1, dtype=torch.float64))
        X, cost = X[0], float(cost[0])
        if not math.isfinite(cost):
            raise ValueError(f"the cost of the initial plan is not finite ({cost})")
        initial_cost, mu, converged, accepted, iteration, K = cost, self.regularization, False, 0, 0, no_K
        steps = torch.tensor(self.line_search, dtype=torch.float64)
        for iteration in range(1, self.iterations + 1):
            expansion = self._expand(X, U)
            gains = self._backward(expansion, mu)
            while gains is None and mu <= self.max_regularization:
                mu = max(10.0 * mu, _SMALLEST_REGULARIZATION)
                gains = self._backward(expansion, mu)
            if gains is None:
                break
            k, K, linear, quadratic = gains
            expected = -(steps * linear + steps ** 2 * quadratic)  # predicted decrease per step size, >= 0
            if float(expected[0]) <= self.tolerance * (1.0 + abs(cost)):
                converged = True  # the model predicts no meaningful improvement: a stationary point
                break
            X_try, U_try, costs = self._forward(x0, X, U, k, K, steps)
            decrease = cost - costs
            good = torch.isfinite(costs) & (decrease > 1e-4 * expected)
            if not good.any():
                mu = max(10.0 * mu, _SMALLEST_REGULARIZATION)
                if mu > self.max_regularization:
                    break
                continue
            best = int(good.nonzero()[0])  # the largest step that decreases the cost enough
            X, U, improvement, cost = X_try[best], U_try[best], float(decrease[best]), float(costs[best])
            accepted += 1
            mu = mu / 10.0 if mu / 10.0 >= _SMALLEST_REGULARIZATION else 0.0
            if improvement <= self.tolerance * (1.0 + abs(cost)):
                converged = True
                break
        self.states, self.gains = X.detach().clone(), K.to(self.dtype)
        self.last_info = {"iterations": iteration, "accepted_steps": accepted, "cost": cost,
                          "initial_cost": initial_cost, "converged": converged, "regularization": mu}
        return U.detach()


class ILQROptimizer(TrajectoryOptimizer):
    """iLQR in MPC: each plan runs :class:`ILQR` from the warm start (the previous plan shifted
    one step, its new last action zero clamped into the bounds; zeros at the first plan) on the
    objective's expected step and reward. Proposals, if given, are scored with the warm start and
    the best of them is where iLQR starts. The plan is scored once by the objective
    (``last_info["best_score"]``); ``last_info`` also holds iLQR's own figures (``cost``,
    ``accepted_steps``, ...) and ``solver`` the last :class:`ILQR` (its ``states`` and ``gains``).
    Box action spaces only; its settings are :class:`ILQRSettings`."""

    name = "ilqr"
    settings_class = ILQRSettings
    needs_dynamics = True

    def __init__(self, action_space: gym.spaces.Box, horizon: int, *, generator: torch.Generator | None = None,
                 settings: Any = None, **overrides: Any) -> None:
        super().__init__(action_space, horizon, generator=generator, settings=settings, **overrides)
        self.solver: ILQR | None = None

    def solver_settings(self) -> ILQRSettings:
        """The settings each plan's :class:`ILQR` runs with."""
        return self.settings

    def _start_state(self, initial: torch.Tensor | None) -> torch.Tensor | None:
        return initial

    def _fresh_state_step(self) -> torch.Tensor:
        return self.bounds.project(torch.zeros(self.act_dim, device=self.bounds.low.device))

    def _search(self, objective: Objective, state: torch.Tensor | None) -> SearchResult:
        if not isinstance(objective, RolloutObjective):
            raise TypeError(f"optimizer {self.name!r} differentiates the model step by step, so it needs the objective "
                            f"of a TrajectoryEvaluator (evaluator.objective(obs)), got {type(objective).__name__}")
        start = state if state is not None else self._fresh_state_step().expand(self.horizon, -1).clone()
        candidates, evaluations = self._seeded(start.unsqueeze(0)), 0
        if candidates.shape[0] > 1:
            scores = evaluate(objective, candidates)
            evaluations += candidates.shape[0]
            start = candidates[int(torch.argmax(scores))]
        # the solver's small sequential matrix work runs on the CPU; the model and reward where they live
        device = start.device
        step = lambda x, u: objective.step(x.to(device), u.to(device)).to(x.device)  # noqa: E731
        reward = lambda x, u, n: objective.reward(x.to(device), u.to(device), n.to(device)).to(x.device)  # noqa: E731
        self.solver = ILQR.from_reward(step, reward, self.horizon, self.action_space,
                                       settings=self.solver_settings(), dtype=start.dtype)
        plan = self.bounds.project(self.solver.optimize(objective.obs, start.cpu()).to(device))
        score = evaluate(objective, plan.unsqueeze(0))
        info = {**self.solver.last_info, "evaluations": evaluations + 1, "vetoed": int((score == -math.inf).sum())}
        return SearchResult(plan, float(score[0]), plan, info)


class LQROptimizer(ILQROptimizer):
    """The LQR step in MPC: one iLQR iteration per plan, i.e. the LQR solution of the model
    linearised and the reward quadratised along the warm-started plan (with iLQR's line search).
    Exact for linear dynamics with a quadratic reward; for others a real-time iteration that
    refines the plan once per control step. Its settings are :class:`LQRSettings`."""

    name = "lqr"
    settings_class = LQRSettings

    def solver_settings(self) -> ILQRSettings:
        return ILQRSettings(iterations=1, regularization=self.settings.regularization,
                            max_regularization=self.settings.max_regularization)
