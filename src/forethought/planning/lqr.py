"""Linear-quadratic regulators and iterative LQR.

- :func:`lqr`: finite-horizon LQR for ``x' = A x + B u + c`` by the backward Riccati recursion,
  regulating ``x`` to ``x_target``. The affine term and the target are handled by augmenting the
  state with a constant 1, so the gains are exact for the affine problem.
- :func:`infinite_horizon_lqr`: the stationary gain, from the discrete algebraic Riccati equation
  solved by the structure-preserving doubling algorithm (each doubling step does the work of
  twice as many Riccati steps as the last, so it converges in a few dozen steps).
- :class:`LQRController`: ``u = K x + k`` clipped to an action space; built from a fitted
  :class:`~forethought.models.LinearGaussian` with :meth:`LQRController.from_linear_model`.
- :class:`ILQR`: iterative LQR for differentiable dynamics and costs (e.g. a learned model).

Sign convention everywhere: the control law is ``u = K x + k`` (the minus sign is inside ``K``),
and costs are minimised. Riccati algebra runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.planning.optimizer import action_bounds, check_int, check_nonnegative, check_positive, shift_steps

Dynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Batched dynamics: state ``[B, o]``, action ``[B, a]`` -> next state ``[B, o]``."""
StageCost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Batched stage cost: state ``[B, o]``, action ``[B, a]`` -> ``[B]``."""


def _matrix(value: Any, name: str, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    """``value`` as a finite float64 ``[rows, cols]`` tensor (a scalar counts as ``[1, 1]``)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    matrix = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if matrix.ndim == 0:
        matrix = matrix.reshape(1, 1)
    if matrix.ndim != 2 or (rows is not None and matrix.shape[0] != rows) or (
            cols is not None and matrix.shape[1] != cols):
        expected = (rows if rows is not None else "n", cols if cols is not None else "m")
        raise ValueError(f"{name} must have shape ({expected[0]}, {expected[1]}), got {tuple(matrix.shape)}")
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{name} must be finite")
    return matrix


def _vector(value: Any, name: str, size: int) -> torch.Tensor:
    """``value`` as a float64 ``[size]`` tensor (a scalar is broadcast), zeros when None."""
    if value is None:
        return torch.zeros(size, dtype=torch.float64)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    vector = torch.as_tensor(np.asarray(value, dtype=np.float64)).reshape(-1)
    if vector.numel() == 1:
        vector = vector.expand(size).clone()
    if vector.shape != (size,) or not torch.isfinite(vector).all():
        raise ValueError(f"{name} must be a finite vector of length {size}, got {value!r}")
    return vector


def _system(A: Any, B: Any, Q: Any, R: Any, N: Any) -> tuple[torch.Tensor, ...]:
    """Validated float64 ``A [o, o]``, ``B [o, a]``, ``Q [o, o]``, ``R [a, a]``, ``N [o, a]``."""
    A = _matrix(A, "A")
    o = A.shape[0]
    if A.shape != (o, o):
        raise ValueError(f"A must be square, got shape {tuple(A.shape)}")
    B = _matrix(B, "B", o)
    a = B.shape[1]
    N = torch.zeros(o, a, dtype=torch.float64) if N is None else _matrix(N, "N", o, a)
    return A, B, _matrix(Q, "Q", o, o), _matrix(R, "R", a, a), N


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return 0.5 * (matrix + matrix.transpose(-1, -2))


def _positive_definite(S: torch.Tensor) -> bool:
    """Whether the symmetric ``S`` is positive definite. (An eigenvalue test rather than a
    Cholesky factorisation: on some CPU builds the factorisation of tiny matrices is slow.)"""
    return bool(torch.isfinite(S).all()) and float(torch.linalg.eigvalsh(S)[0]) > 0.0


def _riccati_step(P: torch.Tensor, A: torch.Tensor, B: torch.Tensor, Q: torch.Tensor, R: torch.Tensor,
                  N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One backward step: the gain ``K`` (``u = K x``) and the cost-to-go matrix before it."""
    S = _symmetric(R + B.T @ P @ B)
    if not _positive_definite(S):
        raise ValueError("R + B^T P B is not positive definite: R must be positive definite (and Q, Qf "
                         "positive semi-definite)")
    G = B.T @ P @ A + N.T
    K = -torch.linalg.solve(S, G)
    return K, _symmetric(Q + A.T @ P @ A + G.T @ K)


@dataclass
class LQRSolution:
    """Finite-horizon LQR: ``u_t = K_t x_t + k_t`` minimises
    ``sum_{t<H} (d_t^T Q d_t + u_t^T R u_t + 2 d_t^T N u_t) + d_H^T Qf d_H`` with
    ``d = x - x_target``; the optimal cost-to-go from step ``t`` is ``d^T P_t d + 2 p_t^T d + v_t``.

    Shapes: ``K [H, a, o]``, ``k [H, a]``, ``P [H + 1, o, o]``, ``p [H + 1, o]``, ``v [H + 1]``,
    ``x_target [o]``; all float64.
    """

    K: torch.Tensor
    k: torch.Tensor
    P: torch.Tensor
    p: torch.Tensor
    v: torch.Tensor
    x_target: torch.Tensor

    def action(self, state: torch.Tensor, t: int = 0) -> torch.Tensor:
        """``[..., a]`` optimal action at step ``t`` for states ``[..., o]``."""
        state = torch.as_tensor(state, dtype=torch.float64)
        return state @ self.K[t].T + self.k[t]

    def cost_to_go(self, state: torch.Tensor, t: int = 0) -> torch.Tensor:
        """``[...]`` optimal remaining cost from step ``t`` for states ``[..., o]``."""
        d = torch.as_tensor(state, dtype=torch.float64) - self.x_target
        return torch.einsum("...i,ij,...j->...", d, self.P[t], d) + 2.0 * d @ self.p[t] + self.v[t]


def lqr(A: Any, B: Any, Q: Any, R: Any, horizon: int, Qf: Any = None, N: Any = None, *, c: Any = None,
        x_target: Any = None) -> LQRSolution:
    """Finite-horizon LQR for ``x_{t+1} = A x_t + B u_t + c`` by the backward Riccati recursion.

    Args:
        A: ``[o, o]``; B: ``[o, a]``; Q: ``[o, o]`` positive semi-definite; R: ``[a, a]`` positive
            definite; Qf: ``[o, o]`` terminal weight (default ``Q``); N: ``[o, a]`` cross term.
        horizon: number of controls ``H >= 1``.
        c: ``[o]`` constant drift (default zeros).
        x_target: ``[o]`` state to regulate to (default zeros); the costs weigh ``x - x_target``.

    Returns:
        :class:`LQRSolution` with the time-varying gains ``K [H, a, o]`` and offsets ``k [H, a]``.
    """
    A, B, Q, R, N = _system(A, B, Q, R, N)
    o, a = B.shape
    horizon = check_int("horizon", horizon)
    Qf = Q if Qf is None else _matrix(Qf, "Qf", o, o)
    target, drift = _vector(x_target, "x_target", o), _vector(c, "c", o)
    # Augmented state z = [x - x_target, 1]: z' = A_z z + B_z u, with the drift in the last column.
    A_z = torch.zeros(o + 1, o + 1, dtype=torch.float64)
    A_z[:o, :o], A_z[:o, o], A_z[o, o] = A, A @ target + drift - target, 1.0
    B_z = torch.cat([B, torch.zeros(1, a, dtype=torch.float64)])
    N_z = torch.cat([N, torch.zeros(1, a, dtype=torch.float64)])
    Q_z = torch.zeros(o + 1, o + 1, dtype=torch.float64)
    Q_z[:o, :o] = Q
    P = torch.zeros(o + 1, o + 1, dtype=torch.float64)
    P[:o, :o] = Qf
    gains, values = [], [P]
    for _ in range(horizon):
        K, P = _riccati_step(P, A_z, B_z, Q_z, R, N_z)
        gains.append(K)
        values.append(P)
    K_z, P_z = torch.stack(gains[::-1]), torch.stack(values[::-1])
    K = K_z[:, :, :o].contiguous()
    k = K_z[:, :, o] - K @ target
    return LQRSolution(K=K, k=k, P=P_z[:, :o, :o].contiguous(), p=P_z[:, :o, o].contiguous(), v=P_z[:, o, o].clone(),
                       x_target=target)


def infinite_horizon_lqr(A: Any, B: Any, Q: Any, R: Any, N: Any = None, *, tolerance: float = 1e-12,
                         max_doublings: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Stationary LQR for ``x' = A x + B u`` and cost ``x^T Q x + u^T R u + 2 x^T N u`` per step.

    Solves the discrete algebraic Riccati equation with the structure-preserving doubling
    algorithm (Chu, Fan and Lin, 2005) after removing the cross term.

    Returns:
        ``(K [a, o], P [o, o])`` float64: the gain (``u = K x``) and the cost-to-go ``x^T P x``.

    Raises:
        ValueError: if the iteration does not converge or the closed loop ``A + B K`` is not stable
            (``(A, B)`` not stabilisable or ``(A, Q)`` not detectable).
    """
    A, B, Q, R, N = _system(A, B, Q, R, N)
    if not _positive_definite(_symmetric(R)):
        raise ValueError("R must be positive definite")
    R_inv_Nt = torch.linalg.solve(R, N.T)
    A_k, H_k = A - B @ R_inv_Nt, _symmetric(Q - N @ R_inv_Nt)
    G_k = _symmetric(B @ torch.linalg.solve(R, B.T))
    identity, o = torch.eye(A.shape[0], dtype=torch.float64), A.shape[0]
    converged = False
    for _ in range(max_doublings):
        W = torch.linalg.solve(identity + G_k @ H_k, torch.cat([A_k, G_k @ A_k.T], dim=1))
        W_A, W_G = W[:, :o], W[:, o:]  # (I + G H)^-1 A and (I + G H)^-1 G A^T
        H_next = _symmetric(H_k + A_k.T @ H_k @ W_A)
        G_k, A_k = _symmetric(G_k + A_k @ W_G), A_k @ W_A
        if not torch.isfinite(H_next).all():
            break
        converged = float((H_next - H_k).abs().max()) <= tolerance * max(1.0, float(H_next.abs().max()))
        H_k = H_next
        if converged:
            break
    if not converged:
        raise ValueError(f"the Riccati equation did not converge in {max_doublings} doubling steps: check that "
                         f"(A, B) is stabilisable and (A, Q) detectable")
    K, _ = _riccati_step(H_k, A, B, Q, R, N)
    if float(torch.linalg.eigvals(A + B @ K).abs().max()) >= 1.0:
        raise ValueError("the closed loop A + B K is not stable: (A, B) must be stabilisable and (A, Q) "
                         "detectable for an infinite-horizon LQR")
    return K, H_k


class LQRController:
    """Acts with ``u = K x + k``, clipped into ``action_space`` when one is given.

    With the step-0 gains of a finite-horizon solution this is receding-horizon LQR (for a
    time-invariant system re-solving at every step gives the same gains).

    Args:
        K: ``[a, o]`` gain; k: ``[a]`` offset; action_space: optional Box to clip into.
    """

    def __init__(self, K: torch.Tensor, k: torch.Tensor | None = None, action_space: gym.spaces.Box | None = None):
        self.K = torch.as_tensor(K, dtype=torch.float64)
        self.k = torch.zeros(self.K.shape[0], dtype=torch.float64) if k is None else torch.as_tensor(
            k, dtype=torch.float64)
        self.bounds = None if action_space is None else action_bounds(action_space)
        if self.bounds is not None and self.bounds.discrete:
            raise TypeError("LQRController acts in a Box action space, not a Discrete one")

    def __call__(self, obs: Any) -> torch.Tensor:
        """Action ``[..., a]`` (float32) for observations ``[..., o]``."""
        state = torch.as_tensor(np.asarray(obs, dtype=np.float64)) if not isinstance(obs, torch.Tensor) else obs
        action = (state.to(torch.float64) @ self.K.T + self.k).float()
        return action if self.bounds is None else self.bounds.project(action)

    @classmethod
    def from_linear_model(cls, model: Any, Q: Any, R: Any, horizon: int | None = None, *, Qf: Any = None,
                          x_target: Any = None, action_space: gym.spaces.Box | None = None) -> "LQRController":
        """Controller for a fitted :class:`~forethought.models.LinearGaussian` (its ``A``, ``B``, ``c``).

        With ``horizon`` it is receding-horizon LQR (:func:`lqr_from_model`, step-0 gains). With
        ``horizon=None`` it uses the infinite-horizon gain around the equilibrium ``(x_target, u*)``,
        ``u = u* + K (x - x_target)``, where ``u*`` solves ``x_target = A x_target + B u* + c``; the
        cost then weighs ``u - u*`` (an infinite-horizon cost on ``u`` itself would be infinite).
        A ``x_target`` that no action holds still is a ValueError in that case.
        """
        if horizon is not None:
            solution = lqr_from_model(model, Q, R, horizon, Qf=Qf, x_target=x_target)
            return cls(solution.K[0], solution.k[0], action_space)
        A, B, c = _model_matrices(model)
        target = _vector(x_target, "x_target", A.shape[0])
        needed = target - A @ target - c
        u_star = torch.linalg.lstsq(B, needed.unsqueeze(-1)).solution[:, 0]
        miss = float((B @ u_star - needed).abs().max())
        if miss > 1e-8 * (1.0 + float(needed.abs().max())):
            raise ValueError(f"x_target={target.tolist()} is not an equilibrium of the model for any action "
                             f"(closest miss {miss:.3g}); use a finite horizon instead")
        K, _ = infinite_horizon_lqr(A, B, Q, R)
        return cls(K, u_star - K @ target, action_space)


def _model_matrices(model: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not all(hasattr(model, name) for name in ("A", "B", "c")):
        raise TypeError(f"expected a linear model with A, B, c (e.g. forethought.models.LinearGaussian), "
                        f"got {type(model).__name__}")
    if not getattr(model, "fitted", True):
        raise RuntimeError(f"{type(model).__name__} has not been fitted: call fit(...) first")
    return (torch.as_tensor(model.A, dtype=torch.float64), torch.as_tensor(model.B, dtype=torch.float64),
            torch.as_tensor(model.c, dtype=torch.float64))


def lqr_from_model(model: Any, Q: Any, R: Any, horizon: int, *, Qf: Any = None, N: Any = None,
                   x_target: Any = None) -> LQRSolution:
    """:func:`lqr` on a fitted :class:`~forethought.models.LinearGaussian`'s ``A``, ``B`` and ``c``."""
    A, B, c = _model_matrices(model)
    return lqr(A, B, Q, R, horizon, Qf=Qf, N=N, c=c, x_target=x_target)


# ---------------------------------------------------------------------- iterative LQR
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
        iterations: maximum iterations (default 50).
        regularization: initial ``mu >= 0`` (default 1e-6).
        max_regularization: give up (not converged) once ``mu`` exceeds this (default 1e10).
        tolerance: converged when an accepted step lowers the cost by less than
            ``tolerance * (1 + |cost|)`` (default 1e-7).
        dtype: the dtype states and actions are passed in (default float32); the backward pass runs
            in float64.

    After :meth:`optimize`, ``states [H + 1, o]`` and ``gains [H, a, o]`` hold the final plan's
    trajectory and feedback gains (``u = U_t + K_t (x - states_t)`` tracks it).
    """

    line_search = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625, 0.001953125)

    def __init__(self, dynamics: Dynamics, cost: StageCost, horizon: int, action_space: gym.spaces.Box, *,
                 terminal_cost: Callable[[torch.Tensor], torch.Tensor] | None = None, iterations: int = 50,
                 regularization: float = 1e-6, max_regularization: float = 1e10, tolerance: float = 1e-7,
                 dtype: torch.dtype = torch.float32) -> None:
        if not callable(dynamics) or not callable(cost):
            raise TypeError("dynamics and cost must be callables of (state [B, o], action [B, a])")
        self.dynamics, self.cost, self.terminal_cost = dynamics, cost, terminal_cost
        self.horizon = check_int("horizon", horizon)
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"ILQR needs a Box action space, got {action_space!r}")
        self.bounds = action_bounds(action_space)
        self.act_dim = self.bounds.act_dim
        self.iterations = check_int("iterations", iterations)
        self.regularization = check_nonnegative("regularization", regularization)
        self.max_regularization = check_positive("max_regularization", max_regularization)
        self.tolerance = check_nonnegative("tolerance", tolerance)
        self.dtype = dtype
        self.last_info: dict[str, Any] = {}
        self.states: torch.Tensor | None = None
        self.gains: torch.Tensor | None = None
        self._plan: torch.Tensor | None = None

    @classmethod
    def from_reward(cls, dynamics: Dynamics, reward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    horizon: int, action_space: gym.spaces.Box, **settings: Any) -> "ILQR":
        """iLQR maximising ``reward(obs [B, o], action [B, a], next_obs [B, o]) -> [B]`` (the
        :func:`forethought.envs.task_functions` form): the stage cost is
        ``-reward(x, u, dynamics(x, u))``."""
        return cls(dynamics, lambda x, u: -reward(x, u, dynamics(x, u)), horizon, action_space, **settings)

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
            V_x, V_xx = g[0, 0].double(), _symmetric(h[0].double())
        double = lambda t: t.detach().to(torch.float64)  # noqa: E731
        return _Expansion(double(f_x), double(f_u), double(l_x), double(l_u), _symmetric(double(l_xx)),
                          _symmetric(double(l_uu)), double(l_xu).transpose(1, 2), V_x.detach(), V_xx.detach())

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
            regularized = _symmetric(Q_uu) + mu * identity
            if not _positive_definite(regularized):
                return None
            gains = -torch.linalg.solve(regularized, torch.cat([Q_u.unsqueeze(-1), Q_ux], dim=1))
            k, K = gains[:, 0], gains[:, 1:]
            V_x = Q_x + K.T @ Q_uu @ k + K.T @ Q_u + Q_ux.T @ k
            V_xx = _symmetric(Q_xx + K.T @ Q_uu @ K + K.T @ Q_ux + Q_ux.T @ K)
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
