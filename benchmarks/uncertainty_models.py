"""Cost per planned action of the MC dropout and last-layer Laplace models against the ensemble.

Each model kind is fitted on the same 1000 random cart-pole transitions (3 epochs: the timing
does not depend on how well it fits) and planned with PETS's default planner (iCEM, 5 particles,
TS-inf, horizon 15) in float32 from the environment's seed-0 start; the median milliseconds per
action over ``--actions`` MPC steps are printed. The kinds are timed in turn, ``--rounds`` times,
so that load from other jobs falls on all of them alike; the median over rounds and the fastest
round (the least disturbed by other jobs) are reported.

    python benchmarks/uncertainty_models.py --kinds pe,dropout,laplace --actions 15 --rounds 3 --threads 1

``--members`` prints instead how good each member is alone: the held-out one-step MSE of
``predict``'s mean and of every member's mean, for each kind (dropout at each ``--dropout-rates``).

Held-out quality (coverage, rank correlation, one-step and compounding error) is measured by
``forethought compare-models --models pe,dropout,laplace`` (see BENCHMARKS.md, "Dropout and
Bayesian models").
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from forethought import envs
from forethought.agents import MPCAgent, PETSConfig
from forethought.data import collect
from forethought.envs import env_task_functions
from forethought.models.config import TrainConfig, build_model


def ms_per_action(kind: str, data, env, actions: int) -> float:
    """Median ms per planned action of PETS's default planner with a ``kind`` model of PETS's default size."""
    config = PETSConfig()
    model = build_model(dataclasses.replace(config.model, kind=kind), TrainConfig(max_epochs=3),
                        env.observation_space.shape[0], env.action_space.shape[0])
    model.fit(data, generator=torch.Generator().manual_seed(0))
    agent = MPCAgent(model, env_task_functions(env), env.action_space, config.planner, torch.Generator().manual_seed(0))
    obs, _ = env.reset(seed=0)
    agent.reset()
    agent.act(obs)  # warm-up
    for _ in range(actions):
        obs, *_ = env.step(agent.act(obs))
    return statistics.median(agent.plan_ms[1:])


def member_errors(kinds: list[str], rates: list[float]) -> None:
    """Held-out one-step MSE of ``predict``'s mean and of each member alone, on 1000 random
    cart-pole transitions (seed 1) after fitting on 2000 (seed 0); dropout once per rate."""
    env = envs.make("cartpole-swingup")
    train, test = collect(env, 2000, seed=0), collect(env, 1000, seed=1).all()
    variants = [(kind, rate) for kind in kinds for rate in (rates if kind == "dropout" else [None])]
    for kind, rate in variants:
        config = dataclasses.replace(PETSConfig().model, kind=kind, **({} if rate is None else {"dropout_rate": rate}))
        model = build_model(config, TrainConfig(), train.obs_dim, train.act_dim)
        model.fit(train, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            mean_mse = float((model.predict(test.obs, test.action).mean - test.next_obs).pow(2).mean())
            means, _ = model.predict_members(test.obs, test.action)
            member = (means - test.next_obs).pow(2).mean(dim=(1, 2))
        name = kind if rate is None else f"{kind} {rate}"
        print(f"{name:12s}: one-step MSE of the mean {mean_mse:.4f}; of one member alone {float(member.mean()):.4f} "
              f"(from {float(member.min()):.4f} to {float(member.max()):.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="pe,dropout,laplace")
    parser.add_argument("--actions", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", action="store_true", help="print each member's held-out one-step error instead")
    parser.add_argument("--dropout-rates", default="0.1,0.05", help="with --members: the dropout rates to fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.members:
        member_errors(args.kinds.split(","), [float(r) for r in args.dropout_rates.split(",")])
        return
    env = envs.make("cartpole-swingup")
    data = collect(env, 1000, seed=0)
    kinds = args.kinds.split(",")
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            timings[kind].append(ms_per_action(kind, data, env, args.actions))
    base = statistics.median(timings[kinds[0]])
    for kind in kinds:
        ms, fastest = statistics.median(timings[kind]), min(timings[kind])
        print(f"{kind:8s}: {ms:7.1f} ms per planned action (median over {args.rounds} rounds of the median of "
              f"{args.actions} actions; rounds {', '.join(f'{t:.1f}' for t in timings[kind])}), "
              f"{ms / base:.2f}x {kinds[0]}; fastest round {fastest:.1f} ms, {fastest / min(timings[kinds[0]]):.2f}x")


if __name__ == "__main__":
    main()
