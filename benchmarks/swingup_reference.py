"""How fast DeepMind Control's pendulum can be swung up from given starts: the reference that
pendulum-swingup returns are read against.

    python benchmarks/swingup_reference.py --seeds 0,1,2 --episodes 10 --uniform 200

The task pays 1 per raw step within 8 degrees of upright over 1000 raw steps, and from near
hanging its 1 N m motor (against a 4.9 N m gravity torque) needs several pumps. So a return is
at most about ``1001 - T``, ``T`` the raw step the pole first comes within 8 degrees, and
balancing from then on reaches it. The reference controller pumps energy as fast as the motor
allows (full torque along the angular velocity, ``u = sign(omega)``); its ``T`` is a reference,
not a strict bound (a planner can find a slightly quicker swing from some starts).

For each seed, the starts are those of a run's evaluation episodes (``derive_seed(seed, "eval",
k)``, ``k < --episodes``): prints each start's angle, ``T`` and ``1001 - T``, and their mean.
``--uniform N`` adds the mean over N other uniform starts, the expectation a long evaluation
tends to.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from forethought import envs
from forethought.seeding import derive_seed

ENV = "dm_control/pendulum-swingup-v0"


def steps_to_upright(env, seed: int) -> tuple[float, int]:
    """The start's angle from upright (degrees) and the raw step (1-based) at which pumping
    first earns a reward (1000 if it never does)."""
    obs, _ = env.reset(seed=seed)
    angle = math.degrees(math.atan2(obs[1], obs[0]))  # observation: cos, sin of the angle; angular velocity
    for step in range(1, 1001):
        action = np.array([1.0 if obs[2] >= 0 else -1.0], dtype=np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        if reward > 0:
            return angle, step
        if terminated or truncated:
            break
    return angle, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="run seeds whose evaluation starts to play")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per seed")
    parser.add_argument("--uniform", type=int, default=200, help="other uniform starts for the expectation (0: none)")
    args = parser.parse_args()
    env = envs.make(ENV)
    for seed in [int(s) for s in args.seeds.split(",")]:
        starts = [steps_to_upright(env, derive_seed(seed, "eval", k)) for k in range(args.episodes)]
        cells = ", ".join(f"{angle:.0f}: {step} ({1001 - step})" for angle, step in starts)
        for shown in sorted({3, args.episodes}):
            if shown <= args.episodes:
                mean = np.mean([1001 - step for _, step in starts[:shown]])
                print(f"seed {seed}, first {shown} evaluation starts: reference return {mean:.0f}")
        print(f"seed {seed}: angle: T (1001 - T): {cells}")
    if args.uniform:
        steps = [steps_to_upright(env, derive_seed(0, "uniform start", k))[1] for k in range(args.uniform)]
        print(f"{args.uniform} uniform starts: mean T {np.mean(steps):.0f}, reference return {np.mean([1001 - s for s in steps]):.0f}")
    env.close()


if __name__ == "__main__":
    main()
