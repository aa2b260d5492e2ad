"""Linear-Gaussian dynamics fitted in closed form: s' = A s + B a + c + w, w ~ N(0, Sigma).

The fit is ordinary least squares in float64 on the regressors ``x = [s, a, 1]``. It is posed in
the delta form ``s' - s = (A - I) s + B a + c`` (the convention every model here follows); for
least squares this is the same estimate as regressing ``s'`` directly, because moving ``s`` from
the target to the regressors only shifts the coefficients of ``s`` by the identity and leaves the
residuals unchanged.

When the regressors are rank-deficient (an action that never varies, a state dimension that is a
copy of another, fewer rows than parameters) the least-squares solution is not unique. With
``ridge == 0`` that is an error; with ``ridge > 0`` the fit adds ``ridge * ||[A - I, B]||^2`` to the
squared error (the bias ``c`` is not penalised), which always has a unique solution and shrinks
unidentified directions to "no change".
"""

from __future__ import annotations

from typing import Any

import torch

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.serialization import CheckpointError

# Columns whose unit-normalised design has a singular value below this fraction of the largest
# are treated as linearly dependent: the estimate along them would be noise amplified ~1e10 times.
_RANK_RTOL = 1e-10


class LinearGaussian(DynamicsModel):
    """Closed-form linear-Gaussian model.

    Args:
        obs_dim: observation length ``o``.
        act_dim: action length ``a``.
        ridge: L2 penalty on ``[A - I, B]`` (not on ``c``); 0 means plain least squares, which
            refuses rank-deficient data.

    After ``fit`` the float64 tensors ``A [o, o]``, ``B [o, a]``, ``c [o]``, ``noise_cov [o, o]``
    and ``gram_inverse [p, p]`` (``(X^T X + ridge * I')^{-1}`` with ``p = o + a + 1`` and ``I'`` the
    identity without its bias entry) describe the model.
    """

    kind = "linear"

    def __init__(self, obs_dim: int, act_dim: int, ridge: float = 0.0) -> None:
        super().__init__(obs_dim, act_dim)
        if not ridge >= 0.0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.ridge = float(ridge)
        self.n_samples = 0
        p = self.obs_dim + self.act_dim + 1
        self.A = torch.eye(self.obs_dim, dtype=torch.float64)
        self.B = torch.zeros(self.obs_dim, self.act_dim, dtype=torch.float64)
        self.c = torch.zeros(self.obs_dim, dtype=torch.float64)
        self.noise_cov = torch.zeros(self.obs_dim, self.obs_dim, dtype=torch.float64)
        self.gram_inverse = torch.zeros(p, p, dtype=torch.float64)

    @property
    def n_params(self) -> int:
        """Regression coefficients per output dimension: ``o + a + 1``."""
        return self.obs_dim + self.act_dim + 1

    # ------------------------------------------------------------------ fitting
    def _design(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Regressors ``[B, o + a + 1]`` = ``[s, a, 1]`` in float64."""
        obs, action = obs.to(torch.float64), action.to(torch.float64)
        return torch.cat([obs, action, torch.ones_like(obs[:, :1])], dim=-1)

    def _column_names(self) -> list[str]:
        return ([f"obs[{i}]" for i in range(self.obs_dim)] + [f"action[{j}]" for j in range(self.act_dim)]
                + ["bias"])

    def _dependent_columns(self, design: torch.Tensor) -> list[str]:
        """Names of regressors that are (numerically) linear combinations of earlier ones."""
        norms = design.norm(dim=0)
        scaled = design / torch.where(norms > 0, norms, torch.ones_like(norms))
        kept: list[int] = []
        dependent: list[str] = []
        for j, name in enumerate(self._column_names()):
            candidate = scaled[:, kept + [j]]
            if norms[j] > 0 and int(torch.linalg.matrix_rank(candidate, rtol=_RANK_RTOL)) == len(kept) + 1:
                kept.append(j)
            else:
                dependent.append(name)
        return dependent

    def _check_rank(self, design: torch.Tensor) -> None:
        n, p = design.shape
        dependent = self._dependent_columns(design)
        if not dependent:
            return
        reasons = []
        if n < p:
            reasons.append(f"only {n} rows for {p} parameters per output dimension (obs {self.obs_dim} + "
                           f"action {self.act_dim} + bias)")
        reasons.append(f"column(s) {', '.join(dependent)} are constant zero or a linear combination of the "
                       f"columns before them in [obs, action, bias]")
        raise ValueError("LinearGaussian: the data is rank-deficient, so A, B, c are not identifiable: "
                         + "; ".join(reasons) + ". Collect more varied data (e.g. excite every action) "
                         "or use LinearGaussian(..., ridge > 0) for a ridge-regularised fit.")

    def _fit(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             generator: torch.Generator) -> FitReport:
        n, p, o = obs.shape[0], self.n_params, self.obs_dim
        if n == 0:
            raise ValueError("LinearGaussian: cannot fit on 0 transitions")
        design = self._design(obs, action)
        delta = next_obs.to(torch.float64) - obs.to(torch.float64)
        if self.ridge == 0.0:
            self._check_rank(design)
            augmented_design, augmented_target = design, delta
        else:
            # Ridge as least squares on extra rows sqrt(ridge) * I (zero target), bias row left out:
            # the same minimiser as (X^T X + ridge I') theta = X^T Y, without forming X^T X.
            penalty = torch.zeros(p - 1, p, dtype=torch.float64, device=self.device)
            penalty[:, : p - 1] = torch.eye(p - 1, dtype=torch.float64, device=self.device) * self.ridge ** 0.5
            augmented_design = torch.cat([design, penalty])
            augmented_target = torch.cat([delta, torch.zeros(p - 1, o, dtype=torch.float64, device=self.device)])
        q, r = torch.linalg.qr(augmented_design)
        theta = torch.linalg.solve_triangular(r, q.T @ augmented_target, upper=True)  # [p, o]
        residual = delta - design @ theta
        dof = n - p
        method = "least squares" if self.ridge == 0.0 else f"ridge least squares (ridge={self.ridge:g})"
        message = f"closed-form {method} on {n} transitions ({p} parameters per output dimension)"
        if dof < 1:
            message += (f"; only {n} rows for {p} parameters, so noise_cov divides by 1 instead of "
                        f"N - p = {dof} and is unreliable")
            dof = 1
        noise_cov = residual.T @ residual / dof
        self.A = torch.eye(o, dtype=torch.float64, device=self.device) + theta[:o].T
        self.B = theta[o:o + self.act_dim].T.contiguous()
        self.c = theta[-1].clone()
        self.noise_cov = 0.5 * (noise_cov + noise_cov.T)
        self.gram_inverse = torch.cholesky_inverse(r, upper=True)
        self.n_samples = n
        mse = float(residual.pow(2).mean())
        return FitReport(train_loss=[mse], epochs=1, best_epoch=0, message=message)

    # ------------------------------------------------------------------ prediction
    def _predict(self, obs: torch.Tensor, action: torch.Tensor) -> Prediction:
        x = self._design(obs, action)
        mean = obs.to(torch.float64) @ self.A.T + action.to(torch.float64) @ self.B.T + self.c
        noise_var = torch.diagonal(self.noise_cov)
        leverage = ((x @ self.gram_inverse) * x).sum(dim=-1, keepdim=True)  # x^T G x, [B, 1]
        dtype = obs.dtype
        return Prediction(mean=mean.to(dtype), aleatoric_var=noise_var.expand_as(mean).to(dtype),
                          epistemic_var=(leverage * noise_var).to(dtype))

    def linearization(self, obs: Any = None, action: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A, B, c)`` (float64 copies): the model is linear, so every point gives the same and
        none is needed."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} has not been fitted: call fit(...) first")
        return self.A.clone(), self.B.clone(), self.c.clone()

    def noise_factor(self) -> torch.Tensor:
        """A matrix ``L [o, o]`` with ``L L^T = noise_cov``: the Cholesky factor, or a symmetric
        square root from the eigendecomposition when ``noise_cov`` is singular (noise-free data)."""
        factor, info = torch.linalg.cholesky_ex(self.noise_cov)
        if int(info) == 0:
            return factor
        eigenvalues, eigenvectors = torch.linalg.eigh(self.noise_cov)
        return eigenvectors * eigenvalues.clamp_min(0.0).sqrt()

    def sample(self, obs: Any, action: Any, generator: torch.Generator) -> torch.Tensor:
        """One draw ``[..., o]`` of ``A s + B a + c + w`` with ``w ~ N(0, noise_cov)`` (the full
        covariance, so correlated noise stays correlated). Parameter uncertainty is not sampled."""
        mean = self.predict(obs, action).mean
        standard = torch.randn(mean.shape, generator=generator, dtype=torch.float64, device=mean.device)
        return mean + (standard @ self.noise_factor().T).to(mean.dtype)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {"A": self.A, "B": self.B, "c": self.c, "noise_cov": self.noise_cov,
                   "gram_inverse": self.gram_inverse}
        return tensors, {"ridge": self.ridge, "n_samples": self.n_samples}

    @classmethod
    def _from_state(cls, tensors: dict[str, torch.Tensor], config: dict[str, Any], obs_dim: int,
                    act_dim: int, **kwargs: Any) -> "LinearGaussian":
        model = cls(obs_dim, act_dim, ridge=float(config.get("ridge", 0.0)))
        model.n_samples = int(config.get("n_samples", 0))
        p = obs_dim + act_dim + 1
        expected = {"A": (obs_dim, obs_dim), "B": (obs_dim, act_dim), "c": (obs_dim,),
                    "noise_cov": (obs_dim, obs_dim), "gram_inverse": (p, p)}
        for name, shape in expected.items():
            if name not in tensors:
                raise CheckpointError(f"linear checkpoint is missing tensor '{name}'")
            if tuple(tensors[name].shape) != shape:
                raise CheckpointError(f"linear checkpoint tensor '{name}' has shape {tuple(tensors[name].shape)}, "
                                 f"expected {shape}")
            setattr(model, name, tensors[name].to(torch.float64))
        return model
