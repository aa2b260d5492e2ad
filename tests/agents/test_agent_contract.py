"""The contract every agent keeps: act on a reset observation, learn a tiny budget, save, load and
act identically; and a run killed after a checkpoint resumes to the metrics of an uninterrupted one."""

import csv
import dataclasses

import numpy as np
import pytest

from forethought import envs
from forethought.agents import AGENTS, Agent, EpisodeResult
from forethought.config import load_config
from forethought.experiments.resume import resume_run
from forethought.experiments.run import make_env, start_run
from forethought.experiments.run_config import run_config_class

SMALL_MODEL = ["agent.model.ensemble_size=2", "agent.model.hidden_size=16", "agent.model.hidden_layers=1",
               "agent.train.max_epochs=2"]
SMALL_SAC = ["hidden_size=16", "batch_size=16", "learning_starts=30"]
SMALL_LATENT = ["env_kwargs={max_episode_steps: 20}", "agent.model.image_size=16", "agent.model.depth=4",
                "agent.model.deter_size=16", "agent.model.stoch=4", "agent.model.hidden_size=16",
                "agent.seed_episodes=1", "agent.train_steps=2", "agent.batch_size=2", "agent.sequence_length=5",
                "open_loop_context=3", "open_loop_length=8", "oracle_episodes=0"]
SMALL = {
    "pets": ["env=linear", "episodes=2", "oracle_episodes=0", *SMALL_MODEL, "agent.planner.horizon=4",
             "agent.planner.particles=2"],
    "sac": ["env=Pendulum-v1", "steps=250", "eval_every=100", "eval_episodes=1", *(f"agent.{s}" for s in SMALL_SAC)],
    "dyna": ["env=Pendulum-v1", "steps=250", "eval_every=100", "eval_episodes=1", *SMALL_MODEL,
             *(f"agent.sac.{s}" for s in SMALL_SAC), "agent.model_warmup=40", "agent.model_every=100",
             "agent.imagined_updates=1"],
    "mbpo": ["env=Pendulum-v1", "steps=250", "eval_every=100", "eval_episodes=1", *SMALL_MODEL,
             *(f"agent.sac.{s}" for s in SMALL_SAC), "agent.model_every=100", "agent.rollout_every=100",
             "agent.rollout_starts=10", "agent.policy_updates=1"],
    "guided": ["env=Pendulum-v1", "steps=250", "eval_every=100", "eval_episodes=1", *SMALL_MODEL,
               *(f"agent.sac.{s}" for s in SMALL_SAC), "agent.model_every=100", "agent.rollout_every=100",
               "agent.rollout_starts=10", "agent.policy_updates=1", "agent.planner.horizon=3",
               "agent.planner.particles=2", "agent.planner.settings={population: 8, elites: 2, iterations: 1}",
               "agent.hybrid.proposals=2", "agent.hybrid.fallback_threshold=0.5"],
    "planet": ["env=pendulum-swingup", "steps=100", "eval_every=40", "eval_episodes=1", *SMALL_LATENT,
               "agent.horizon=3", "agent.settings={population: 8, elites: 2, iterations: 1}"],
    "dreamer": ["env=pendulum-swingup", "steps=100", "eval_every=40", "eval_episodes=1", *SMALL_LATENT,
                "agent.imagination_horizon=3"],
    "muzero": ["env=CartPole-v1", "steps=null", "episodes=4", "eval_every=40", "eval_episodes=1",
               "agent.search.simulations=4", "agent.learning_starts=20", "agent.batch_size=8", "agent.hidden_size=16",
               "agent.latent_dim=8"],
}


def small_config(algo, tmp_path, *extra):
    config = load_config(run_config_class(algo), None, [*SMALL[algo], "seed=3", *extra])
    return dataclasses.replace(config, out=str(tmp_path / algo))


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_every_agent_acts_learns_saves_and_loads_to_the_same_actions(tmp_path, algo):
    config = small_config(algo, tmp_path)
    env = make_env(algo, config)
    agent = AGENTS[algo](env, config.agent, seed=3)
    assert isinstance(agent, Agent) and agent.name == algo
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(np.asarray(agent.act(obs), dtype=env.action_space.dtype))
    budget = {"steps": 230} if config.steps is not None else {"episodes": 2}
    if algo in ("planet", "dreamer"):
        budget = {"episodes": 2}
    seen = []
    finished = agent.learn(callback=seen.append, **budget)
    assert finished and seen == finished and all(isinstance(r, EpisodeResult) for r in finished)
    assert agent.history[-len(finished):] == finished
    assert [r.episode for r in agent.history] == list(range(len(agent.history)))
    assert agent.env_steps >= finished[-1].env_steps > 0
    if "steps" in budget:
        assert agent.env_steps == 230  # step-wise agents stop exactly at the budget
    agent.save(tmp_path / "saved")
    loaded = AGENTS[algo].load(tmp_path / "saved", make_env(algo, config))
    assert loaded.env_steps == agent.env_steps and loaded.history == agent.history
    obs, _ = env.reset(seed=5)
    agent.reset(), loaded.reset()
    np.testing.assert_array_equal(np.asarray(agent.act(obs)), np.asarray(loaded.act(obs)))


def test_learn_needs_a_budget():
    agent = AGENTS["sac"](envs.make("Pendulum-v1"), seed=0)
    with pytest.raises(ValueError, match="give a budget"):
        agent.learn()
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        agent.learn(steps=0)


class Crash(Exception):
    pass


def crash_after(rows):
    seen = []

    def callback(row):
        seen.append(row)
        if len(seen) == rows:
            raise Crash
    return callback


def metrics(path, drop=("wall_s", "plan_ms_per_step", "act_ms_per_step", "train_s")):
    with open(path / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_a_killed_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path, algo):
    config = small_config(algo, tmp_path)
    reference = start_run(algo, dataclasses.replace(config, out=str(tmp_path / "reference")))
    crashed = dataclasses.replace(config, out=str(tmp_path / "crashed"))
    with pytest.raises(Crash):
        start_run(algo, crashed, callback=crash_after(2))
    resumed = resume_run(tmp_path / "crashed")
    assert metrics(tmp_path / "crashed") == metrics(tmp_path / "reference")
    assert len(metrics(tmp_path / "reference")) >= 2
    assert resumed["final_return"] == reference["final_return"] and resumed["env_steps"] == reference["env_steps"]


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    config = small_config("pets", tmp_path, "checkpoint_every=5")
    start_run("pets", dataclasses.replace(config, out=str(tmp_path / "reference")))
    with pytest.raises(Crash):
        start_run("pets", dataclasses.replace(config, out=str(tmp_path / "crashed")), callback=crash_after(1))
    assert not (tmp_path / "crashed" / "checkpoints" / "agent").exists()
    resume_run(tmp_path / "crashed")
    assert metrics(tmp_path / "crashed") == metrics(tmp_path / "reference")
