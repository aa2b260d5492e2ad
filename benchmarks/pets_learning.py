"""PETS sample efficiency over seeds: trials (and real steps) until a target return.

The target is ``oracle_fraction`` (90 %) of the oracle planner's return (same planner, exact dynamics; our own
environments) unless ``--target`` gives an absolute return (Gymnasium tasks).

    python benchmarks/pets_learning.py --env cartpole-swingup --seeds 0,1,2,3,4 --trials 10
    python benchmarks/pets_learning.py --env InvertedPendulum-v5 --trials 5 --target 950
    python benchmarks/pets_learning.py --env Pendulum-v1 --trials 10 --target -200
    python benchmarks/pets_learning.py --env cartpole-swingup --seeds 0,1,2 reward=learned termination=learned
    python benchmarks/pets_learning.py --env cartpole-swingup --trials 6 --target 78 train.lr_schedule=plateau
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from forethought import envs
from forethought.agents import PETS, PETSConfig
from forethought.config import load_config
from forethought.experiments.run import fraction_of, oracle_return
from forethought.experiments.run_config import PETSRunConfig


def learned_reward(history: list) -> str:
    """The learned reward's held-out MSE and R^2 per planned trial (nothing when the reward is known)."""
    figures = [(r.info["reward_mse"], r.info["reward_r2"]) for r in history if r.info.get("reward_mse") is not None]
    if not figures:
        return ""
    return "; learned reward held-out MSE / R^2 per fit " + ", ".join(
        f"{mse:.3g}/{'-' if r2 is None else f'{r2:.2f}'}" for mse, r2 in figures)


def planner_choices(history: list, config: PETSConfig) -> str:
    """The horizon of every planned trial with ``horizon=auto``, and the exploration bonus in force
    with one (nothing otherwise)."""
    planned = [r for r in history if not r.random]
    parts = []
    if config.planner.horizon == "auto":
        parts.append("horizons " + ",".join(str(r.info["planning_horizon"]) for r in planned))
    if config.planner.exploration_bonus > 0:
        parts.append("exploration bonus " + ",".join(f"{r.info['exploration_bonus']:.2g}" for r in planned))
    return "".join(f"; {part}" for part in parts)


def lr_multiplier(agent: PETS, config: PETSConfig) -> str:
    """With ``train.lr_schedule=plateau``: the model's learning-rate multiplier after its last fit."""
    plateau = getattr(agent.model, "lr_plateau", None)
    if config.train.lr_schedule != "plateau" or plateau is None:
        return ""
    return f"; model lr multiplier after the last fit {plateau.scale:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cartpole-swingup")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--target", type=float, default=None, help="absolute target return (default: 90 %% of oracle)")
    parser.add_argument("--oracle-episodes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when runs share the cores)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="PETSConfig overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(PETSConfig, None, args.overrides)
    target = args.target
    if target is None:
        start = time.perf_counter()
        oracle = oracle_return(PETSRunConfig(env=args.env, oracle_episodes=args.oracle_episodes), config)
        if oracle is None:
            parser.error(f"{args.env} has no exact dynamics for the oracle planner: give --target")
        target = fraction_of(oracle, PETSRunConfig.oracle_fraction)
        print(f"oracle planner on {args.env}: mean return {oracle:.2f} over {args.oracle_episodes} episodes "
              f"({time.perf_counter() - start:.0f} s); target {target:.2f}")
    print(f"PETS on {args.env}, {args.trials} trials per seed, target return {target:.2f}")
    reached = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        start = time.perf_counter()
        agent = PETS(envs.make(args.env), config, seed=seed)
        history = agent.learn(episodes=args.trials)
        returns = [r.total_reward for r in history]
        hit = next((r for r in history if r.total_reward >= target), None)
        reached.append(hit is not None)
        plan_ms = np.mean([r.info["plan_ms_per_step"] for r in history if r.info["plan_ms_per_step"] is not None])
        print(f"seed {seed}: returns {np.round(returns, 1).tolist()}; "
              + (f"target reached at trial {hit.episode} after {hit.env_steps} env steps" if hit else "target not reached")
              + f"; mean of the last 5 trials {np.mean(returns[-5:]):.1f}"
              + f"; plan {plan_ms:.0f} ms/step; {time.perf_counter() - start:.0f} s"
              + learned_reward(history) + planner_choices(history, config) + lr_multiplier(agent, config), flush=True)
    print(f"{sum(reached)} of {len(reached)} seeds reached the target within {args.trials} trials")


if __name__ == "__main__":
    main()
