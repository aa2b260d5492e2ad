"""Closed-loop return against planning time: the same trained model, planned in by several planner
configurations, each controlling the real cart-pole for whole episodes from the same start states.

The model is the one PETS (defaults) has after ``--trials`` trials on cart-pole swing-up. Each
configuration gets the model kind its row names (the pets-paper rows refit a 7-member 4x200
ensemble on the same data), plans every action, and its episodes' mean return and median ms per
action are printed. ``pets-paper float32`` is the algorithm mbrl-lib's PETS agent runs (CEM
350/35/5, 20 particles, TS1, horizon 15), so its return stands for the return of mbrl-lib's
planner; ``benchmarks/mbrl_lib_reference.py`` times mbrl-lib itself on the same configuration.
``icem-350 bfloat16`` is iCEM with the same population, elites and particles but three iterations
of a decaying population (350, 280, 224 candidates), computing in bfloat16.

    python benchmarks/planning_return.py [--episodes 3] [--trials 8] [--rows pets-paper,default]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from forethought import envs
from forethought.agents import PETS, PETSConfig, MPCAgent
from forethought.data.env_loop import run_episode
from forethought.envs import env_task_functions
from forethought.models.config import ModelConfig, build_model
from forethought.planning import PlannerConfig

PAPER_PLANNER = PlannerConfig(optimizer="cem", horizon=15, particles=20, propagation="ts1",
                              settings={"population": 350, "elites": 35, "iterations": 5})
ROWS = {  # name: (model, planner)
    "pets-paper float32": ("paper", PAPER_PLANNER),
    "pets-paper bfloat16": ("paper", dataclasses.replace(PAPER_PLANNER, compute_dtype="bfloat16")),
    "icem-350 bfloat16": ("paper", PlannerConfig(optimizer="icem", horizon=15, particles=20, propagation="ts1",
                                                 compute_dtype="bfloat16",
                                                 settings={"population": 350, "elites": 35, "iterations": 3})),
    "default float32": ("default", PETSConfig().planner),
    "default bfloat16": ("default", dataclasses.replace(PETSConfig().planner, compute_dtype="bfloat16")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8, help="PETS trials that gather the model's data")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = envs.make("cartpole-swingup")
    pets = PETS(env, PETSConfig(), seed=0)
    start = time.perf_counter()
    pets.learn(episodes=args.trials)
    print(f"PETS defaults, {args.trials} trials: returns {[round(r.total_reward, 1) for r in pets.history]}, "
          f"{len(pets.buffer)} transitions ({time.perf_counter() - start:.0f} s)")
    paper = build_model(ModelConfig(ensemble_size=7, hidden_layers=4), PETSConfig().train, 5, 1)
    paper.fit(pets.buffer, generator=torch.Generator().manual_seed(0))
    models = {"default": pets.model, "paper": paper}
    task = env_task_functions(env)
    for name in args.rows.split(","):
        kind, planner = ROWS[name]
        returns, plan_ms = [], []
        for episode in range(args.episodes):
            agent = MPCAgent(models[kind], task, env.action_space, planner, torch.Generator().manual_seed(episode))
            agent.reset()
            returns.append(run_episode(env, agent.act, seed=1000 + episode).total_reward)
            plan_ms += agent.plan_ms[1:]
        print(f"{name:20s}: return {np.mean(returns):6.2f} (episodes {', '.join(f'{r:.1f}' for r in returns)}); "
              f"{statistics.median(plan_ms):7.1f} ms per action (median)", flush=True)


if __name__ == "__main__":
    main()
