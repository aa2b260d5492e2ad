"""The Lagrangian model against the PE ensemble: one-step error, 50-step compounding error,
energy error of unforced rollouts and the cost of planning, on random-action data.

For each environment, data size and model kind: fit on ``size`` random-action transitions
(seed 0; PETS's training settings), then on held-out random-action episodes (seed 100):

- one-step MSE (raw observation units, mean over entries);
- compounding: the open-loop MSE after ``--horizon`` steps (same windows for every model);
- energy: from ``--starts`` held-out states, ``--horizon`` steps with zero action in the model
  and in the exact dynamics; the mean absolute difference of the true mechanical energy (J)
  of the two end states, and the same for the exact system's own change (its friction);
- planning: milliseconds per action of the default PETS planner (iCEM, 5 particles,
  horizon 15) in the fitted model, over ``--plan-steps`` actions.

    OMP_NUM_THREADS=1 python benchmarks/lagrangian_model.py --threads 1
    OMP_NUM_THREADS=1 python benchmarks/lagrangian_model.py --kinds lagrangian model.hidden_size=64 model.hidden_layers=2
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from forethought import envs
from forethought.agents import PETSConfig
from forethought.agents.mpc import MPCAgent
from forethought.config import load_config
from forethought.data import collect
from forethought.envs.analytic import analytic_step, env_task_functions
from forethought.envs.coordinates import env_coordinates
from forethought.evaluation import one_step_error
from forethought.evaluation.compounding import rollout_error, trajectory_windows
from forethought.models.config import build_model


def mechanical_energy(env, obs: torch.Tensor) -> torch.Tensor:
    """True energy ``T + V`` (J) of observations ``[B, o]`` of our pendulum or cart-pole."""
    inner = env.unwrapped
    if isinstance(inner, envs.PendulumSwingUpEnv):
        p = inner.params
        theta, speed = torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]
        return p.mass * p.length**2 / 6.0 * speed**2 + 0.5 * p.mass * p.gravity * p.length * theta.cos()
    p = inner.params
    x_dot, cos, theta_dot = obs[:, 1], obs[:, 2], obs[:, 4]
    m, l = p.pole_mass, p.pole_length
    kinetic = 0.5 * (p.cart_mass + m) * x_dot**2 + 0.5 * m * l * x_dot * theta_dot * cos + m * l**2 / 6.0 * theta_dot**2
    return kinetic + 0.5 * m * p.gravity * l * cos


def unforced(step, obs: torch.Tensor, horizon: int) -> torch.Tensor:
    """The state after ``horizon`` zero-action steps of ``step`` from ``obs [B, o]``."""
    action = torch.zeros(obs.shape[0], 1, dtype=obs.dtype)
    with torch.no_grad():
        for _ in range(horizon):
            obs = step(obs, action)
    return obs


def plan_ms(model, env, states: torch.Tensor, steps: int) -> float:
    """Mean milliseconds per action of the default PETS planner in ``model`` from ``states``."""
    agent = MPCAgent(model, env_task_functions(env), env.action_space, PETSConfig().planner,
                     torch.Generator().manual_seed(0))
    agent.reset()
    agent.act(states[0].numpy())  # warm-up (first call builds the predictor)
    start = time.perf_counter()
    for obs in states[1:steps + 1]:
        agent.act(obs.numpy())
    return 1000.0 * (time.perf_counter() - start) / steps


def measure(env_id: str, size: int, kind: str, args, held_out, windows) -> dict:
    env = envs.make(env_id)
    train = collect(env, size, seed=0)
    config = dataclasses.replace(PETSConfig().model, kind=kind, **(args.lagrangian_model if kind == "lagrangian" else {}))
    training = dataclasses.replace(PETSConfig().train, **(args.lagrangian_train if kind == "lagrangian" else {}))
    model = build_model(config, training, train.obs_dim, train.act_dim, coordinates=env_coordinates(env))
    start = time.perf_counter()
    report = model.fit(train, generator=torch.Generator().manual_seed(0))
    fit_s = time.perf_counter() - start
    one_step = one_step_error(model, held_out)["mse"]
    compounding = rollout_error(model, windows, args.horizon)["mse_per_step"][-1]
    starts = windows[0][:args.starts]
    exact = analytic_step(env)
    truth = unforced(lambda o, a: exact(o.double(), a.double()).float(), starts, args.horizon)
    predicted = unforced(lambda o, a: model.predict(o, a).mean, starts, args.horizon)
    energy_error = float((mechanical_energy(env, predicted) - mechanical_energy(env, truth)).abs().mean())
    friction_change = float((mechanical_energy(env, truth) - mechanical_energy(env, starts)).abs().mean())
    ms = plan_ms(model, env, windows[0][args.starts:], args.plan_steps) if args.plan_steps else float("nan")
    return {"env": env_id, "size": size, "kind": kind, "epochs": report.epochs, "fit_s": fit_s, "one_step": one_step,
            "compounding": compounding, "energy_error": energy_error, "true_change": friction_change,
            "plan_ms": ms, "note": report.message}


def changed(section) -> dict:
    """The fields of a model or training config that differ from PETS's defaults."""
    default = PETSConfig().model if dataclasses.is_dataclass(section) and hasattr(section, "kind") else PETSConfig().train
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
            if getattr(section, f.name) != getattr(default, f.name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="pendulum-swingup,cartpole-swingup")
    parser.add_argument("--sizes", default="200,1000,5000")
    parser.add_argument("--kinds", default="pe,lagrangian")
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--plan-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("lagrangian", nargs="*", metavar="model.key=value|train.key=value",
                        help="settings of the Lagrangian model only (ModelConfig / TrainConfig fields)")
    args = parser.parse_args()
    settings = load_config(PETSConfig, None, args.lagrangian)
    args.lagrangian_model, args.lagrangian_train = changed(settings.model), changed(settings.train)
    args.lagrangian_model.pop("kind", None)
    torch.set_num_threads(args.threads)
    print("| env | transitions | model | epochs | fit s | one-step MSE | MSE at step "
          f"{args.horizon} | energy error after {args.horizon} unforced steps (J) | exact system's own change (J) "
          "| plan ms/action |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for env_id in args.envs.split(","):
        env = envs.make(env_id)
        held_out = collect(env, 2000, seed=100)
        windows = trajectory_windows(held_out, args.horizon, max_windows=200)
        for size in (int(s) for s in args.sizes.split(",")):
            for kind in args.kinds.split(","):
                r = measure(env_id, size, kind, args, held_out, windows)
                print(f"| {r['env']} | {r['size']} | {r['kind']} | {r['epochs']} | {r['fit_s']:.0f} | {r['one_step']:.3g} "
                      f"| {r['compounding']:.3g} | {r['energy_error']:.3g} | {r['true_change']:.3g} | {r['plan_ms']:.0f} |",
                      flush=True)
                if r["kind"] == "lagrangian":
                    print(f"<!-- {r['note']} -->", flush=True)


if __name__ == "__main__":
    main()
