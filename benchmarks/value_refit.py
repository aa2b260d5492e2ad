"""A saved PETS agent's terminal value refitted from scratch with other settings, then played from
the run's evaluation starts: what the value's settings do to the same model, reward and data.

    forethought run pets --env dm_control/pendulum-swingup-v0 --seed 1 --out runs/pend steps=10000 \\
        agent.terminal_value=true agent.value.discount=0.99
    python benchmarks/value_refit.py runs/pend value.discount=0.99 value.rounds=200 value.updates=10000
    python benchmarks/value_refit.py runs/pend value.discount=0.95 value.rounds=200 value.updates=10000

The run directory gives the agent (its final checkpoint), the environment, the action repeat, the
seed and the number of evaluation episodes. The value is built anew with the agent's value
settings and the ``value.KEY=VALUE`` overrides, fitted once on the agent's buffer with its model,
reward and termination, and the agent then plans with it from every evaluation start (the same
starts as the run's evaluations). Prints the value at a few named states when the task is
pendulum-swingup (observation: cos and sin of the angle from upright, angular velocity), each
episode's return, and the mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import yaml

from forethought.data.env_loop import episode_returns
from forethought.experiments.evaluate import load_run_agent
from forethought.experiments.resume import run_algo
from forethought.models.value import StateValue, ValueConfig
from forethought.seeding import derive_seed, generator

PENDULUM_STATES = {"upright, still": [1.0, 0.0, 0.0], "hanging, still": [-1.0, 0.0, 0.0],
                   "upright, 6 rad/s": [1.0, 0.0, 6.0], "hanging, 6 rad/s": [-1.0, 0.0, 6.0]}


def value_changes(overrides: list[str]) -> dict:
    """``value.KEY=VALUE`` arguments as ``{KEY: VALUE}`` (YAML values), every key one of ValueConfig's."""
    fields = {f.name for f in dataclasses.fields(ValueConfig)}
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        name = key.removeprefix("value.")
        if not sep or not key.startswith("value.") or name not in fields:
            raise SystemExit(f"value_refit: expected value.KEY=VALUE with KEY one of {sorted(fields)}, got {item!r}")
        changes[name] = yaml.safe_load(raw)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a forethought run pets directory")
    parser.add_argument("overrides", nargs="*", metavar="value.KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if run_algo(args.run) != "pets":
        raise SystemExit(f"value_refit: {args.run} is not a run of forethought run pets")
    _, config, agent, env = load_run_agent(args.run)  # a module:Id read back is refused: it would import code
    value_config = dataclasses.replace(agent.config.value, **value_changes(args.overrides))
    agent.config = dataclasses.replace(agent.config, terminal_value=True, value=value_config)
    agent.value = StateValue(agent.obs_dim, agent.act_dim, value_config, generator(agent.seed, "value-refit"))
    start = time.perf_counter()
    loss = agent.value.fit(agent.buffer, generator(agent.seed, "value-refit-fit"), agent.value_lookahead)
    print(f"{args.run}: value {dataclasses.asdict(value_config)} fitted on {len(agent.buffer)} transitions in "
          f"{time.perf_counter() - start:.0f} s, last round's loss {loss:.4g}", flush=True)
    if "pendulum-swingup" in config.env:
        print("  V: " + ", ".join(f"{name} {float(agent.value(torch.tensor([obs]))):.0f}"
                                  for name, obs in PENDULUM_STATES.items()), flush=True)
    seeds = [derive_seed(config.seed, "eval", k) for k in range(config.eval_episodes)]
    returns = episode_returns(env, lambda obs: agent.act(obs, deterministic=True), seeds, reset=agent.reset)
    print(f"  evaluation returns {np.round(returns, 1).tolist()}, mean {np.mean(returns):.1f}", flush=True)


if __name__ == "__main__":
    main()
