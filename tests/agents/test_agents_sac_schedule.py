"""SAC's learning-rate schedule over updates (also inside MBPO): exact rates, the constant
default, kill/resume to identical metrics, bad settings refused by name."""

import dataclasses

import pytest
from test_agent_contract import Crash, crash_after, metrics, small_config

from forethought import envs
from forethought.agents.sac import SAC, SACConfig
from forethought.experiments.resume import resume_run
from forethought.experiments.run import start_run

SCHEDULE = ["lr_schedule=warmup_cosine", "lr_warmup_updates=20", "lr_decay_updates=120", "lr_min_fraction=0.1"]


def rates_per_update(config: SACConfig, updates: int) -> list[list[float]]:
    """Every optimizer's rate during each of ``updates`` updates on a filled buffer."""
    agent = SAC(envs.make("Pendulum-v1"), config, seed=0)
    agent.learn(steps=40)
    seen = []
    for _ in range(updates):
        agent.update(agent.buffer.sample(16, agent.generator))
        seen.append([g["lr"] for o in (agent.actor_optimizer, agent.critic_optimizer, agent.alpha_optimizer)
                     for g in o.param_groups])
    return seen


def test_the_rate_follows_warmup_then_cosine_over_updates():
    config = SACConfig(hidden_size=16, batch_size=16, learning_starts=1000, learning_rate=1e-3,
                       lr_schedule="warmup_cosine", lr_warmup_updates=4, lr_decay_updates=12, lr_min_fraction=0.2)
    seen = rates_per_update(config, 14)
    assert all(len(set(rates)) == 1 for rates in seen)  # actor, critic and temperature alike
    rates = [r[0] for r in seen]
    assert rates[:5] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3], rel=1e-12)
    assert rates[8] == pytest.approx(0.6e-3, rel=1e-12)  # the cosine's midpoint: (1 + 0.2) / 2
    assert rates[12:] == pytest.approx([2e-4, 2e-4], rel=1e-12)


def test_the_default_rate_is_constant():
    config = SACConfig(hidden_size=16, batch_size=16, learning_starts=1000)
    assert config.lr_schedule == "constant"
    assert {r for rates in rates_per_update(config, 5) for r in rates} == {3e-4}


@pytest.mark.parametrize("algo, prefix", [("sac", "agent."), ("mbpo", "agent.sac.")])
def test_a_killed_scheduled_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path, algo, prefix):
    config = small_config(algo, tmp_path, *(prefix + s for s in SCHEDULE))
    sac = config.agent if algo == "sac" else config.agent.sac
    assert sac.lr_schedule == "warmup_cosine" and sac.lr_decay_updates == 120
    start_run(algo, dataclasses.replace(config, out=str(tmp_path / "reference")))
    with pytest.raises(Crash):
        start_run(algo, dataclasses.replace(config, out=str(tmp_path / "crashed")), callback=crash_after(2))
    resume_run(tmp_path / "crashed")
    assert metrics(tmp_path / "crashed") == metrics(tmp_path / "reference")
    # the schedule changes learning: the same run at the constant rate ends elsewhere
    start_run(algo, small_config(algo, tmp_path / "constant"))
    assert metrics(tmp_path / "constant" / algo) != metrics(tmp_path / "reference")


@pytest.mark.parametrize("key, value, message", [
    ("lr_schedule", "plateau", "sac.lr_schedule must be one of ('constant', 'warmup_cosine'), got 'plateau'"),
    ("lr_warmup_updates", -2, "sac.lr_warmup_updates must be an integer >= 0, got -2"),
    ("lr_decay_updates", 0, "sac.lr_decay_updates must be an integer >= 1, got 0"),
    ("lr_warmup_updates", 200_000, "sac.lr_warmup_updates must be at most sac.lr_decay_updates=100000, got 200000"),
    ("lr_min_fraction", -0.1, "sac.lr_min_fraction must be a number in [0, 1], got -0.1"),
])
def test_bad_schedule_settings_are_refused_by_name(key, value, message):
    with pytest.raises(ValueError) as err:
        SACConfig(**{key: value})
    assert str(err.value) == message
