"""Speed on each device: milliseconds per planned action and updates per second, on the CPU and on
CUDA, one line per figure.

Figures (each on every device asked for; CUDA is skipped with a line saying so where unavailable):
- ``pets-default ms/action``: MPC with forethought's PETS defaults (5-member 3x200 ensemble, iCEM
  100 decaying, 5 particles, TS-infinity, horizon 15), the model fitted on random cart-pole data;
- ``pets-paper ms/action``: the PETS paper's configuration (7-member 4x200 ensemble, CEM 350
  candidates, 35 elites, 5 iterations, 20 particles, TS1), as in ``benchmarks/planning_speed.py``;
- ``sac updates/s``: SAC gradient steps (critics, actor, temperature) on minibatches of 256;
- ``mbpo updates/s``: MBPO's policy updates on mixed real and imagined minibatches, and
  ``mbpo model fit s``: one fit of its 7-member ensemble on the real rows;
- ``dreamer updates/s``: Dreamer's updates (world model on 16 sequences of 32 frames at 64x64,
  then actor and critic on imagination), from pixel pendulum-swingup.

Medians of the timed repeats after a warm-up; CUDA timings include the transfers an agent makes
(observations in, actions out, minibatches from the NumPy buffers). Sized to take a few minutes
on a GPU machine; ``--quick`` shrinks everything to check the script runs (its figures mean
nothing).

    python benchmarks/device_speed.py [--devices cpu,cuda] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Callable

import torch

from forethought import envs
from forethought.agents import MBPO, SAC, Dreamer, MPCAgent, PETSConfig
from forethought.agents.dreamer import DreamerConfig
from forethought.agents.imagination import imagine, mixed_batch
from forethought.agents.mbpo import MBPOConfig
from forethought.config import build
from forethought.data import ReplayBuffer, collect
from forethought.device import device_name, resolve_device
from forethought.envs import env_task_functions
from forethought.envs.pixels import make_pixel_env
from forethought.models import ProbabilisticEnsemble
from forethought.planning import PlannerConfig

PLANNERS = {
    "pets-default": dict(members=PETSConfig().model.ensemble_size, layers=PETSConfig().model.hidden_layers,
                         hidden=PETSConfig().model.hidden_size, planner=PETSConfig().planner),
    "pets-paper": dict(members=7, layers=4, hidden=200,
                       planner=PlannerConfig(optimizer="cem", horizon=15, particles=20, propagation="ts1",
                                             settings={"population": 350, "elites": 35, "iterations": 5})),
}


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall-clock seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    timings = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def plan_ms(name: str, device: torch.device, data: ReplayBuffer, actions: int, epochs: int) -> float:
    """Milliseconds per action of MPC in planner configuration ``name``."""
    spec, env = PLANNERS[name], envs.make("cartpole-swingup")
    model = ProbabilisticEnsemble(5, 1, ensemble_size=spec["members"], hidden_size=spec["hidden"],
                                  hidden_layers=spec["layers"], max_epochs=epochs).to(device)
    model.fit(data, generator=torch.Generator(device).manual_seed(0))
    agent = MPCAgent(model, env_task_functions(env), env.action_space, spec["planner"],
                     torch.Generator(device).manual_seed(0))
    obs, _ = env.reset(seed=0)
    agent.reset()
    return 1000 * median_seconds(lambda: agent.act(obs), actions, device)


def filled(buffer: ReplayBuffer, data: ReplayBuffer) -> ReplayBuffer:
    buffer.add_batch(**data.arrays())
    return buffer


def sac_updates_per_s(device: torch.device, data: ReplayBuffer, updates: int) -> float:
    agent = SAC(envs.make("Pendulum-v1"), seed=0, device=device)
    filled(agent.buffer, data)
    batch = lambda: agent.buffer.sample(agent.config.batch_size, agent.generator)  # noqa: E731
    return 1.0 / median_seconds(lambda: agent.update(batch()), updates, device)


def mbpo_figures(device: torch.device, data: ReplayBuffer, updates: int, quick: bool) -> tuple[float, float]:
    """``(policy updates per second, seconds per model fit)`` of MBPO with its defaults."""
    config = build(MBPOConfig, {"train": {"max_epochs": 2}} if quick else {})
    agent = MBPO(envs.make("Pendulum-v1"), config, seed=0, device=device)
    filled(agent.sac.buffer, data)
    fit_s = median_seconds(agent._fit_model, 1, device)  # after one warm-up fit: a refit, as in training
    starts = agent.sac.buffer.sample(64 if quick else config.rollout_starts, agent.generator).obs
    imagined = imagine(agent.model, agent.task, agent._policy, starts, 1, agent.generator).to("cpu")
    agent.model_buffer.add_batch(*(getattr(imagined, f.name).numpy() for f in dataclasses.fields(imagined)))
    sac = agent.sac

    def update() -> None:
        sac.update(mixed_batch(sac.buffer, agent.model_buffer, sac.config.batch_size, config.real_fraction,
                               agent.generator))
    return 1.0 / median_seconds(update, updates, device), fit_s


def dreamer_updates_per_s(device: torch.device, updates: int, quick: bool) -> float:
    small = {"model": {"image_size": 16, "depth": 4, "deter_size": 16, "stoch": 4, "hidden_size": 16},
             "batch_size": 2, "sequence_length": 5, "imagination_horizon": 3} if quick else {}
    config = build(DreamerConfig, {**small, "seed_episodes": 1, "train_steps": 1})
    env = make_pixel_env("pendulum-swingup", config.model.image_size, 2,
                         **({"max_episode_steps": 20} if quick else {}))
    agent = Dreamer(env, config, seed=0, device=device)
    agent.learn(episodes=1)  # one random episode: the sequences to train on
    return 1.0 / median_seconds(lambda: agent.train(1), updates, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the script runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    actions, updates, epochs = (2, 3, 1) if args.quick else (15, 50, 20)
    data = collect(envs.make("cartpole-swingup"), 300 if args.quick else 2000, seed=0)
    pendulum = collect(envs.make("Pendulum-v1"), 300 if args.quick else 5000, seed=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            print(f"cuda: skipped, torch.cuda.is_available() is False (torch {torch.__version__})")
            continue
        device = resolve_device(name)
        label = f"{name} ({device_name(device)})"
        torch.manual_seed(0)
        for planner in PLANNERS:
            print(f"{label}: {planner} ms/action {plan_ms(planner, device, data, actions, epochs):.1f}", flush=True)
        print(f"{label}: sac updates/s {sac_updates_per_s(device, pendulum, updates):.0f}", flush=True)
        policy_rate, fit_s = mbpo_figures(device, pendulum, updates, args.quick)
        print(f"{label}: mbpo updates/s {policy_rate:.0f}", flush=True)
        print(f"{label}: mbpo model fit s {fit_s:.2f} ({len(pendulum)} rows)", flush=True)
        print(f"{label}: dreamer updates/s {dreamer_updates_per_s(device, max(2, updates // 5), args.quick):.2f}",
              flush=True)


if __name__ == "__main__":
    main()
