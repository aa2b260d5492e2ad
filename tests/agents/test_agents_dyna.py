"""Dyna: imagined rollouts, K = 0 is model-free SAC step for step, imagined updates save real steps."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from forethought.agents.dyna import Dyna, DynaConfig
from forethought.agents.imagination import imagine
from forethought.agents.sac import SAC, SACConfig
from forethought.envs.task_functions import TaskFunctions
from forethought.models.config import ModelConfig, TrainConfig
from forethought.models.known import KnownDynamics

from match_target import MatchTarget

SMALL_MODEL = dict(model=ModelConfig(kind="pe", ensemble_size=2, hidden_size=32, hidden_layers=2),
                   train=TrainConfig(max_epochs=5, patience=2))


def test_imagine_stops_each_rollout_after_its_terminal_step():
    model = KnownDynamics(lambda obs, action: obs + action, 1, 1)
    task = TaskFunctions(reward=lambda o, a, n: n[:, 0], termination=lambda o, a, n: n[:, 0] >= 2)
    batch = imagine(model, task, lambda obs: torch.ones_like(obs), torch.tensor([[0.0], [1.5]]), 4,
                    torch.Generator().manual_seed(0))
    assert batch.obs[:, 0].tolist() == [0.0, 1.5, 1.0]
    assert batch.next_obs[:, 0].tolist() == [1.0, 2.5, 2.0]
    assert batch.reward.tolist() == [1.0, 2.5, 2.0]
    assert batch.terminated.tolist() == [False, True, True] and not batch.truncated.any()


def test_zero_imagined_updates_is_exactly_sac():
    sac_config = SACConfig(hidden_size=32, batch_size=32, learning_starts=50)
    sac = SAC(gym.make("Pendulum-v1"), sac_config, seed=4)
    sac.learn(steps=260)
    dyna = Dyna(gym.make("Pendulum-v1"), DynaConfig(sac=sac_config, imagined_updates=0, model_warmup=60,
                                                     model_every=100, **SMALL_MODEL), seed=4)
    dyna.learn(steps=260)
    assert dyna.model_fits == [60, 160, 260]  # the model was trained, and changed nothing
    assert [r.total_reward for r in dyna.history] == [r.total_reward for r in sac.history]
    for mine, theirs in zip(dyna.sac.actor.parameters(), sac.actor.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def match_target_error(agent) -> float:
    obs = torch.rand(200, 2, generator=torch.Generator().manual_seed(9)) * 2 - 1
    return float((agent.sac.policy(obs, deterministic=True) - obs).abs().mean())


def test_imagined_updates_save_real_steps():
    task = TaskFunctions(reward=lambda o, a, n: -((a - o) ** 2).sum(-1), termination=lambda o, a, n: torch.ones(len(o), dtype=torch.bool))
    sac = SACConfig(hidden_size=64, batch_size=64, learning_starts=100, learning_rate=1e-3)
    errors = {}
    for k in (0, 4):
        agent = Dyna(MatchTarget(), DynaConfig(sac=sac, imagined_updates=k, model_warmup=100, model_every=100,
                                               **SMALL_MODEL), task=task, seed=3)
        agent.learn(steps=250)
        errors[k] = match_target_error(agent)
        assert agent.imagined_updates_done == k * 151
    assert errors[4] < 0.2 < errors[0], errors


def test_save_load_round_trip(tmp_path):
    config = DynaConfig(sac=SACConfig(hidden_size=16, batch_size=16, learning_starts=30), imagined_updates=2,
                        model_warmup=40, model_every=40, **SMALL_MODEL)
    agent = Dyna(gym.make("Pendulum-v1"), config)
    agent.learn(steps=60)
    agent.save(tmp_path / "dyna")
    loaded = Dyna.load(tmp_path / "dyna", gym.make("Pendulum-v1"))
    obs = torch.randn(8, 3)
    torch.testing.assert_close(loaded.sac.policy(obs, True), agent.sac.policy(obs, True), rtol=0, atol=0)
    assert loaded.model_fits == [40] and loaded.imagined_updates_done == agent.imagined_updates_done == 2 * 21
    torch.testing.assert_close(loaded.model.predict(obs, torch.zeros(8, 1)).mean,
                               agent.model.predict(obs, torch.zeros(8, 1)).mean)


def test_bad_config():
    with pytest.raises(ValueError, match="imagined_updates"):
        DynaConfig(imagined_updates=-1)
    with pytest.raises(ValueError, match="rollout_length"):
        DynaConfig(rollout_length=0)
