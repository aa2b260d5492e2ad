"""Exploration by disagreement on sparse-reward tasks: PETS (or MBPO) with and without the
exploration bonus, through ``forethought run`` with the task's preset and a learned reward where
none is registered.

For every task, seed and bonus: the raw environment steps at the end of the first training
episode whose return reaches ``--success``, and the evaluation return at each budget.

    python benchmarks/exploration.py --envs cartpole-swingup --success 20 --budgets 2000 --bonuses 0,1 \\
        agent.reward=learned agent.termination=learned
    python benchmarks/exploration.py --envs dm_control/pendulum-swingup-v0 --success 100 --budgets 10000,20000
    python benchmarks/exploration.py --envs MountainCarContinuous-v0 --success 0 --budgets 10000

``--bonuses`` lists the values of ``agent.planner.exploration_bonus`` (PETS) or
``agent.exploration_bonus`` (MBPO) to compare; 0 is plain PETS.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from dmc_learned_reward import run_one


def first_success(training: list[tuple[int, float]], success: float) -> int | None:
    """Env steps at the end of the first training episode returning at least ``success``."""
    return next((steps for steps, value in training if value >= success), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="cartpole-swingup")
    parser.add_argument("--algo", default="pets", choices=["pets", "mbpo"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bonuses", default="0,1")
    parser.add_argument("--budgets", default="2000", help="raw environment steps at which to evaluate")
    parser.add_argument("--success", type=float, required=True, help="a training return that counts as success")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None,
                        help="keep every run's directory as OUT/ENV_ALGO_bBONUS_sSEED (replacing one of that name); "
                             "by default they are discarded")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="run config overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    key = "agent.planner.exploration_bonus" if args.algo == "pets" else "agent.exploration_bonus"
    with tempfile.TemporaryDirectory() as scratch:
        for env in args.envs.split(","):
            for bonus in args.bonuses.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    out = (Path(scratch) / "run" if args.out is None
                           else args.out / f"{env.replace('/', '-')}_{args.algo}_b{bonus}_s{seed}")
                    result = run_one(env, args.algo, seed, budgets, args.eval_episodes, out,
                                     [f"{key}={bonus}", *args.overrides])
                    found = first_success(result["training"], args.success)
                    returns = ", ".join(f"{b}: {'-' if v is None else f'{v:.1f}'}" for b, v in result["returns"].items())
                    print(f"{env} {args.algo} bonus {bonus} seed {seed} ({result['preset']}): first training return "
                          f">= {args.success:g} at {found if found is not None else 'never'} env steps; evaluation "
                          f"{returns}; best {result['best']:.1f}; {result['s_per_1000']:.0f} s per 1000 env steps",
                          flush=True)


if __name__ == "__main__":
    main()
