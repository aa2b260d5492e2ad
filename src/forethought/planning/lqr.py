"""Linear-quadratic regulators (iterative LQR is in :mod:`forethought.planning.ilqr`).

- :func:`lqr`: finite-horizon LQR for ``x' = A x + B u + c`` by the backward Riccati recursion,
  regulating ``x`` to ``x_target``. The affine term and the target are handled by augmenting the
  state with a constant 1, so the gains are exact for the affine problem.
- :func:`infinite_horizon_lqr`: the stationary gain, from the discrete algebraic Riccati equation
  solved by the structure-preserving doubling algorithm (each doubling step does the work of
  twice as many Riccati steps as the last, so it converges in a few dozen steps).
- :class:`LQRController`: ``u = K x + k`` clipped to an action space; built from a fitted
  :class:`~forethought.models.LinearGaussian` (or any model's linearisation at a point, see
  :meth:`~forethought.models.DynamicsModel.linearization`) with :meth:`LQRController.from_linear_model`.

Sign convention everywhere: the control law is ``u = K x + k`` (the minus sign is inside ``K``),
and costs are minimised. Riccati algebra runs in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from forethought.models.base import DynamicsModel, require_model
from forethought.planning.optimizer import action_bounds
from forethought.planning.settings import check_int

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


def symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return 0.5 * (matrix + matrix.transpose(-1, -2))


def positive_definite(S: torch.Tensor) -> bool:
    """Whether the symmetric ``S`` is positive definite. (An eigenvalue test rather than a
    Cholesky factorisation: on some CPU builds the factorisation of tiny matrices is slow.)"""
    return bool(torch.isfinite(S).all()) and float(torch.linalg.eigvalsh(S)[0]) > 0.0


def _riccati_step(P: torch.Tensor, A: torch.Tensor, B: torch.Tensor, Q: torch.Tensor, R: torch.Tensor,
                  N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One backward step: the gain ``K`` (``u = K x``) and the cost-to-go matrix before it."""
    S = symmetric(R + B.T @ P @ B)
    if not positive_definite(S):
        raise ValueError("R + B^T P B is not positive definite: R must be positive definite (and Q, Qf "
                         "positive semi-definite)")
    G = B.T @ P @ A + N.T
    K = -torch.linalg.solve(S, G)
    return K, symmetric(Q + A.T @ P @ A + G.T @ K)


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
    if not positive_definite(symmetric(R)):
        raise ValueError("R must be positive definite")
    R_inv_Nt = torch.linalg.solve(R, N.T)
    A_k, H_k = A - B @ R_inv_Nt, symmetric(Q - N @ R_inv_Nt)
    G_k = symmetric(B @ torch.linalg.solve(R, B.T))
    identity, o = torch.eye(A.shape[0], dtype=torch.float64), A.shape[0]
    converged = False
    for _ in range(max_doublings):
        W = torch.linalg.solve(identity + G_k @ H_k, torch.cat([A_k, G_k @ A_k.T], dim=1))
        W_A, W_G = W[:, :o], W[:, o:]  # (I + G H)^-1 A and (I + G H)^-1 G A^T
        H_next = symmetric(H_k + A_k.T @ H_k @ W_A)
        G_k, A_k = symmetric(G_k + A_k @ W_G), A_k @ W_A
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
    def from_linear_model(cls, model: DynamicsModel, Q: Any, R: Any, horizon: int | None = None, *, Qf: Any = None,
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


def _model_matrices(model: DynamicsModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear model's ``(A, B, c)`` float64, from its :meth:`~forethought.models.DynamicsModel.linearization`."""
    require_model(model)
    return model.linearization()


def lqr_from_model(model: DynamicsModel, Q: Any, R: Any, horizon: int, *, Qf: Any = None, N: Any = None,
                   x_target: Any = None) -> LQRSolution:
    """:func:`lqr` on a fitted :class:`~forethought.models.LinearGaussian`'s ``A``, ``B`` and ``c``."""
    A, B, c = _model_matrices(model)
    return lqr(A, B, Q, R, horizon, Qf=Qf, N=N, c=c, x_target=x_target)
