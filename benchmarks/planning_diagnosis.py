"""Where a saved planning agent loses: its learned reward or its dynamics model, on its own episode.

Plays the run's last good checkpoint (``forethought run pets``, a learned reward) for one
deterministic episode from the run's first evaluation start and scores, on that episode's real
transitions (agent steps, action repeats summed):

- the learned reward against the real one: R^2 given the real next observation, and given the
  dynamics model's one-step mean prediction instead (what the planner sees one step ahead);
- the dynamics model's open-loop error per observation dimension after 1 step and after the
  planner's horizon, as a fraction of that dimension's spread (standard deviation) over the
  episode, the median over every window of the episode.

A reward R^2 near 1 with a large open-loop error says the dynamics limit the plan; the reverse,
the reward.

    python benchmarks/planning_diagnosis.py runs/pets
    python benchmarks/planning_diagnosis.py runs/pets --horizon 15 --start 1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from forethought.data import ReplayBuffer
from forethought.data.env_loop import EnvLoop, ReplayRecorder
from forethought.evaluation.compounding import open_loop_rollout, trajectory_windows
from forethought.experiments.evaluate import load_run_agent
from forethought.seeding import derive_seed


def r_squared(predicted: torch.Tensor, real: torch.Tensor) -> float:
    """1 - MSE / variance of ``real`` (1: exact; 0: no better than the mean)."""
    return float(1.0 - (predicted - real).pow(2).mean() / real.var(unbiased=False))


def diagnose(path: str, horizon: int | None = None, start: int = 0) -> dict:
    """The reward and dynamics figures above for run directory ``path``; ``horizon`` defaults to
    the run's planner horizon (15 where it is ``auto``), ``start`` picks the run's evaluation start."""
    algo, config, agent, env = load_run_agent(path)
    try:
        task_model = getattr(agent, "task_model", None)
        if task_model is None or task_model.reward_model is None:
            raise SystemExit(f"{path}: a {algo} run without a learned reward; this diagnosis needs one")
        buffer = ReplayBuffer(env.observation_space.shape[0], env.action_space.shape[0])
        agent.reset()
        episode = EnvLoop(env, ReplayRecorder(buffer)).run(lambda obs: agent.act(obs, deterministic=True),
                                                           derive_seed(config.seed, "eval", start))
    finally:
        env.close()
    arrays = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in buffer.arrays().items()}
    obs, action, next_obs, reward = arrays["obs"], arrays["action"], arrays["next_obs"], arrays["reward"]
    planned = config.agent.planner.horizon
    horizon = horizon or (planned if isinstance(planned, int) else 15)
    with torch.no_grad():
        one_step = agent.model.predict(obs, action).mean
        reward_real_next = task_model.reward_model(obs, action, next_obs)
        reward_model_next = task_model.reward_model(obs, action, one_step)
    spread = next_obs.std(dim=0, unbiased=False).clamp_min(1e-8).to(torch.float64)
    obs0, actions, true_obs = trajectory_windows(buffer, horizon)
    rollout = open_loop_rollout(agent.model, obs0, actions).mean
    error = (rollout - true_obs.to(torch.float64)).abs() / spread  # [W, H, o]
    return {"run": path, "algo": algo, "return": episode.total_reward, "steps": episode.steps,
            "reward_mean": float(reward.mean()), "reward_std": float(reward.std(unbiased=False)),
            "reward_r2_real_next": r_squared(reward_real_next, reward),
            "reward_r2_model_next": r_squared(reward_model_next, reward), "horizon": horizon,
            "error_1": np.median(error[:, 0].numpy(), axis=0), "error_h": np.median(error[:, -1].numpy(), axis=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories of forethought run pets")
    parser.add_argument("--horizon", type=int, default=None, help="open-loop steps (default: the run's planner horizon)")
    parser.add_argument("--start", type=int, default=0, help="which of the run's evaluation starts to play")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.set_printoptions(precision=2, suppress=True, linewidth=200)
    for path in args.runs:
        d = diagnose(path, args.horizon, args.start)
        print(f"{d['run']} ({d['algo']}): episode return {d['return']:.1f} over {d['steps']} agent steps; reward per "
              f"step mean {d['reward_mean']:.3f}, std {d['reward_std']:.3f}", flush=True)
        print(f"  learned reward R^2: {d['reward_r2_real_next']:.3f} given the real next observation, "
              f"{d['reward_r2_model_next']:.3f} given the model's one-step prediction")
        print(f"  open-loop error / spread per observation dimension (median over windows), 1 step: {d['error_1']}")
        print(f"  {d['horizon']} steps: {d['error_h']}", flush=True)


if __name__ == "__main__":
    main()
