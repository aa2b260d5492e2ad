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
import dataclasses

import numpy as np
import torch

from forethought.data import ReplayBuffer
from forethought.data.env_loop import EnvLoop, ReplayRecorder
from forethought.evaluation.compounding import open_loop_rollout, trajectory_windows
from forethought.experiments.evaluate import load_run_agent
from forethought.seeding import derive_seed


def diagnose(path: str, horizon: int | None = None, start: int = 0) -> dict:
    """The reward and dynamics figures above for run directory ``path``; ``horizon`` defaults to
    the planner's horizon (the one it chose, where it is ``auto``), ``start`` picks the run's
    evaluation start. R^2 is None where the episode's rewards are all equal."""
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
    batch = buffer.all()
    horizon = horizon or agent.planning_horizon
    with torch.no_grad():
        one_step = agent.model.predict(batch.obs, batch.action).mean
    real_next = task_model.quality(batch)
    model_next = task_model.quality(dataclasses.replace(batch, next_obs=one_step))
    next_obs = batch.next_obs.to(torch.float64)
    spread = next_obs.std(dim=0, unbiased=False).clamp_min(1e-8)
    obs0, actions, true_obs = trajectory_windows(buffer, horizon)
    rollout = open_loop_rollout(agent.model, obs0, actions).mean
    error = (rollout - true_obs.to(torch.float64)).abs() / spread  # [W, H, o]
    return {"run": path, "algo": algo, "return": episode.total_reward, "steps": episode.steps,
            "reward_mean": float(batch.reward.mean()), "reward_std": float(batch.reward.std(unbiased=False)),
            "reward_r2_real_next": real_next["reward_r2"], "reward_r2_model_next": model_next["reward_r2"],
            "horizon": horizon,
            "error_1": np.median(error[:, 0].numpy(), axis=0), "error_h": np.median(error[:, -1].numpy(), axis=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories of forethought run pets")
    parser.add_argument("--horizon", type=int, default=None, help="open-loop steps (default: the planner's horizon)")
    parser.add_argument("--start", type=int, default=0, help="which of the run's evaluation starts to play")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.set_printoptions(precision=2, suppress=True, linewidth=200)
    for path in args.runs:
        d = diagnose(path, args.horizon, args.start)
        print(f"{d['run']} ({d['algo']}): episode return {d['return']:.1f} over {d['steps']} agent steps; reward per "
              f"step mean {d['reward_mean']:.3f}, std {d['reward_std']:.3f}", flush=True)
        r2 = [None if v is None else round(v, 3) for v in (d["reward_r2_real_next"], d["reward_r2_model_next"])]
        print(f"  learned reward R^2: {r2[0]} given the real next observation, {r2[1]} given the model's "
              f"one-step prediction")
        print(f"  open-loop error / spread per observation dimension (median over windows), 1 step: {d['error_1']}")
        print(f"  {d['horizon']} steps: {d['error_h']}", flush=True)


if __name__ == "__main__":
    main()
