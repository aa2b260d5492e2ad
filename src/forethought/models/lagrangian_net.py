"""A Lagrangian neural network: a learned mass matrix ``M(q)``, potential ``V(q)`` and input map
``B(q)``, accelerations from the Euler–Lagrange equations, integrated over one control step.

For generalised coordinates ``q [n]`` and velocities ``dq [n]`` the Lagrangian is
``T - V = 1/2 dq^T M(q) dq - V(q)``; with generalised force ``tau = B(q) u - D dq`` (input
map and a learned non-negative diagonal damping) the Euler–Lagrange equations give

    M ddq = tau - dM/dt dq + dT/dq - dV/dq,     dM/dt = sum_j dq_j dM/dq_j,
                                                 dT/dq_j = 1/2 dq^T (dM/dq_j) dq.

``M = L L^T`` with ``L`` lower triangular with a softplus diagonal, so ``M`` is positive definite
for every ``q``. One MLP of ``q``'s features (angles as ``cos, sin``; positions standardised) gives
``L``'s entries, ``V`` and ``B``; the derivatives ``dL/dq`` and ``dV/dq`` are carried through
the MLP in forward mode alongside its values (one pass, no autograd inside a prediction), so
planning needs no double backward and training needs only one.

Scales: ``M`` is ``S L L^T S`` with ``S = diag(acc_scale)^-1/2``, so that an untrained network's
accelerations are of the size of the data's (``acc_scale``: the spread of one-step velocity
changes over the step length); actions are divided by their spread. The step is ``substeps``
semi-implicit (symplectic) Euler steps ``dq += h ddq(q, dq); q += h dq`` with ``h = dt /
substeps``: with ``V`` and ``M`` of a real system and no damping, the energy of an unforced
rollout oscillates within a band of width ``O(h)`` and does not drift.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from forethought.envs.coordinates import CoordinateLayout
from forethought.models.ensemble_mlp import EnsembleMLP

MIN_DIAGONAL = 1e-3
"""Smallest diagonal entry of ``L`` (before the scale ``S``): keeps ``M`` away from singular."""

ACCELERATION_LIMIT = 10.0
"""Accelerations are clipped to this many times the largest one in the data, per coordinate: far
from the data a learned mass matrix can be nearly singular, and velocity-squared terms integrated
over many substeps would otherwise overflow a planner's rollout."""

INITIAL_DAMPING = -5.0
"""Raw damping before softplus: a rate of 0.0067 per second at initialisation."""


def cholesky_solve(chol: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^-1 rhs`` for lower-triangular ``chol [..., n, n]`` and ``rhs [..., n]`` by forward
    and back substitution (n is a handful of coordinates, so a loop over n beats batched LAPACK)."""
    n = chol.shape[-1]
    y: list[torch.Tensor] = []
    for i in range(n):
        acc = rhs[..., i] - sum((chol[..., i, k] * y[k] for k in range(i)), torch.zeros_like(rhs[..., i]))
        y.append(acc / chol[..., i, i])
    x: list[torch.Tensor | None] = [None] * n
    for i in reversed(range(n)):
        acc = y[i] - sum((chol[..., k, i] * x[k] for k in range(i + 1, n)), torch.zeros_like(y[i]))
        x[i] = acc / chol[..., i, i]
    return torch.stack(x, dim=-1)


def euler_lagrange(chol: torch.Tensor, chol_grad: torch.Tensor, force: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """Accelerations ``[..., n]`` of a system with mass matrix ``M = L L^T``.

    Args:
        chol: ``L [..., n, n]``, lower triangular with a positive diagonal.
        chol_grad: ``dL/dq_j`` stacked on axis -3: ``[..., n (j), n, n]``.
        force: every generalised force but the inertial ones, ``[..., n]`` (``tau - dV/dq``).
        velocity: ``dq [..., n]``.
    """
    chol_t = chol.transpose(-1, -2).unsqueeze(-3)
    mass_grad = chol_grad @ chol_t + chol.unsqueeze(-3) @ chol_grad.transpose(-1, -2)  # dM/dq_j [..., j, n, n]
    mass_grad_v = (mass_grad @ velocity[..., None, :, None]).squeeze(-1)  # (dM/dq_j) dq: [..., j, n]
    mass_dot_v = (velocity.unsqueeze(-1) * mass_grad_v).sum(dim=-2)  # sum_j dq_j (dM/dq_j) dq
    kinetic_grad = 0.5 * (mass_grad_v * velocity.unsqueeze(-2)).sum(dim=-1)  # 1/2 dq^T (dM/dq_j) dq
    return cholesky_solve(chol, force - mass_dot_v + kinetic_grad)


class LagrangianNetwork(nn.Module):
    """K Lagrangian networks (member axis first) predicting normalised one-step changes.

    Called like :class:`~forethought.models.ensemble_mlp.EnsembleDynamicsNetwork` (so
    :func:`~forethought.models.training.train_ensemble` trains it): raw ``[obs, action]`` rows
    ``[K, B, o + a]`` or ``[B, o + a]`` in, ``((next_obs - obs - delta_mean) / delta_std [K, B, o],
    None)`` out. The buffers (``dt`` in seconds, coordinate and action scales, delta statistics)
    are set from data by :meth:`set_scales` and saved with the weights.

    Args:
        layout: which observation entries are positions, angles and velocities.
        act_dim: action length.
        ensemble_size, hidden_size, hidden_layers: the MLP's shape (0 hidden layers: ``L``
            entries, ``V`` and ``B`` linear in the features).
        substeps: integration steps per control step.
    """

    probabilistic = False

    def __init__(self, layout: CoordinateLayout, act_dim: int, ensemble_size: int = 1, hidden_size: int = 200,
                 hidden_layers: int = 3, substeps: int = 4) -> None:
        super().__init__()
        n, k = layout.coordinates, int(ensemble_size)
        self.layout, self.n, self.act_dim, self.obs_dim = layout, n, int(act_dim), layout.obs_dim
        self.substeps = int(substeps)
        self.tri_rows, self.tri_cols = torch.tril_indices(n, n).unbind(0)
        self.features = sum(2 if angle else 1 for angle in layout.angles)
        self.body = EnsembleMLP(self.features, len(self.tri_rows) + 1 + n * self.act_dim, k, hidden_size,
                                hidden_layers)
        self.damping = nn.Parameter(torch.full((k, 1, n), INITIAL_DAMPING))
        for name, size in (("position_mean", n), ("position_std", n), ("acc_scale", n), ("acc_limit", n),
                           ("action_scale", act_dim),
                           ("delta_mean", self.obs_dim), ("delta_std", self.obs_dim)):
            self.register_buffer(name, torch.zeros(size) if name.endswith("mean") else torch.ones(size))
        self.acc_limit.fill_(math.inf)  # no bound before the data gives one
        self.register_buffer("dt", torch.tensor(1.0))

    @property
    def ensemble_size(self) -> int:
        return self.body.ensemble_size

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the MLP from ``generator`` and reset the damping."""
        self.body.reset_parameters(generator)
        with torch.no_grad():
            self.damping.fill_(INITIAL_DAMPING)

    def bound_penalty(self) -> torch.Tensor:
        """Zeros ``[K]``: a deterministic network has no log-std bounds."""
        return torch.zeros(self.ensemble_size, device=self.damping.device)

    # ------------------------------------------------------------------ scales from data
    @torch.no_grad()
    def set_scales(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
                   dt: float | None) -> dict[str, float]:
        """Set the buffers from transitions ``[N, .]``: ``dt`` (given, or the least-squares ``h``
        in ``q' - q = h (dq + dq') / 2``, angle differences wrapped), coordinate and action
        scales (the delta statistics are the owner's to set). Returns ``{"dt": seconds, "dt_r2": fit of that relation}``."""
        q, v = self.layout.split(obs.double())
        q_next, v_next = self.layout.split(next_obs.double())
        moved = q_next - q
        angles = torch.tensor(self.layout.angles, device=obs.device)
        moved = torch.where(angles, torch.remainder(moved + math.pi, 2 * math.pi) - math.pi, moved)
        mean_v = 0.5 * (v + v_next)
        if dt is None:
            if float(mean_v.pow(2).sum()) <= 0.0:
                raise ValueError("cannot estimate model.dt from data whose velocities are all zero; set model.dt")
            dt = float((moved * mean_v).sum() / mean_v.pow(2).sum())
            if not (math.isfinite(dt) and dt > 0):
                raise ValueError(f"the positions do not move with the velocities in the data (estimated step {dt:.3g} s); "
                                 "check model.coordinates or set model.dt")
        residual = (moved - dt * mean_v).pow(2).sum() / moved.pow(2).sum().clamp_min(1e-12)
        acc = (v_next - v) / dt
        self.dt.fill_(dt)
        self.position_mean.copy_(torch.where(angles, 0.0, q.mean(0)).float())
        self.position_std.copy_(torch.where(angles, 1.0, _spread(q)).float())
        self.acc_scale.copy_(_spread(acc).float())
        self.acc_limit.copy_((ACCELERATION_LIMIT * acc.abs().amax(0)).clamp_min(1e-6).float())
        self.action_scale.copy_(_spread(action.double(), centred=False).float())
        return {"dt": dt, "dt_r2": 1.0 - float(residual)}

    # ------------------------------------------------------------------ mechanics
    def terms(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mechanics at positions ``q [K, B, n]``: ``(L [K, B, n, n], dL/dq_j [K, B, n, n, n],
        V [K, B], dV/dq [K, B, n], B [K, B, n, a])``, all in the network's scaled units."""
        features, tangents = self._features(q)
        value, tangent = self._mlp(features, tangents)
        tri = len(self.tri_rows)
        raw, raw_t = value[..., :tri], tangent[..., :tri]
        diagonal = (self.tri_rows == self.tri_cols).to(q.device)
        entries = torch.where(diagonal, F.softplus(raw) + MIN_DIAGONAL, raw)
        entries_t = torch.where(diagonal, torch.sigmoid(raw).unsqueeze(-2) * raw_t, raw_t)
        scale = self.acc_scale.rsqrt()[self.tri_rows]  # row i of L scaled by acc_scale_i^-1/2
        chol = _lower(entries * scale, self.n, self.tri_rows, self.tri_cols)
        chol_grad = _lower(entries_t * scale, self.n, self.tri_rows, self.tri_cols)
        potential, potential_grad = value[..., tri], tangent[..., tri]
        input_map = value[..., tri + 1:].reshape(*q.shape[:-1], self.n, self.act_dim)
        return chol, chol_grad, potential, potential_grad, input_map

    def acceleration(self, q: torch.Tensor, velocity: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``ddq [K, B, n]`` at ``q``, ``dq`` ``[K, B, n]`` under raw actions ``[K, B, a]``, within
        ``+-acc_limit`` (:data:`ACCELERATION_LIMIT`)."""
        chol, chol_grad, _, potential_grad, input_map = self.terms(q)
        damping = F.softplus(self.damping) / self.acc_scale  # S^2 diag(rate): a rate in 1/s after M^-1
        tau = (input_map @ (action / self.action_scale).unsqueeze(-1)).squeeze(-1) - damping * velocity
        acc = euler_lagrange(chol, chol_grad, tau - potential_grad, velocity)
        return torch.maximum(torch.minimum(acc, self.acc_limit), -self.acc_limit)

    def energy(self, obs: torch.Tensor) -> torch.Tensor:
        """The model's own energy ``T + V`` ``[K, B]`` of observations ``[K, B, o]`` or ``[B, o]``."""
        obs = self._members(obs)
        q, v = self.layout.split(obs)
        chol, _, potential, _, _ = self.terms(q)
        return 0.5 * (chol.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1).pow(2).sum(-1) + potential

    def step(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next observations ``[K, B, o]`` from raw ``obs [K, B, o]`` and ``action [K, B, a]``."""
        q, v = self.layout.split(obs)
        h = self.dt / self.substeps
        for _ in range(self.substeps):
            v = v + h * self.acceleration(q, v, action)
            q = q + h * v
        return self.layout.join(q, v)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(normalised delta [K, B, o], None)`` for raw ``[obs, action]`` rows ``[K, B, o + a]`` or ``[B, o + a]``."""
        x = self._members(x)
        obs, action = x[..., :self.obs_dim], x[..., self.obs_dim:]
        return (self.step(obs, action) - obs - self.delta_mean) / self.delta_std, None

    # ------------------------------------------------------------------ helpers
    def _members(self, x: torch.Tensor) -> torch.Tensor:
        k = self.ensemble_size
        return x.unsqueeze(0).expand(k, *x.shape) if x.ndim == 2 else x

    def _features(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MLP inputs ``[K, B, f]`` (cos, sin of angles; standardised positions) and their
        derivatives w.r.t. each coordinate ``[K, B, n, f]``."""
        parts, grads = [], []
        zeros = torch.zeros_like(q[..., 0])
        for i, angle in enumerate(self.layout.angles):
            if angle:
                cos, sin = torch.cos(q[..., i]), torch.sin(q[..., i])
                parts += [cos, sin]
                grads += [(i, -sin), (i, cos)]
            else:
                parts.append((q[..., i] - self.position_mean[i]) / self.position_std[i])
                grads.append((i, zeros + 1.0 / self.position_std[i]))
        tangents = [torch.stack([g if j == i else zeros for j in range(self.n)], dim=-1) for i, g in grads]
        return torch.stack(parts, dim=-1), torch.stack(tangents, dim=-1)

    def _mlp(self, x: torch.Tensor, dx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP on ``x [K, B, f]`` and, in forward mode, on tangents ``dx [K, B, n, f]``:
        ``(outputs [K, B, out], d outputs / dq [K, B, n, out])``. SiLU between layers."""
        k, rows = x.shape[0], x.shape[1]
        dx = dx.reshape(k, rows * self.n, -1)
        last = len(self.body.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.body.weights, self.body.biases)):
            x, dx = torch.baddbmm(bias, x, weight), torch.bmm(dx, weight)
            if i < last:
                gate = torch.sigmoid(x)
                slope = gate * (1.0 + x * (1.0 - gate))  # d silu(z) / dz
                dx = (dx.reshape(k, rows, self.n, -1) * slope.unsqueeze(2)).reshape(k, rows * self.n, -1)
                x = x * gate
        return x, dx.reshape(k, rows, self.n, -1)


def _lower(entries: torch.Tensor, n: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Lower-triangular ``[..., n, n]`` from its row-major entries ``[..., n(n+1)/2]``."""
    out = entries.new_zeros(*entries.shape[:-1], n * n)
    return out.index_copy(-1, (rows * n + cols).to(entries.device), entries).reshape(*entries.shape[:-1], n, n)


def _spread(x: torch.Tensor, centred: bool = True) -> torch.Tensor:
    """Per-column std (root mean square when not ``centred``) of ``[N, d]``; 1 where it is ~0."""
    s = x.std(0, unbiased=False) if centred and x.shape[0] > 1 else x.pow(2).mean(0).sqrt()
    return torch.where(s > 1e-6, s, torch.ones_like(s))
