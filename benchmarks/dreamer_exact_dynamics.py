"""Dreamer's behaviour learning alone: its actor-critic trained in the *exact* pendulum-swing-up
dynamics instead of a learned world model, so what it reaches is what the actor-critic can do
with a perfect model (an upper bound for `forethought run dreamer` on the same task).

The "latent state" is the true state: ``deter = (cos theta, sin theta, theta_dot / 8)`` and a
constant ``stoch = (0)``; the reward of arriving at a state is the pendulum's cost there times the
action repeat (the world model's reward head also reads the arrival state).

Each update imagines from ``--batch`` start states drawn uniformly over angle and velocity
(``--start-angle``, ``--start-speed``); every ``--eval-every`` updates the actor's mode runs one
200-step episode of the real environment from ``--eval-angle`` (pi: hanging down, the swing-up
the pixel runs face; action repeat as there) and the return is printed.
With ``--visited-starts N`` the starts are instead drawn from the states of the actor's own exploring
episodes from hanging down (a pixel run imagines from its replay of those): the uniform starts show
the actor-critic the whole circle from the first update, these only what it has reached.

The action repeat sets how long the imagined horizon is in seconds: 15 steps of 0.1 s (repeat 2,
the default, as DreamerV1 on DeepMind Control) swing the pendulum up; 15 steps of 0.2 s (repeat 4)
do not even learn to balance, since backpropagating through 3 s of an unstable, torque-limited
pendulum gives gradients that point nowhere useful (plain backpropagation of the imagined reward
fails there too, and balances within 100 updates at repeat 2 or with a 5-step horizon).

    python benchmarks/dreamer_exact_dynamics.py --updates 3000
    python benchmarks/dreamer_exact_dynamics.py --updates 3000 --action-repeat 4
    python benchmarks/dreamer_exact_dynamics.py --updates 3000 actor_gradient=reinforce
    python benchmarks/dreamer_exact_dynamics.py --updates 5000 --visited-starts 20 entropy_scale=3e-3
    python benchmarks/dreamer_exact_dynamics.py --start-angle 0.3 --start-speed 2 --eval-angle 0.3   # balancing only
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from forethought.agents.dreamer import DreamerConfig, ImaginationActorCritic
from forethought.config import load_config
from forethought.envs import ActionRepeat, make
from forethought.envs.pendulum_swingup import PendulumParams, pendulum_reward, pendulum_step
from forethought.models.rssm import LatentState
from forethought.models.world_model import Policy

SPEED_SCALE = 8.0  # rad/s, to keep the features near [-1, 1]


class ExactPendulumWorld:
    """The pendulum swing-up's own dynamics (differentiable) behind the world-model interface."""

    feature_dim = 4  # cos, sin, scaled speed and a constant 0

    def __init__(self, action_repeat: int) -> None:
        self.action_repeat = action_repeat
        self.max_torque = PendulumParams.max_torque

    def state(self, obs: torch.Tensor) -> LatentState:
        """``obs`` ``[N, 3]`` (cos, sin, theta_dot) as a latent state."""
        return LatentState(torch.cat([obs[:, :2], obs[:, 2:] / SPEED_SCALE], 1), torch.zeros(len(obs), 1))

    def imagine(self, start: LatentState, horizon: int, *, policy: Policy,
                generator: torch.Generator | None = None) -> tuple[LatentState, torch.Tensor]:
        state, states, taken = start, [], []
        for _ in range(horizon):
            action = policy(state.features)
            obs = torch.cat([state.deter[:, :2], state.deter[:, 2:] * SPEED_SCALE], 1)
            torque = action * self.max_torque
            for _ in range(self.action_repeat):
                obs = pendulum_step(obs, torque)
            state = self.state(obs)
            states.append(state), taken.append(action)
        return LatentState.stack(states), torch.stack(taken, 1)

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        obs = torch.cat([features[..., :2], features[..., 2:3] * SPEED_SCALE], -1).reshape(-1, 3)
        cost = pendulum_reward(obs, torch.zeros(len(obs), 1), obs).reshape(features.shape[:-1])
        return self.action_repeat * cost

    def continue_probability(self, features: torch.Tensor) -> torch.Tensor:
        return torch.ones(features.shape[:-1])

    def requires_grad_(self, requires_grad: bool = True) -> "ExactPendulumWorld":
        return self  # no weights


def run_episode(behaviour: ImaginationActorCritic, world: ExactPendulumWorld, angle: float | None,
                explore: bool = False) -> tuple[float, torch.Tensor]:
    """Return of one 200-step episode and the observations it visited ``[T, 3]``: from rest at
    ``angle`` (rad from upright; None: the environment's own start, hanging down with a little
    noise) under the actor's mode, or its samples plus exploration noise when ``explore``."""
    env = ActionRepeat(make("pendulum-swingup", init_noise=0.0 if angle is not None else 0.1), world.action_repeat)
    obs, _ = env.reset(seed=0, options=None if angle is None else {"theta": angle})
    total, done, visited = 0.0, False, []
    while not done:
        visited.append(torch.as_tensor(obs, dtype=torch.float32))
        state = world.state(visited[-1][None])
        with torch.no_grad():
            action = behaviour.act(state.features, explore=explore, generator=behaviour.imagine_generator)[0]
        obs, reward, terminated, truncated, _ = env.step((action * world.max_torque).numpy())
        total, done = total + reward, terminated or truncated
    return total, torch.stack(visited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--batch", type=int, default=512, help="imagination start states per update")
    parser.add_argument("--action-repeat", type=int, default=2, help="as `forethought run dreamer`'s default")
    parser.add_argument("--start-angle", type=float, default=math.pi, help="imagination starts: |theta| <= this (rad)")
    parser.add_argument("--start-speed", type=float, default=6.0, help="imagination starts: |theta_dot| <= this (rad/s)")
    parser.add_argument("--eval-angle", type=float, default=math.pi, help="evaluation episodes start at rest here")
    parser.add_argument("--visited-starts", type=int, default=0, metavar="N",
                        help="imagine from the states of exploring episodes instead (one more every N updates, "
                             "5 before the first), as a pixel run imagines from its replay")
    parser.add_argument("--target", type=float, default=-548.0, help="70 %% of the oracle planner's -383.6")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="DreamerConfig overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(DreamerConfig, None, args.overrides)
    world = ExactPendulumWorld(args.action_repeat)
    behaviour = ImaginationActorCritic(world.feature_dim, 1, config, args.seed)
    starts = torch.Generator().manual_seed(args.seed)
    reached, begin, visited = None, time.perf_counter(), []
    for update in range(args.updates + 1):
        if update % args.eval_every == 0:
            result = run_episode(behaviour, world, args.eval_angle)[0]
            if reached is None and result >= args.target:
                reached = update
            print(f"update {update:5d}  return {result:8.1f}  ({time.perf_counter() - begin:5.0f} s)", flush=True)
        if args.visited_starts:
            while len(visited) < 5 + update // args.visited_starts:
                visited.append(run_episode(behaviour, world, None, explore=True)[1])
            pool = torch.cat(visited)
            obs = pool[torch.randint(len(pool), (args.batch,), generator=starts)]
        else:
            theta = (torch.rand(args.batch, generator=starts) * 2 - 1) * args.start_angle
            speed = (torch.rand(args.batch, generator=starts) * 2 - 1) * args.start_speed
            obs = torch.stack([theta.cos(), theta.sin(), speed], 1)
        metrics = behaviour.train(world, world.state(obs))
        if update % args.eval_every == 0:
            print("              " + "  ".join(f"{k} {v:.3g}" for k, v in metrics.items()), flush=True)
    print(f"target {args.target}: " + (f"reached after {reached} updates" if reached is not None else "not reached"))


if __name__ == "__main__":
    main()
