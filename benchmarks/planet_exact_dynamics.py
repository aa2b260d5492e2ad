"""PlaNet's planner alone: its trajectory optimiser, horizon and settings (PlaNetConfig's defaults
unless overridden) scoring action sequences in the *exact* pendulum swing-up dynamics instead of
latent rollouts, with the pixel runs' action repeat. What it scores is what `forethought run
planet` could reach with a perfect world model.

    python benchmarks/planet_exact_dynamics.py --action-repeats 2,4
    python benchmarks/planet_exact_dynamics.py --action-repeats 4 horizon=20
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from forethought.agents.planet import PlaNetConfig
from forethought.config import load_config
from forethought.envs import ActionRepeat, make
from forethought.envs.pendulum_swingup import PendulumParams, pendulum_reward, pendulum_step
from forethought.planning import make_optimizer


def episode_return(config: PlaNetConfig, action_repeat: int, seed: int) -> tuple[float, float]:
    """(return of one 200-step swing-up episode, planning ms per agent step)."""
    env = ActionRepeat(make("pendulum-swingup"), action_repeat)
    space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    optimizer = make_optimizer(config.optimizer, space, config.horizon, generator=torch.Generator().manual_seed(seed),
                               **config.settings)
    max_torque = PendulumParams.max_torque
    obs, _ = env.reset(seed=seed)
    optimizer.reset()
    total, done, plan_s, plans = 0.0, False, 0.0, 0
    while not done:
        start = torch.as_tensor(obs, dtype=torch.float32)[None]

        def score(actions: torch.Tensor) -> torch.Tensor:  # [P, H, 1] normalised -> predicted return [P]
            state, value = start.repeat(actions.shape[0], 1), torch.zeros(actions.shape[0])
            for t in range(actions.shape[1]):
                torque = actions[:, t] * max_torque
                for _ in range(action_repeat):
                    value = value + pendulum_reward(state, torque, state)
                    state = pendulum_step(state, torque)
            return value

        begin = time.perf_counter()
        action = optimizer.plan(score)[0].numpy()
        plan_s, plans = plan_s + time.perf_counter() - begin, plans + 1
        obs, reward, terminated, truncated, _ = env.step(action * max_torque)
        total, done = total + reward, terminated or truncated
    return total, 1000.0 * plan_s / plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--action-repeats", default="2,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="PlaNetConfig overrides (horizon, settings.*)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(PlaNetConfig, None, args.overrides)
    print(f"{config.optimizer} {config.settings}, horizon {config.horizon}")
    for repeat in (int(r) for r in args.action_repeats.split(",")):
        results = [episode_return(config, repeat, int(seed)) for seed in args.seeds.split(",")]
        returns = ", ".join(f"{r:.1f}" for r, _ in results)
        print(f"action repeat {repeat}: returns {returns} (mean {np.mean([r for r, _ in results]):.1f}); "
              f"{np.median([ms for _, ms in results]):.0f} ms per plan", flush=True)


if __name__ == "__main__":
    main()
