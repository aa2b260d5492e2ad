"""Does the latent world model see the pendulum? Per drawn rod width: random-action episodes of
pixel pendulum-swingup, ``--updates`` world-model updates on them, then on held-out episodes the
filtered reward error and a linear probe of the true state (cos, sin, theta_dot) from the
filtered latent features (1 - R^2 per coordinate: 0 is perfect, 1 is no better than the mean).

    python benchmarks/latent_rod_width.py --widths 0.1,0.25 --updates 600
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from forethought.agents.planet import PlaNet, PlaNetConfig
from forethought.data.sequences import SequenceBuffer
from forethought.envs.pixels import make_pixel_env
from forethought.models.world_model import LatentModelConfig


def collect(agent: PlaNet, buffer: SequenceBuffer, episodes: int, first_seed: int) -> list[np.ndarray]:
    """Random-action episodes into ``buffer``; the true state of every frame, per episode."""
    env, generator, states = agent.env, torch.Generator().manual_seed(first_seed), []
    for episode in range(episodes):
        obs, info = env.reset(seed=first_seed + episode)
        buffer.start_episode(obs)
        visited, done = [info["state"]], False
        while not done:
            action = (torch.rand(agent.action_dim, generator=generator) * 2 - 1).numpy()
            obs, reward, terminated, truncated, info = env.step(agent.to_env_action(action))
            buffer.add_step(action, reward, obs, terminated)
            visited.append(info["state"])
            done = terminated or truncated
        states.append(np.asarray(visited, np.float32))
    return states


@torch.no_grad()
def probe(agent: PlaNet, buffer: SequenceBuffer, states: list[np.ndarray]) -> tuple[list[float], float]:
    """(1 - R^2 of a ridge probe fitted on the first half of the episodes and scored on the rest,
    mean squared error of the filtered reward prediction)."""
    features, reward_errors = [], []
    for index in range(len(states)):
        batch = buffer.episode(index)
        filtered, _, _ = agent.model.observe(batch.obs, batch.action, batch.is_first)
        features.append(filtered.features[0])
        reward_errors.append((agent.model.reward(filtered.features[0, 1:]) - batch.reward[0, 1:]).pow(2))
    half = len(states) // 2
    inputs = [torch.cat([f, torch.ones(len(f), 1)], 1) for f in features]
    fit_x, fit_y = torch.cat(inputs[:half]), torch.as_tensor(np.concatenate(states[:half]))
    test_x, test_y = torch.cat(inputs[half:]), torch.as_tensor(np.concatenate(states[half:]))
    weights = torch.linalg.solve(fit_x.T @ fit_x + torch.eye(fit_x.shape[1]), fit_x.T @ fit_y)
    unexplained = ((test_x @ weights - test_y) ** 2).mean(0) / test_y.var(0)
    return unexplained.tolist(), torch.cat(reward_errors).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="0.1,0.25", help="rod widths as fractions of its length")
    parser.add_argument("--episodes", type=int, default=40, help="random training episodes")
    parser.add_argument("--held-out", type=int, default=16)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--action-repeat", type=int, default=4)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for width in (float(w) for w in args.widths.split(",")):
        env = make_pixel_env("pendulum-swingup", action_repeat=args.action_repeat, rod_width=width)
        agent = PlaNet(env, PlaNetConfig(model=LatentModelConfig(depth=args.depth)))
        collect(agent, agent.buffer, args.episodes, first_seed=0)
        start = time.perf_counter()
        parts = agent.train(args.updates)  # means over the updates
        last = agent.train(1)
        held_out = SequenceBuffer(env.observation_space.shape, agent.action_dim)
        unexplained, reward_mse = probe(agent, held_out, collect(agent, held_out, args.held_out, first_seed=5000))
        print(f"rod width {width:.2f}: after {args.updates + 1} updates ({time.perf_counter() - start:.0f} s) "
              f"KL {last['kl']:.2f} (mean {parts['kl']:.2f}), reconstruction {last['reconstruction']:.1f}, "
              f"training reward MSE {last['reward_mse']:.2f}; held out: filtered reward MSE {reward_mse:.2f}, "
              f"probe 1 - R^2 (cos, sin, theta_dot) {', '.join(f'{u:.3f}' for u in unexplained)}", flush=True)


if __name__ == "__main__":
    main()
