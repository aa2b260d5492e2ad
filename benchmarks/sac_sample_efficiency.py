"""Sample efficiency of PETS against Stable-Baselines3's SAC: real environment steps until an
episode's return first reaches a target, per seed, and the ratio SAC steps / PETS steps.

Both count steps the same way: the total number of real environment steps taken when the first
episode (a PETS trial; a SAC training episode, exploration noise included) with a return at or
above the target ends. SAC runs with Stable-Baselines3's default hyper-parameters; a run that
never reaches the target within its budget counts as the budget (a lower bound on its steps,
marked with ">").

With ``--eval-episodes N`` the measure is instead the real steps after which the agent's mean
return over N evaluation episodes from fixed start states (reset seeds 10000, 10001, ...; the
same for both) first reaches the target: where start states decide much of a return (Pendulum's
hanging-down starts cost about -240 even to the exact-model planner), one lucky training episode
says little. PETS is evaluated after every trial (a copy of its model fitted on all data so far
plans the evaluation episodes, so the run itself is untouched), SAC every ``--eval-every`` steps
with its deterministic policy; evaluation steps are not counted.

Needs the benchmark extra: ``pip install -e .[bench]``.

    python benchmarks/sac_sample_efficiency.py --env Pendulum-v1 --target -200 --trials 10 --sac-steps 20000
    python benchmarks/sac_sample_efficiency.py --env InvertedPendulum-v5 --target 950 --trials 5 --sac-steps 30000
    python benchmarks/sac_sample_efficiency.py --env Pendulum-v1 --target -200 --eval-episodes 10 --seeds 0,1,2,3,4 \
        --trials 4 --sac-steps 10000 random_trial_steps=100
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from forethought import envs
from forethought.agents import PETS, MPCAgent, PETSConfig
from forethought.config import load_config
from forethought.data.env_loop import episode_returns

EVAL_SEED = 10_000  # evaluation episodes reset with seeds EVAL_SEED, EVAL_SEED + 1, ...


def pets_eval_return(agent: PETS, env: gym.Env, episodes: int) -> float:
    """Evaluation return of MPC in a copy of ``agent``'s model fitted on all its data so far."""
    model = copy.deepcopy(agent.model)
    generator = torch.Generator().manual_seed(EVAL_SEED)
    model.fit(agent.buffer, generator=generator)
    mpc = MPCAgent(model, agent.task, env.action_space, agent.config.planner, generator)
    return float(np.mean(episode_returns(env, mpc.act, range(EVAL_SEED, EVAL_SEED + episodes), reset=mpc.reset)))


def pets_steps(env_id: str, config: PETSConfig, seed: int, trials: int, target: float, eval_episodes: int = 0
               ) -> tuple[int | None, int, float]:
    """``(steps when the first trial reaching target ended or None, steps used, wall seconds)``;
    with ``eval_episodes``, the first trial after which the evaluation return reaches it."""
    start = time.perf_counter()
    agent = PETS(envs.make(env_id), config, seed=seed)
    eval_env = envs.make(env_id) if eval_episodes else None
    for _ in range(trials):
        result, = agent.learn(episodes=1)
        score = pets_eval_return(agent, eval_env, eval_episodes) if eval_episodes else result.total_reward
        if eval_episodes:
            print(f"  PETS seed {seed}: evaluation return {score:.1f} after {result.env_steps} env steps", flush=True)
        if score >= target:
            return result.env_steps, result.env_steps, time.perf_counter() - start
    return None, agent.env_steps, time.perf_counter() - start


def sac_steps(env_id: str, seed: int, budget: int, target: float, eval_episodes: int = 0, eval_every: int = 200
              ) -> tuple[int | None, int, float]:
    """The same for Stable-Baselines3's SAC (default settings), stopping at the target."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    eval_env = envs.make(env_id) if eval_episodes else None

    class StopAtTarget(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.reached: int | None = None

        def _on_step(self) -> bool:
            if eval_episodes:
                if self.num_timesteps % eval_every == 0:
                    act = lambda obs: self.model.predict(obs, deterministic=True)[0]
                    score = float(np.mean(episode_returns(eval_env, act, range(EVAL_SEED, EVAL_SEED + eval_episodes))))
                    print(f"  SAC  seed {seed}: evaluation return {score:.1f} after {self.num_timesteps} env steps",
                          flush=True)
                    if score >= target:
                        self.reached = self.num_timesteps
                return self.reached is None
            for info in self.locals["infos"]:
                if "episode" in info and info["episode"]["r"] >= target:
                    self.reached = self.num_timesteps
            return self.reached is None

    start = time.perf_counter()
    model = SAC("MlpPolicy", envs.make(env_id), seed=seed, device="cpu", verbose=0)
    callback = StopAtTarget()
    model.learn(total_timesteps=budget, callback=callback)
    return callback.reached, model.num_timesteps, time.perf_counter() - start


def describe(reached: int | None, used: int) -> str:
    return str(reached) if reached is not None else f">{used}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--target", type=float, required=True, help="episode return to reach")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=10, help="PETS trial budget")
    parser.add_argument("--sac-steps", type=int, default=20_000, help="SAC environment-step budget")
    parser.add_argument("--skip-pets", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when runs share the cores)")
    parser.add_argument("--skip-sac", action="store_true")
    parser.add_argument("--eval-episodes", type=int, default=0,
                        help="measure the mean return over this many fixed-start evaluation episodes (0: training episodes)")
    parser.add_argument("--eval-every", type=int, default=200, help="SAC environment steps between evaluations")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="PETSConfig overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(PETSConfig, None, args.overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    steps: dict[str, list[int]] = {"PETS": [], "SAC": []}
    for name, skip, run in (("PETS", args.skip_pets, lambda s: pets_steps(args.env, config, s, args.trials, args.target, args.eval_episodes)),
                            ("SAC", args.skip_sac, lambda s: sac_steps(args.env, s, args.sac_steps, args.target, args.eval_episodes, args.eval_every))):
        if skip:
            continue
        for seed in seeds:
            reached, used, wall = run(seed)
            steps[name].append(reached if reached is not None else used)
            print(f"{name:4s} {args.env} seed {seed}: target {args.target:g} reached after {describe(reached, used)} "
                  f"env steps ({wall:.0f} s, {1000 * wall / max(used, 1):.0f} ms per env step)", flush=True)
    if steps["PETS"] and steps["SAC"]:
        pets, sac = statistics.median(steps["PETS"]), statistics.median(steps["SAC"])
        print(f"median env steps to return {args.target:g}: PETS {pets:g}, SAC {sac:g} -> "
              f"SAC needs {sac / pets:.1f}x as many real steps")


if __name__ == "__main__":
    main()
