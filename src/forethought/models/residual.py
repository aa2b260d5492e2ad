"""Physics prior plus learned correction: next_obs = simulator(obs, action) + learned residual.

The simulator is any known (possibly wrong) batched step function; the wrapped learned model is
fitted to what the simulator gets wrong, which needs far less data than learning the whole motion.

    model = ResidualModel(lambda o, a: cartpole_step(o, a, wrong_params, dt, substeps), ProbabilisticEnsemble(5, 1))
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from forethought.models.base import DynamicsModel, FitReport, Prediction
from forethought.models.checkpointed import model_class

Simulator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Maps obs ``[B, obs_dim]`` and action ``[B, act_dim]`` to the simulated next obs ``[B, obs_dim]``."""


def run_simulator(simulator: Simulator, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``simulator(obs, action)`` in ``obs``'s dtype; a clear error if it is not an ``[B, obs_dim]`` tensor."""
    out = simulator(obs, action)
    if not isinstance(out, torch.Tensor) or out.shape != obs.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"simulator returned {shape}, expected a tensor of shape {tuple(obs.shape)}")
    return out.to(obs.dtype)


class ResidualModel(DynamicsModel):
    """A known simulator step corrected by any learned :class:`DynamicsModel`.

    The learned model is trained on targets ``obs + (next_obs - simulator(obs, action))``, so the
    state change it learns is exactly the simulator's error; its variances are the residual's.
    Planners propagate it as one model (through ``sample`` and ``predict``) whatever the learned
    part is.
    """

    kind = "residual"

    def __init__(self, simulator: Simulator, learned: DynamicsModel) -> None:
        super().__init__(learned.obs_dim, learned.act_dim)
        if not callable(simulator):
            raise TypeError(f"simulator must be callable (obs, action) -> next_obs, got {type(simulator).__name__}")
        self.simulator, self.learned = simulator, learned

    @property
    def probabilistic(self) -> bool:
        return self.learned.probabilistic

    def delta_scale(self) -> torch.Tensor:
        """The learned part's scale of one-step changes (of the simulator's error)."""
        return self.learned.delta_scale()

    def simulate(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The simulator's next obs ``[B, obs_dim]``, shape-checked."""
        return run_simulator(self.simulator, obs, action)

    def _fit(self, obs, action, next_obs, generator) -> FitReport:
        with torch.no_grad():
            simulated = self.simulate(obs, action)
        if not torch.isfinite(simulated).all():
            raise ValueError("simulator produced non-finite next observations on the training data")
        return self.learned.fit(obs, action, obs + (next_obs - simulated), generator=generator)

    def _predict(self, obs, action) -> Prediction:
        correction = self.learned.predict(obs, action)
        return Prediction(self.simulate(obs, action) + (correction.mean - obs),
                          correction.aleatoric_var, correction.epistemic_var)

    def sample(self, obs: Any, action: Any, generator: torch.Generator) -> torch.Tensor:
        obs_t, act_t = self._inputs(obs, action)
        flat_obs, flat_act = obs_t.reshape(-1, self.obs_dim), act_t.reshape(-1, self.act_dim)
        draw = self.simulate(flat_obs, flat_act) + (self.learned.sample(flat_obs, flat_act, generator) - flat_obs)
        return draw.reshape(obs_t.shape)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, config = self.learned._state()
        return ({f"learned.{k}": v for k, v in tensors.items()},
                {"learned_kind": self.learned.kind, "learned_config": config})

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, simulator: Simulator | None = None,
                    **kwargs) -> "ResidualModel":
        if simulator is None:
            raise ValueError("a residual model's simulator is code, not data: pass it when loading, "
                             "DynamicsModel.load(path, simulator=step_fn)")
        learned_cls = model_class(config["learned_kind"])
        inner = {k.removeprefix("learned."): v for k, v in tensors.items() if k.startswith("learned.")}
        learned = learned_cls._from_state(inner, config["learned_config"], obs_dim, act_dim, **kwargs)
        learned.fitted = True
        return cls(simulator, learned)
