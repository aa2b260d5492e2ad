"""DeepMind Control from states with learned rewards: evaluation returns at fixed budgets of raw
environment steps, per task, algorithm and seed, beside published 100k-step figures.

Every run is ``forethought run ALGO --env dm_control/TASK-v0`` through the one run loop, with the
task's shipped preset (action repeat) and no other settings, so the reward and termination are
learned (``agent.reward=auto``: nothing is registered for DeepMind Control). ``env_steps`` count
raw environment steps (action repeats included). One line per run:

    task algo seed: budget -> evaluation return ...; learned reward held-out MSE / R^2; s per 1000 steps

    python benchmarks/dmc_learned_reward.py --tasks cartpole-swingup --algos pets --seeds 0,1,2 --budgets 10000
    python benchmarks/dmc_learned_reward.py --tasks pendulum-swingup --budgets 10000,20000
    python benchmarks/dmc_learned_reward.py --tasks pendulum-swingup,cartpole-swingup --random-episodes 5

``--true-reward`` registers the task's exact reward, written by hand from the observation (where
one is written below: pendulum-swingup), so the planner plans with it instead of a learned one:
what the learned reward costs.

``--random-episodes N`` only plays N episodes of uniform random actions per task (at the preset's
action repeat) and prints what they earn: how sparse the reward is before any learning.

Published 100k-step returns (TD-MPC2 and SAC as reported in the TD-MPC2 paper, Hansen et al.
2024, whose step counts are raw environment steps) are printed beside them.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from forethought import envs
from forethought.data.env_loop import episode_returns, random_policy
from forethought.experiments.presets import describe, resolve_run_config, run_info
from forethought.experiments.run import start_run

PUBLISHED_100K = {  # task: (TD-MPC2, SAC)
    "cartpole-swingup": (839, 835),
    "pendulum-swingup": (724, 96),
    "reacher-easy": (937, 540),
    "cheetah-run": (519, 310),
    "walker-walk": (962, 708),
}


def pendulum_swingup_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """DeepMind Control pendulum-swingup's reward of one raw step: 1 where the pole's vertical
    component (observation 0, ``orientation`` first) is within 8 degrees of upright, else 0. Under
    an action repeat the planner scores one agent step by its end state alone."""
    return (next_obs[:, 0] >= math.cos(math.radians(8))).to(next_obs.dtype)


TRUE_REWARDS = {"pendulum-swingup": pendulum_swingup_reward}


def run_one(env: str, algo: str, seed: int, budgets: list[int], eval_episodes: int, out: Path,
            extra: list[str]) -> dict:
    """One run of ``forethought run ALGO --env ENV`` (its preset applied) to the largest budget,
    evaluated at every budget; its returns, quality and cost, and ``training``: the training
    episodes' ``(env_steps, return)``."""
    overrides = [f"env={env}", f"seed={seed}", f"steps={max(budgets)}", f"eval_every={min(budgets)}",
                 f"eval_episodes={eval_episodes}", "video=false", f"out={out}", "episodes=null", *extra]
    config, preset = resolve_run_config(algo, None, overrides, "auto")
    start = time.perf_counter()
    rows: list[dict] = []
    summary = start_run(algo, config, callback=rows.append, overwrite=True, info=run_info(preset))
    evaluations = {r["env_steps"]: r["eval_return"] for r in rows if r["eval_return"] is not None}
    at_budget = {b: next((v for s, v in sorted(evaluations.items()) if s >= b), None) for b in budgets}
    return {"preset": describe(preset), "returns": at_budget, "quality": summary.get("task_quality", {}),
            "s_per_1000": 1000 * (time.perf_counter() - start) / max(summary["env_steps"], 1),
            "best": summary["best_return"], "training": [(r["env_steps"], r["return"]) for r in rows]}


def random_play(task: str, episodes: int) -> str:
    """What ``episodes`` episodes of uniform random actions earn on ``task`` at its preset's repeat."""
    config, _ = resolve_run_config("pets", None, [f"env=dm_control/{task}-v0"], "auto")
    env = envs.ActionRepeat(envs.make(config.env), config.action_repeat)
    env.action_space.seed(0)
    returns = episode_returns(env, random_policy(env.action_space), list(range(episodes)))
    return (f"{task}: {episodes} episodes of random actions at action repeat {config.action_repeat}: returns "
            f"{np.round(returns, 1).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="cartpole-swingup,pendulum-swingup")
    parser.add_argument("--algos", default="pets")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", default="10000,20000", help="raw environment steps at which to report")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--true-reward", action="store_true", help="plan with the task's exact reward (see above)")
    parser.add_argument("--random-episodes", type=int, default=0, help="only measure random play, N episodes")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="run config overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    if args.random_episodes:
        for task in args.tasks.split(","):
            print(random_play(task, args.random_episodes), flush=True)
        return
    if args.true_reward:
        for task in args.tasks.split(","):
            if task not in TRUE_REWARDS:
                parser.error(f"--true-reward: no exact reward written for {task}; written for {sorted(TRUE_REWARDS)}")
            envs.register_task_functions(f"dm_control/{task}-v0", TRUE_REWARDS[task])
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            for algo in args.algos.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    result = run_one(f"dm_control/{task}-v0", algo, seed, budgets, args.eval_episodes,
                                     Path(scratch) / f"{task}-{algo}-{seed}", args.overrides)
                    returns = ", ".join(f"{b}: {'-' if v is None else f'{v:.1f}'}" for b, v in result["returns"].items())
                    quality = result["quality"]
                    mse = quality.get("reward_mse", {}).get("last")
                    r2 = quality.get("reward_r2", {}).get("last")
                    tdmpc2, sac = PUBLISHED_100K.get(task, (None, None))
                    print(f"{task} {algo} seed {seed} ({result['preset']}): {returns}; best {result['best']:.1f}; "
                          f"learned reward held-out MSE {mse if mse is None else f'{mse:.4g}'}, "
                          f"R^2 {r2 if r2 is None else f'{r2:.3f}'}; {result['s_per_1000']:.0f} s per 1000 env steps; "
                          f"published at 100k: TD-MPC2 {tdmpc2}, SAC {sac}", flush=True)
                    print("  training returns (env steps: return): " + ", ".join(
                        f"{steps}: {ret:.0f}" for steps, ret in result["training"]), flush=True)


if __name__ == "__main__":
    main()
