"""Latent world model throughput on this machine: training (sequence batches per second, world model
alone and with Dreamer's behaviour update, for both of its actor gradients) and imagination
(latent steps per second, batched over all start states for the whole horizon), per convolution
depth, float32.

    python benchmarks/latent_throughput.py --depths 8,16,32 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from forethought.agents.dreamer import Dreamer, DreamerConfig
from forethought.envs.pixels import make_pixel_env
from forethought.models.world_model import LatentModelConfig


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="8,16,32")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--starts", type=int, default=512, help="imagination start states")
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = make_pixel_env("pendulum-swingup", size=64, action_repeat=2)
    print(f"batch {args.batch} x {args.length} frames of 64x64, imagination {args.starts} starts x {args.horizon} "
          f"steps, {args.threads} threads")
    for depth in (int(d) for d in args.depths.split(",")):
        agent = Dreamer(env, DreamerConfig(model=LatentModelConfig(depth=depth), seed_episodes=1,
                                           batch_size=args.batch, sequence_length=args.length,
                                           imagination_horizon=args.horizon))
        agent.learn(episodes=1)  # one random episode of 100 frames to sample sequences from
        batch = agent.buffer.sample(args.batch, args.length, agent.generator)
        model_s = median_seconds(lambda: agent.model.train_step(batch), args.repeats)
        both_s = {}
        for gradient in ("dynamics", "reinforce"):
            agent.config.actor_gradient = gradient  # the behaviour learner reads the agent's config
            both_s[gradient] = median_seconds(lambda: agent.train_behaviour(agent.model.train_step(batch)[1]),
                                              args.repeats)
        start = agent.model.rssm.initial(args.starts)
        actions = torch.rand(args.starts, args.horizon, 1) * 2 - 1
        with torch.no_grad():
            imagine_s = median_seconds(lambda: agent.model.reward(agent.model.imagine(
                start, args.horizon, actions=actions)[0].features), args.repeats)
        print(f"depth {depth:3d}: world model {1 / model_s:5.2f} batches/s ({model_s * 1000:6.0f} ms), "
              f"with Dreamer's behaviour update {1 / both_s['dynamics']:5.2f} batches/s "
              f"({both_s['dynamics'] * 1000:6.0f} ms; score-function actor gradient {1 / both_s['reinforce']:5.2f}, "
              f"{both_s['reinforce'] * 1000:6.0f} ms); imagination "
              f"{args.starts * args.horizon / imagine_s / 1000:7.1f} k latent steps/s", flush=True)


if __name__ == "__main__":
    main()
