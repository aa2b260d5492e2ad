"""Discrete actions at equal real-step budgets: MuZero, PETS with the categorical CEM planner, and
Stable-Baselines3's DQN as the model-free reference, on CartPole-v1 and Acrobot-v1.

Each (environment, algorithm, seed) learns once up to the largest budget and is evaluated when it
passes each budget: the mean return of ``--eval-episodes`` deterministic episodes from fixed start
states (reset seeds 10000, 10001, ...; the same for every algorithm). MuZero and PETS learn a whole
episode at a time, so they are evaluated after the episode that crosses the budget and the steps
actually taken are printed beside the budget; DQN is evaluated at the exact step.

* MuZero: ``forethought run muzero`` defaults (25 simulations; overrides with ``--set muzero:KEY=VALUE``).
* PETS: the reward and termination learned from its own transitions (neither environment has
  registered functions), ``agent.planner.optimizer=cem`` with the settings in :data:`PETS_DEFAULTS`
  (smaller than PETS's defaults so that a step plans in well under a second on one thread).
* DQN: Stable-Baselines3's DQN with the RL Baselines3 Zoo settings for each environment
  (:data:`DQN_ZOO`, from ``hyperparams/dqn.yml``); ``--dqn default`` uses SB3's defaults. Needs
  the benchmark extra: ``pip install -e .[bench]``.

Every result is appended as one JSON line to ``--out`` as soon as it is measured, and the table
of means is printed at the end.

    OMP_NUM_THREADS=1 python benchmarks/discrete_control.py --envs CartPole-v1,Acrobot-v1 \\
        --algos muzero,dqn,pets --budgets 5000,10000 --seeds 0,1,2 --threads 1
    OMP_NUM_THREADS=1 python benchmarks/discrete_control.py --search-speed 200   # ms per search
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from forethought.agents import AGENTS
from forethought.config import load_config
from forethought.data.env_loop import episode_returns

EVAL_SEED = 10_000
PETS_DEFAULTS = ["agent.planner.optimizer=cem", "agent.planner.settings={population: 100, elites: 10, iterations: 3}",
                 "agent.planner.particles=2", "agent.model.ensemble_size=3"]
DQN_ZOO = {  # RL Baselines3 Zoo, hyperparams/dqn.yml
    "CartPole-v1": dict(learning_rate=2.5e-4, batch_size=512, buffer_size=100_000, learning_starts=0, gamma=0.99,
                        target_update_interval=5000, train_freq=16, gradient_steps=4, exploration_fraction=0.06,
                        exploration_final_eps=0.11),
    "Acrobot-v1": dict(learning_rate=2.5e-4, batch_size=512, buffer_size=100_000, learning_starts=0, gamma=0.99,
                       target_update_interval=5000, train_freq=16, gradient_steps=4, exploration_fraction=0.06,
                       exploration_final_eps=0.11),
}


def evaluate(env: gym.Env, act: Callable, episodes: int, reset: Callable | None = None) -> float:
    """Mean return of ``episodes`` episodes from the fixed evaluation starts."""
    return float(np.mean(episode_returns(env, act, range(EVAL_SEED, EVAL_SEED + episodes), reset=reset)))


def run_ours(algo: str, env_id: str, seed: int, budgets: list[int], eval_episodes: int, overrides: list[str],
             report: Callable[[dict], None]) -> None:
    """MuZero or PETS through the forethought agent API, evaluated after the episode passing each budget."""
    from forethought.experiments.run_config import run_config_class

    defaults = PETS_DEFAULTS if algo == "pets" else []
    config = load_config(run_config_class(algo), None, [f"env={env_id}", *defaults, *overrides]).agent
    agent = AGENTS[algo](gym.make(env_id), config, seed=seed)
    eval_env, start = gym.make(env_id), time.perf_counter()
    for budget in budgets:
        while agent.env_steps < budget:
            agent.learn(episodes=1)
        learn_s = time.perf_counter() - start
        score = evaluate(eval_env, lambda obs: agent.act(obs, deterministic=True), eval_episodes, agent.reset)
        agent.reset()
        report({"env": env_id, "algo": algo, "seed": seed, "budget": budget, "env_steps": agent.env_steps,
                "eval_return": score, "learn_s": learn_s})
        start = time.perf_counter() - learn_s  # evaluation time is not learning time


def run_dqn(env_id: str, seed: int, budgets: list[int], eval_episodes: int, settings: str,
            report: Callable[[dict], None]) -> None:
    """SB3 DQN learning for the largest budget in one call (its exploration schedule spans it),
    evaluated at each budget exactly."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    kwargs = DQN_ZOO.get(env_id, {}) if settings == "zoo" else {}
    model = DQN("MlpPolicy", gym.make(env_id), seed=seed, verbose=0, **kwargs)
    eval_env, start = gym.make(env_id), time.perf_counter()

    class EvaluateAtBudgets(BaseCallback):
        def _on_step(self) -> bool:
            nonlocal start
            if self.num_timesteps in budgets:
                learn_s = time.perf_counter() - start
                score = evaluate(eval_env, lambda obs: int(model.predict(obs, deterministic=True)[0]), eval_episodes)
                report({"env": env_id, "algo": f"dqn-{settings}", "seed": seed, "budget": self.num_timesteps,
                        "env_steps": self.num_timesteps, "eval_return": score, "learn_s": learn_s})
                start = time.perf_counter() - learn_s
            return True

    model.learn(total_timesteps=budgets[-1], callback=EvaluateAtBudgets())


class TorchSearchModel:
    """The search's single-state calls answered by the PyTorch network itself (for timing against
    :class:`~forethought.models.muzero_net.FrozenMuZero`)."""

    def __init__(self, net) -> None:
        self.net = net

    def initial_inference(self, obs: np.ndarray):
        latent, logits, value = self.net.initial_inference(torch.as_tensor(obs, dtype=torch.float32)[None])
        return latent, logits[0].numpy(), float(value)

    def recurrent_inference(self, latent, action: int):
        nxt, reward, logits, value = self.net.recurrent_inference(latent, torch.tensor([action]))
        return nxt, float(reward), logits[0].numpy(), float(value)


def search_speed(searches: int, simulations: int) -> None:
    """Milliseconds per search of MuZero's default CartPole-sized networks: the NumPy snapshot the
    agent searches against the PyTorch network called once per simulation."""
    from forethought.models.muzero_net import FrozenMuZero, MuZeroNet
    from forethought.planning.mcts import MCTSSettings, search

    net = MuZeroNet(4, 2, torch.Generator().manual_seed(0))
    settings, obs = MCTSSettings(simulations=simulations), np.zeros(4)
    for name, model in (("numpy snapshot", FrozenMuZero(net)), ("torch network", TorchSearchModel(net))):
        rng = np.random.default_rng(0)
        for _ in range(5):
            search(model, obs, settings, 0.99, rng)
        start = time.perf_counter()
        for _ in range(searches):
            search(model, obs, settings, 0.99, rng)
        print(f"{name}: {1000 * (time.perf_counter() - start) / searches:.2f} ms per {simulations}-simulation search")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1")
    parser.add_argument("--algos", default="muzero,dqn,pets", help="muzero, pets, dqn")
    parser.add_argument("--budgets", default="5000,10000", help="real environment steps, increasing")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--dqn", default="zoo", choices=("zoo", "default"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="discrete_control.jsonl", help="JSON lines, appended")
    parser.add_argument("--set", action="append", default=[], metavar="ALGO:KEY=VALUE",
                        help="an override of one algorithm's run config, e.g. muzero:agent.search.simulations=50")
    parser.add_argument("--search-speed", type=int, default=0, metavar="N",
                        help="only time N searches (25 simulations) with the NumPy snapshot and the torch network")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.search_speed:
        search_speed(args.search_speed, 25)
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    if budgets != sorted(set(budgets)):
        parser.error(f"--budgets must increase, got {budgets}")
    overrides: dict[str, list[str]] = defaultdict(list)
    for item in args.set:
        algo, _, override = item.partition(":")
        overrides[algo].append(override)
    results = []

    def report(row: dict) -> None:
        results.append(row)
        print(f"{row['env']:12s} {row['algo']:12s} seed {row['seed']}  budget {row['budget']:6d}  steps "
              f"{row['env_steps']:6d}  eval return {row['eval_return']:8.1f}  learning {row['learn_s']:7.1f} s",
              flush=True)
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    for env_id in args.envs.split(","):
        for algo in args.algos.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                if algo == "dqn":
                    run_dqn(env_id, seed, budgets, args.eval_episodes, args.dqn, report)
                else:
                    run_ours(algo, env_id, seed, budgets, args.eval_episodes, overrides[algo], report)
    print("\n| env | algorithm | budget | evaluation return, mean (per seed) |\n| --- | --- | --- | --- |")
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in results:
        groups[(row["env"], row["algo"], row["budget"])].append(row["eval_return"])
    for (env_id, algo, budget), scores in groups.items():
        per_seed = ", ".join(f"{s:.1f}" for s in scores)
        print(f"| {env_id} | {algo} | {budget} | {statistics.mean(scores):.1f} ({per_seed}) |")


if __name__ == "__main__":
    main()
