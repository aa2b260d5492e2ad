"""Planning speed: milliseconds per action of the MPC agent, and achieved GFLOP/s of the ensemble
forward passes against the machine's measured float32 matrix-multiply peak.

Configurations:
- ``pets-paper``: 7-member 4x200 probabilistic ensemble (5 elites), CEM population 350,
  35 elites, 5 iterations, horizon 15, 20 particles, TS1 (the configuration mbrl-lib's PETS
  example uses; mbrl-lib 0.2.0 took a median 1.57 s per action on a 2-core machine of this kind).
- ``default``: forethought's PETS defaults (5-member 3x200, CEM 250/25/4, 10 particles, TS-inf).

    python benchmarks/planning_speed.py [--actions 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from forethought import envs
from forethought.agents import MPCAgent, PETSConfig, PlannerConfig
from forethought.data import collect
from forethought.envs import env_task_functions
from forethought.models import ProbabilisticEnsemble

CONFIGS = {
    "pets-paper": dict(members=7, layers=4, hidden=200,
                       planner=PlannerConfig(optimizer="cem", horizon=15, particles=20, propagation="ts1",
                                             settings={"population": 350, "elites": 35, "iterations": 5})),
    "default": dict(members=PETSConfig().model.ensemble_size, layers=PETSConfig().model.hidden_layers,
                    hidden=PETSConfig().model.hidden_size, planner=PETSConfig().planner),
}


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best float32 torch.mm throughput over ``repeats`` runs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_flops_per_action(planner: PlannerConfig, elites: int, obs_dim: int, act_dim: int, hidden: int,
                             layers: int) -> float:
    """Multiply-add FLOPs of the ensemble forward passes one planning call makes (rows of all
    particles of all candidates, every step, every CEM iteration; mean and log-std heads)."""
    per_row = 2 * ((obs_dim + act_dim) * hidden + (layers - 1) * hidden * hidden + hidden * 2 * obs_dim)
    rows = planner.settings["population"] * planner.particles * (elites if planner.propagation == "all-members" else 1)
    return per_row * rows * planner.horizon * planner.settings["iterations"]


def time_config(name: str, spec: dict, data, env, actions: int) -> dict:
    model = ProbabilisticEnsemble(5, 1, ensemble_size=spec["members"], hidden_size=spec["hidden"],
                                  hidden_layers=spec["layers"], max_epochs=3)
    model.fit(data, generator=torch.Generator().manual_seed(0))
    agent = MPCAgent(model, env_task_functions(env), env.action_space, spec["planner"], torch.Generator().manual_seed(0))
    obs, _ = env.reset(seed=0)
    agent.reset()
    agent.act(obs)  # warm-up
    for _ in range(actions):
        obs, *_ = env.step(agent.act(obs))
    ms = statistics.median(agent.plan_ms[1:])
    flops = forward_flops_per_action(spec["planner"], len(model.elites), 5, 1, spec["hidden"], spec["layers"])
    return {"name": name, "ms": ms, "gflop": flops / 1e9, "gflops": flops / (ms / 1000) / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    env = envs.make("cartpole-swingup")
    data = collect(env, 1000, seed=0)
    peak = matmul_peak_gflops()
    print(f"float32 torch.mm 2048x2048 peak: {peak:.1f} GFLOP/s")
    for name, spec in CONFIGS.items():
        r = time_config(name, spec, data, env, args.actions)
        print(f"{name:11s}: {r['ms']:8.1f} ms per action (median of {args.actions}), forward passes "
              f"{r['gflop']:.1f} GFLOP per action -> {r['gflops']:.1f} GFLOP/s = {100 * r['gflops'] / peak:.0f} % "
              f"of the matmul peak")
    print("mbrl-lib 0.2.0, pets-paper configuration, same kind of machine: 1570 ms per action (reported figure)")


if __name__ == "__main__":
    main()
