"""Reference timing: mbrl-lib 0.2.0's PETS planning agent (CEM + trajectory sampling) on the
cart-pole dimensions, to compare with ``benchmarks/planning_speed.py`` side by side.

mbrl-lib is archived and pins hydra-core 1.0.3, which does not import on Python 3.11; in a
separate virtual environment it runs with hydra-core 1.3.2 and omegaconf 2.3.0:

    python -m venv /tmp/mbrlenv && /tmp/mbrlenv/bin/pip install torch==2.13.0 mbrl==0.2.0
    /tmp/mbrlenv/bin/pip install hydra-core==1.3.2 omegaconf==2.3.0
    /tmp/mbrlenv/bin/python benchmarks/mbrl_lib_reference.py

Same configuration as the "pets-paper" row of planning_speed.py: 7-member 4x200 Gaussian MLP
ensemble (SiLU), CEM population 350, elite ratio 0.1, 5 iterations, horizon 15, 20 particles,
random-model (TS1) propagation; untrained weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import omegaconf
import torch

import mbrl.models
import mbrl.planning


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    obs_dim, act_dim = 5, 1
    env = gym.Env()
    env.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    env.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    net = mbrl.models.GaussianMLP(obs_dim + act_dim, obs_dim, "cpu", num_layers=4, ensemble_size=7, hid_size=200,
                                  propagation_method="random_model",
                                  activation_fn_cfg={"_target_": "torch.nn.SiLU"})
    dynamics = mbrl.models.OneDTransitionRewardModel(net, target_is_delta=True, normalize=False,
                                                     learned_rewards=False)

    def reward_fn(actions, next_obs):
        tip_x = next_obs[:, 0] + 0.6 * next_obs[:, 3]
        tip_y = 0.6 * (next_obs[:, 2] - 1.0)
        return (torch.exp(-(tip_x**2 + tip_y**2) / (2 * 0.25**2)) - 0.01 * (actions**2).sum(-1)).unsqueeze(-1)

    def termination_fn(actions, next_obs):
        return torch.zeros(next_obs.shape[0], 1, dtype=torch.bool)

    model_env = mbrl.models.ModelEnv(env, dynamics, termination_fn, reward_fn, generator=torch.Generator().manual_seed(0))
    agent_cfg = omegaconf.OmegaConf.create({
        "_target_": "mbrl.planning.TrajectoryOptimizerAgent", "_recursive_": False,  # hydra 1.3 semantics
        "planning_horizon": 15, "replan_freq": 1,
        "verbose": False, "action_lb": [-1.0], "action_ub": [1.0],
        "optimizer_cfg": {"_target_": "mbrl.planning.CEMOptimizer", "num_iterations": 5, "elite_ratio": 0.1,
                          "population_size": 350, "alpha": 0.1, "device": "cpu", "lower_bound": [[-1.0]] * 15,
                          "upper_bound": [[1.0]] * 15, "return_mean_elites": True, "clipped_normal": False}})
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(model_env, agent_cfg, num_particles=20)
    obs = np.array([0.0, 0.0, -1.0, 0.0, 0.0], dtype=np.float32)
    agent.act(obs)  # warm-up
    times = []
    for _ in range(args.actions):
        start = time.perf_counter()
        agent.act(obs)
        times.append(1000 * (time.perf_counter() - start))
    print(f"mbrl-lib 0.2.0 pets-paper configuration: {statistics.median(times):.1f} ms per action "
          f"(median of {args.actions}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
