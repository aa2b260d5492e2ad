"""The environment side of the run loop: action repeat (rewards summed, raw steps counted), the
layout of flattened observations in run.json, non-finite environment outputs, Discrete actions,
and bad input refused before the run directory exists."""

import dataclasses
import json

import numpy as np
import pytest

import fixture_envs  # noqa: F401  (registers the fixtures/ ids)
from forethought.cli import main
from forethought.config import load_config
from forethought.envs import ActionRepeat
from forethought.experiments.checkpoints import latest_agent_checkpoint
from forethought.experiments.run import make_env, start_run
from forethought.experiments.run_config import run_config_class

SMALL_MODEL = ["agent.model.ensemble_size=2", "agent.model.hidden_size=8", "agent.model.hidden_layers=1",
               "agent.train.max_epochs=1"]
SMALL = {
    "pets": ["episodes=2", "oracle_episodes=0", *SMALL_MODEL, "agent.planner.horizon=2", "agent.planner.particles=1",
             "agent.planner.optimizer=random", "agent.planner.propagation=expectation",
             "agent.planner.settings={population: 4}"],
    "sac": ["steps=24", "eval_every=12", "eval_episodes=1", "agent.hidden_size=8", "agent.batch_size=4",
            "agent.learning_starts=4"],
}


def config_for(algo, tmp_path, *extra):
    config = load_config(run_config_class(algo), None, [*SMALL[algo], "env=fixtures/Ones-v0", "video=false", *extra])
    return dataclasses.replace(config, out=str(tmp_path / algo))


@pytest.mark.parametrize("algo", ["pets", "sac"])
def test_action_repeat_sums_rewards_and_counts_raw_steps(tmp_path, algo):
    """Reward 1 per raw step, 12 raw steps an episode, K = 3: 4 decisions an episode, each worth 3."""
    config = config_for(algo, tmp_path, "action_repeat=3")
    decisions = []
    summary = start_run(algo, config, callback=lambda row: decisions.append(row))
    rows = [row for row in decisions if row["episode"] is not None]
    assert [row["env_steps"] for row in rows] == [12, 24] and [row["return"] for row in rows] == [12.0, 12.0]
    assert summary["env_steps"] == 24
    env = make_env(algo, config)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(1, np.float32))
    assert reward == 3.0 and info["repeat_steps"] == 3
    from forethought.agents import AGENTS
    agent = AGENTS[algo](make_env(algo, config), config.agent, seed=0)
    agent.learn(episodes=1)
    assert agent.history[0].steps == 4 and agent.env_steps == 12  # decisions vs raw steps
    assert len(agent.buffer) == 4 and agent.buffer.arrays()["reward"].tolist() == [3.0] * 4


def test_the_evaluation_environment_gets_the_same_repeat(tmp_path):
    config = config_for("sac", tmp_path, "action_repeat=4")
    train, evaluation = make_env("sac", config, render=True), make_env("sac", config)
    assert isinstance(train, ActionRepeat) and isinstance(evaluation, ActionRepeat)
    assert train.repeat == evaluation.repeat == 4
    assert not isinstance(make_env("sac", config_for("sac", tmp_path)), ActionRepeat)  # the default: 1


def test_the_observation_layout_is_recorded_in_run_json(tmp_path):
    config = config_for("sac", tmp_path, "env=fixtures/DictOnes-v0")
    start_run("sac", config)
    info = json.loads((tmp_path / "sac" / "run.json").read_text())
    assert info["observation_layout"] == [{"key": "time", "shape": [1], "offset": 0, "size": 1},
                                          {"key": "zero", "shape": [2], "offset": 1, "size": 2}]
    start_run("sac", dataclasses.replace(config_for("sac", tmp_path), out=str(tmp_path / "flat")))
    assert "observation_layout" not in json.loads((tmp_path / "flat" / "run.json").read_text())


def test_a_non_finite_observation_stops_the_run_naming_episode_and_step_and_keeps_checkpoints(tmp_path, capsys):
    out = tmp_path / "nan"
    code = main(["run", "sac", "--env", "fixtures/NaNSecondEpisode-v0", "--steps", "48", "--out", str(out),
                 "eval_every=null", "video=false", "agent.hidden_size=8", "agent.batch_size=4",
                 "agent.learning_starts=4"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "training episode 1" in err and "non-finite observation" in err and "step 3 " in err
    assert "[1] = nan" in err
    checkpoint = latest_agent_checkpoint(out / "checkpoints" / "agent", None, agent="SAC")
    assert json.loads((checkpoint / "run_state.json").read_text())["config"]["env"] == "fixtures/NaNSecondEpisode-v0"
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("value", ["0", "-1", "1.5"])
def test_a_bad_action_repeat_is_refused_before_the_run_directory_exists(tmp_path, capsys, value):
    out = tmp_path / "bad"
    assert main(["run", "sac", "--env", "linear", "--steps", "10", "--out", str(out), f"action_repeat={value}"]) == 2
    assert "action_repeat must be an integer" in capsys.readouterr().err and not out.exists()


def test_an_unknown_env_module_is_refused_before_the_run_directory_exists(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["run", "sac", "--env", "no_such_pkg_xyz:Robot-v0", "--steps", "10", "--out", str(out)]) == 2
    assert "pip install 'no_such_pkg_xyz'" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("algo", ["sac", "dyna", "mbpo", "guided"])
def test_discrete_actions_are_refused_by_the_policy_learners_before_the_run_directory_exists(tmp_path, algo):
    config = dataclasses.replace(load_config(run_config_class(algo), None, ["env=CartPole-v1", "steps=10"]),
                                 out=str(tmp_path / algo))
    names = {"sac": "SAC", "dyna": "Dyna", "mbpo": "MBPO", "guided": "GuidedMPC"}
    with pytest.raises(ValueError, match=rf"^{names[algo]} needs a Box action space.*Discrete\(2\)"):
        start_run(algo, config)
    assert not (tmp_path / algo).exists()


@pytest.mark.parametrize("optimizer", ["icem", "mppi", "gradient", "lqr", "ilqr"])
def test_pets_refuses_discrete_actions_with_a_planner_that_cannot_use_them(tmp_path, optimizer):
    config = dataclasses.replace(load_config(run_config_class("pets"), None,
                                             ["env=CartPole-v1", f"agent.planner.optimizer={optimizer}"]),
                                 out=str(tmp_path / "pets"))
    with pytest.raises(ValueError, match=rf"PETS with the '{optimizer}' planner needs a Box action space, "
                                         rf"got Discrete\(2\).*optimizer=random or cem"):
        start_run("pets", config)
    assert not (tmp_path / "pets").exists()


@pytest.mark.parametrize("optimizer", ["random", "cem"])
def test_pets_plans_discrete_actions_with_random_and_cem(tmp_path, optimizer):
    from forethought.agents import PETS
    from forethought.agents.pets import PETSConfig
    from forethought.envs import TaskFunctions, make
    from forethought.envs.task_functions import never_terminates
    from forethought.planning.config import PlannerConfig

    settings = {"population": 8} if optimizer == "random" else {"population": 8, "elites": 2, "iterations": 2}
    planner = PlannerConfig(optimizer=optimizer, horizon=3, particles=1, propagation="expectation", settings=settings)
    config = load_config(PETSConfig, None, ["model.ensemble_size=2", "model.hidden_size=8", "model.hidden_layers=1",
                                            "train.max_epochs=1", "random_trial_steps=20"])
    agent = PETS(make("CartPole-v1"), dataclasses.replace(config, planner=planner),
                 task=TaskFunctions(fixture_envs.ones_reward, never_terminates), seed=0)
    random_trial, planned = agent.learn(episodes=2)
    assert random_trial.random and not planned.random and planned.info["plan_ms_per_step"] is not None
    assert agent.env_steps == random_trial.steps + planned.steps
    assert set(np.unique(agent.buffer.arrays()["action"])) <= {0.0, 1.0}


def test_a_mujoco_run_films_its_last_episode(tmp_path):
    import imageio.v3 as iio

    config = config_for("pets", tmp_path, "env=InvertedPendulum-v5", "video=true", "action_repeat=2",
                        "env_kwargs={max_episode_steps: 6}")
    start_run("pets", config)
    frames = iio.imread(tmp_path / "pets" / "videos" / "last_episode.gif")
    assert frames.shape[1:3] == (160, 160) and 2 <= frames.shape[0] <= 4  # reset + one frame per action
