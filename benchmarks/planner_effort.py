"""A saved PETS agent played with other planner settings from its run's evaluation starts: what
more (or less) planning effort does with the same model, reward and value.

    python benchmarks/planner_effort.py runs/pend --starts 0,1,3
    python benchmarks/planner_effort.py runs/pend --starts 0,1,3 settings.population=300
    python benchmarks/planner_effort.py runs/pend --starts 0,1,3 settings.population=400 settings.iterations=5

The run directory gives the agent (its final checkpoint), the environment and action repeat and
the seed. ``KEY=VALUE`` overrides replace the agent's planner settings (``horizon=30``; the
optimiser's own under ``settings.``: ``settings.population=300``). Each start (an index ``k`` of
the run's evaluation episodes, ``derive_seed(seed, "eval", k)``) is played by a freshly loaded
agent, so one start's return does not depend on which others are played. Prints, per start, the
return, the raw environment step of the first positive reward (for a sparse task such as
pendulum-swingup: how long the swing-up took) and the wall clock.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import yaml

from forethought.experiments.evaluate import load_run_agent
from forethought.experiments.resume import run_algo
from forethought.seeding import derive_seed


def planner_overrides(items: list[str]) -> tuple[dict, dict]:
    """``KEY=VALUE`` items as (planner fields, optimiser settings), values parsed as YAML."""
    fields, settings = {}, {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"overrides are KEY=VALUE, got {item!r}")
        value = yaml.safe_load(text)
        if key.startswith("settings."):
            settings[key.removeprefix("settings.")] = value
        else:
            fields[key] = value
    return fields, settings


def play(run: Path, start: int, fields: dict, settings: dict) -> tuple[float, int | None, float]:
    """Return, raw step of the first positive reward (None: none) and wall seconds of one
    evaluation start, played by the run's agent with the planner overrides."""
    algo = run_algo(run)
    if algo != "pets":
        raise SystemExit(f"{run} is a {algo} run; this benchmark plays PETS agents")
    _, config, agent, env = load_run_agent(run)
    planner = agent.config.planner
    agent.config.planner = dataclasses.replace(planner, **fields, settings={**planner.settings, **settings})
    obs, _ = env.reset(seed=derive_seed(config.seed, "eval", start))
    agent.reset()
    total, first, raw, began = 0.0, None, 0, time.perf_counter()
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
        raw += config.action_repeat
        total += float(reward)
        if reward > 0 and first is None:
            first = raw
        if terminated or truncated:
            break
    env.close()
    return total, first, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run directory of forethought run pets")
    parser.add_argument("--starts", default="0,1,2", help="evaluation episode indices to play")
    parser.add_argument("overrides", nargs="*", help="planner KEY=VALUE (optimiser settings as settings.KEY=VALUE)")
    args = parser.parse_intermixed_args()
    fields, settings = planner_overrides(args.overrides)
    returns = []
    for start in [int(k) for k in args.starts.split(",")]:
        total, first, wall = play(args.run, start, fields, settings)
        returns.append(total)
        print(f"start {start}: return {total:.0f}, first reward at raw step {first}, {wall:.0f} s", flush=True)
    print(f"{args.run} {' '.join(args.overrides) or '(the agent own planner)'}: mean return "
          f"{sum(returns) / len(returns):.1f} over starts {args.starts}")


if __name__ == "__main__":
    main()
