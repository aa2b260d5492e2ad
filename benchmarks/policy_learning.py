"""Policy learning in the model vs model-free: real environment steps until the policy's evaluation
return first reaches a target, and wall clock per 1,000 real steps, per seed.

Every ``--eval-every`` real steps the current policy (deterministic: the mean action) runs
``--eval-episodes`` episodes in a separate copy of the environment; the first evaluation whose mean
return reaches the target gives the step count. Algorithms: ``sac``, ``dyna``, ``mbpo`` (ours) and
``sb3-sac`` (Stable-Baselines3's SAC with its default settings; needs ``pip install -e .[bench]``).

    python benchmarks/policy_learning.py --env InvertedPendulum-v5 --algos mbpo,sac --steps 10000 --target 950
    python benchmarks/policy_learning.py --env Pendulum-v1 --algos mbpo,dyna,sac,sb3-sac --steps 5000 --target -200
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from forethought.agents import AGENTS
from forethought.config import load_config
from forethought.data.env_loop import episode_returns
from forethought.seeding import derive_seed


class Ours:
    """One of our agents, learning ``chunk`` real steps at a time."""

    def __init__(self, algo: str, env_id: str, seed: int, overrides: list[str]) -> None:
        agent_class = AGENTS[algo]
        self.agent = agent_class(gym.make(env_id), load_config(agent_class.config_class, None, overrides), seed=seed)

    def learn(self, steps: int) -> None:
        self.agent.learn(steps=steps)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, deterministic=True)

    def rollout_lengths(self) -> str:
        """MBPO's imagined rollout length in each training episode, run-length coded ("1x12, 3x4":
        12 episodes at 1, then 4 at 3); empty for agents without one."""
        lengths = [r.info.get("rollout_length") for r in self.agent.history]
        if not any(lengths):
            return ""
        return ", ".join(f"{length}x{len(list(run))}" for length, run in itertools.groupby(lengths))


class StableBaselinesSAC:
    def __init__(self, env_id: str, seed: int) -> None:
        from stable_baselines3 import SAC as SB3SAC

        self.model = SB3SAC("MlpPolicy", gym.make(env_id), seed=seed, device="cpu", verbose=0)

    def learn(self, steps: int) -> None:
        self.model.learn(total_timesteps=steps, reset_num_timesteps=False)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=True)[0]


def run(algo: str, args: argparse.Namespace, seed: int) -> tuple[int | None, list[float], float, str]:
    """``(steps at the first evaluation reaching the target or None, evaluation returns, wall s of
    learning, rollout lengths per training episode)``."""
    learner = StableBaselinesSAC(args.env, seed) if algo == "sb3-sac" else Ours(algo, args.env, seed, args.overrides.get(algo, []))
    returns, learning_s, reached, eval_env = [], 0.0, None, gym.make(args.env)
    for steps in range(args.eval_every, args.steps + 1, args.eval_every):
        start = time.perf_counter()
        learner.learn(args.eval_every)
        learning_s += time.perf_counter() - start
        starts = [derive_seed(seed, "eval", k) for k in range(args.eval_episodes)]  # the same for every algorithm
        returns.append(float(np.mean(episode_returns(eval_env, learner.act, starts))))
        if returns[-1] >= args.target and reached is None:
            reached = steps
            if not args.full:
                break
    return reached, returns, learning_s, learner.rollout_lengths() if isinstance(learner, Ours) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--algos", default="mbpo,sac")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=5000, help="real-step budget per run")
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="keep learning after the target is reached")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="ALGO:key=value",
                        help="config override for one of our algorithms, e.g. mbpo:policy_updates=10")
    args = parser.parse_args()
    args.overrides = {}
    for item in args.set:
        algo, _, override = item.partition(":")
        args.overrides.setdefault(algo, []).append(override)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    for algo in args.algos.split(","):
        reached_steps, per_1000 = [], []
        for seed in seeds:
            reached, returns, learning_s, lengths = run(algo, args, seed)
            steps_used = len(returns) * args.eval_every
            per_1000.append(1000 * learning_s / steps_used)
            reached_steps.append(reached if reached is not None else None)
            print(f"{algo:8s} {args.env} seed {seed}: " + (f"reached {args.target:g} at {reached} steps" if reached
                  else f"not reached in {steps_used} steps") + f"; eval returns {np.round(returns, 1).tolist()}; "
                  f"{per_1000[-1]:.1f} s per 1000 real steps"
                  + (f"; rollout lengths by training episode {lengths}" if lengths else ""), flush=True)
        hits = [r for r in reached_steps if r is not None]
        print(f"{algo:8s}: {len(hits)}/{len(seeds)} seeds reached {args.target:g}"
              + (f", median {statistics.median(hits):g} steps" if hits else "")
              + f"; median {statistics.median(per_1000):.1f} s per 1000 real steps", flush=True)


if __name__ == "__main__":
    main()
