"""How well the learned reward and termination fit: held-out reward MSE and R^2, termination
precision and recall, for the task models' training (every row, fixed epochs) against early
stopping on a held-out tenth, and against predicting the mean reward.

Training data: ``--episodes`` episodes of uniform random actions; held-out data: as many more
from other reset seeds. The rewards of random play on the swing-up tasks are sparse (a few rows
near upright), which is what the comparison is about.

    python benchmarks/reward_model_quality.py --envs cartpole-swingup,pendulum-swingup,InvertedPendulum-v5
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from forethought import envs
from forethought.data.buffer import ReplayBuffer
from forethought.data.collect import flat_dim
from forethought.data.env_loop import EnvLoop, ReplayRecorder, random_policy
from forethought.models.task_model import TaskModel, TaskModelConfig


def random_play(name: str, episodes: int, first_seed: int) -> ReplayBuffer:
    env = envs.make(name)
    buffer = ReplayBuffer(flat_dim(env.observation_space), flat_dim(env.action_space))
    for episode in range(episodes):
        env.action_space.seed(first_seed + episode)
        EnvLoop(env, ReplayRecorder(buffer)).run(random_policy(env.action_space), seed=first_seed + episode)
    return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="cartpole-swingup,pendulum-swingup,InvertedPendulum-v5")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2", help="model initialisation seeds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default = TaskModelConfig()
    early = dataclasses.replace(default, train=dataclasses.replace(default.train, early_stopping=True, max_epochs=50,
                                                                   patience=5))
    for name in args.envs.split(","):
        train, held_out = random_play(name, args.episodes, 0), random_play(name, args.episodes, 10_000)
        batch = held_out.all()
        rare = float((batch.reward > batch.reward.mean() + 2 * batch.reward.std()).float().mean())
        constant = float((batch.reward - train.all().reward.mean()).pow(2).mean())
        print(f"{name}: {len(train)} training rows, {len(held_out)} held out; {100 * rare:.1f} % of held-out rewards "
              f"more than 2 std above the mean; {int(train.all().terminated.sum())} terminal training rows; "
              f"mean-reward baseline MSE {constant:.4g}")
        for label, config in (("every row, 30 epochs (default)", default), ("early stopping", early)):
            figures = []
            for seed in (int(s) for s in args.seeds.split(",")):
                task = TaskModel(None, "learned", "learned", train.obs_dim, train.act_dim, config)
                task.fit(train, torch.Generator().manual_seed(seed))
                figures.append(task.quality(batch))
            summary = ", ".join(
                f"{key} {np.mean(values):.4g}" if values else f"{key} n/a"
                for key in figures[0]
                for values in [[f[key] for f in figures if f[key] is not None]])
            print(f"  {label}: {summary} (mean over {len(figures)} seeds)", flush=True)


if __name__ == "__main__":
    main()
