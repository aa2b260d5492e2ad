"""Exact batched dynamics of a Gymnasium MuJoCo task whose observation is its physical state.

Tasks such as InvertedPendulum (observation ``[qpos, qvel]``) and HalfCheetah (``[qpos[1:],
qvel]``: the x position is left out, and the dynamics do not depend on it) can be stepped from an
observation: the state is rebuilt (left-out positions set to zero), the action applied for the
task's ``frame_skip`` physics steps with :func:`mujoco.rollout.rollout` (C, one call for the whole
batch), and the observation read back. This is the oracle planners are measured against on
those tasks. Tasks whose observation holds anything else (contact forces, targets, sin/cos of
angles) get ``None``.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
import torch

StepFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mujoco_step(env: gym.Env) -> StepFunction | None:
    """``(obs [B, o], action [B, a]) -> next_obs [B, o]`` for a MuJoCo task whose observation is
    ``[qpos[k:], qvel]`` for some ``k``, else ``None``. The env is reset once (seed 0) to check
    the observation layout, so pass a copy you are not stepping."""
    inner = env.unwrapped
    model = getattr(inner, "model", None)
    if model is None or not hasattr(inner, "frame_skip") or not hasattr(inner, "data"):
        return None
    import mujoco
    from mujoco import rollout

    obs, _ = env.reset(seed=0)
    data = inner.data
    nq, nv = model.nq, model.nv
    skipped = next((k for k in range(nq + 1) if obs.shape == (nq - k + nv,)
                    and np.allclose(obs, np.concatenate([data.qpos[k:], data.qvel]))), None)
    if skipped is None or model.na != 0:
        return None
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state_size = mujoco.mj_stateSize(model, spec)
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    frame_skip, scratch = int(inner.frame_skip), mujoco.MjData(model)

    def step(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        o = obs.detach().cpu().numpy().astype(np.float64)
        a = np.clip(action.detach().cpu().numpy().astype(np.float64), low, high)
        start = np.zeros((o.shape[0], state_size))
        # FULLPHYSICS state: [time, qpos, qvel, act, ...]; left-out leading positions stay 0
        start[:, 1 + skipped:1 + nq] = o[:, :nq - skipped]
        start[:, 1 + nq:1 + nq + nv] = o[:, nq - skipped:]
        states, _ = rollout.rollout(model, scratch, start, np.repeat(a[:, None, :], frame_skip, axis=1))
        last = states[:, -1]
        next_obs = np.concatenate([last[:, 1 + skipped:1 + nq], last[:, 1 + nq:1 + nq + nv]], axis=1)
        return torch.from_numpy(next_obs).to(dtype=obs.dtype, device=obs.device)

    return step
