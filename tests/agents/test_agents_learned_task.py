"""Agents on a task whose reward and termination are registered nowhere (``point_goal.PointGoal``,
a Dict observation flattened): ``reward=auto``/``termination=auto`` learn both, plan and imagine
with them, report their held-out quality, and beat random actions on a fixed seed."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from point_goal import PointGoal

from forethought.agents import PETS, MBPO, Dyna
from forethought.cli import main
from forethought.agents.dyna import DynaConfig
from forethought.agents.mbpo import MBPOConfig
from forethought.agents.pets import PETSConfig
from forethought.agents.sac import SACConfig
from forethought.data.buffer import ReplayBuffer, TransitionBatch
from forethought.data.env_loop import episode_returns, random_policy
from forethought.envs import TaskFunctions
from forethought.models.config import ModelConfig
from forethought.models.task_model import QUALITY_KEYS, TaskModel, TaskModelConfig
from forethought.planning.config import PlannerConfig

EVAL_SEEDS = [100, 101, 102, 103, 104]
SMALL_MODEL = ModelConfig(ensemble_size=3, hidden_size=64, hidden_layers=2)
SMALL_TASK = TaskModelConfig(hidden_size=64, hidden_layers=2)


def point_goal() -> gym.Env:
    return gym.wrappers.FlattenObservation(PointGoal())


def random_return() -> float:
    env = point_goal()
    env.action_space.seed(0)
    return float(np.mean(episode_returns(env, random_policy(env.action_space), EVAL_SEEDS)))


def evaluate(agent) -> float:
    return float(np.mean(episode_returns(point_goal(), agent.act, EVAL_SEEDS)))


def test_auto_learns_what_is_not_registered():
    agent = PETS(point_goal(), PETSConfig(model=SMALL_MODEL), seed=0)
    assert agent.task_model.learns_reward and agent.task_model.learns_termination
    known = TaskFunctions(lambda o, a, n: -n[:, 0], lambda o, a, n: n[:, 0] > 1)
    given = PETS(point_goal(), PETSConfig(model=SMALL_MODEL), task=known, seed=0)
    assert not given.task_model.learns
    learned = PETS(point_goal(), PETSConfig(model=SMALL_MODEL, reward="learned"), task=known, seed=0)
    assert learned.task_model.learns_reward and not learned.task_model.learns_termination


def test_known_without_registration_is_refused():
    with pytest.raises(ValueError, match=r"agent.reward=known, but no reward and termination functions"):
        PETS(point_goal(), PETSConfig(reward="known"), seed=0)
    with pytest.raises(ValueError, match=r"agent.termination=known"):
        MBPO(point_goal(), MBPOConfig(termination="known"), seed=0)
    with pytest.raises(ValueError, match=r"reward must be one of \['auto', 'known', 'learned'\], got 'guess'"):
        PETSConfig(reward="guess")
    with pytest.raises(ValueError, match=r"termination must be one of .*'never'"):
        DynaConfig(termination="sometimes")


def test_never_terminates_and_known_registered_task():
    agent = PETS(point_goal(), PETSConfig(model=SMALL_MODEL, termination="never"), seed=0)
    assert agent.task_model.learns_reward and not agent.task_model.learns_termination
    x = torch.zeros(3, 4)
    assert not agent.task.termination(x, torch.zeros(3, 2), x).any()
    pendulum = PETS(gym.make("Pendulum-v1"), PETSConfig(), seed=0)  # registered: nothing to learn
    assert not pendulum.task_model.learns


def test_pets_learns_reward_and_termination_and_beats_random():
    config = PETSConfig(model=SMALL_MODEL, task_model=SMALL_TASK,
                        planner=PlannerConfig(horizon=10, settings={"population": 50, "elites": 5}))
    agent = PETS(point_goal(), config, seed=0)
    results = agent.learn(episodes=8)
    assert results[0].random and all(r.info["reward_mse"] is None for r in results[:2])  # nothing held out yet
    assert all(r.info["reward_mse"] is not None for r in results[2:])
    assert results[-1].info["reward_mse"] < 0.05  # the reward along the newest trial, before it was fitted on
    assert evaluate(agent) > random_return() + 10  # about 24 against 8.5


def test_mbpo_and_dyna_imagine_with_learned_functions_and_beat_random():
    sac = SACConfig(learning_starts=150, hidden_size=64)
    mbpo = MBPO(point_goal(), MBPOConfig(sac=sac, model=SMALL_MODEL, task_model=SMALL_TASK, model_every=100,
                                         rollout_every=100, rollout_starts=200, policy_updates=10), seed=0)
    mbpo.learn(steps=800)
    assert mbpo.task_model.fitted and mbpo.task_quality["reward_r2"] > 0.5
    batch = mbpo.model_buffer.all()
    truth = 1.0 - torch.linalg.vector_norm(batch.next_obs[:, :2] - torch.tensor([0.8, 0.5]), dim=-1) \
        - 0.01 * batch.action.pow(2).sum(-1)
    assert float((mbpo.model_buffer.all().reward - truth).abs().mean()) < 0.1  # imagined rewards are the learned ones
    dyna = Dyna(point_goal(), DynaConfig(sac=sac, model=SMALL_MODEL, task_model=SMALL_TASK, model_every=100,
                                         model_warmup=150, imagined_updates=5), seed=0)
    dyna.learn(steps=800)
    assert dyna.task_model.fitted and dyna.task_quality["reward_mse"] < 0.05
    baseline = random_return()
    assert evaluate(mbpo) > baseline + 12  # about 27 against 8.5
    assert evaluate(dyna) > baseline + 12  # about 30


def test_learned_task_saves_and_loads(tmp_path):
    config = PETSConfig(model=SMALL_MODEL, task_model=SMALL_TASK, planner=PlannerConfig(horizon=5))
    agent = PETS(point_goal(), config, seed=0)
    agent.learn(episodes=2)
    agent.save(tmp_path / "agent")
    loaded = PETS.load(tmp_path / "agent", point_goal())
    x, a = torch.randn(6, 4), torch.randn(6, 2)
    assert torch.equal(agent.task.reward(x, a, x), loaded.task.reward(x, a, x))
    assert torch.equal(agent.task.termination(x, a, x), loaded.task.termination(x, a, x))
    assert loaded.task_model.fitted_rows == agent.task_model.fitted_rows


class Fixed:
    """A fitted stand-in for a learned part: ``fn(obs, action, next_obs)``."""

    fitted = True

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, obs, action, next_obs):
        return self.fn(obs, action, next_obs)


def test_quality_figures_are_exact():
    task = TaskModel(None, "learned", "learned", 1, 1, TaskModelConfig(hidden_size=8, hidden_layers=1))
    task.reward_model = Fixed(lambda o, a, n: n[:, 0])
    task.termination_model = Fixed(lambda o, a, n: n[:, 0] > 0.5)
    batch = TransitionBatch(obs=torch.zeros(4, 1), action=torch.zeros(4, 1), reward=torch.tensor([0.0, 1.0, 2.0, 3.0]),
                            next_obs=torch.tensor([[0.0], [1.0], [2.0], [5.0]]),
                            terminated=torch.tensor([False, True, False, True]), truncated=torch.zeros(4, dtype=torch.bool))
    quality = task.quality(batch)
    # errors 0, 0, 0, 2: MSE 1; the rewards' variance 1.25; predicted to terminate rows 1-3, of which 1 and 3 do
    assert quality == pytest.approx({"reward_mse": 1.0, "reward_r2": 0.2, "termination_precision": 2 / 3,
                                     "termination_recall": 1.0})
    none_terminate = TransitionBatch(batch.obs, batch.action, torch.ones(4), torch.zeros(4, 1),
                                     torch.zeros(4, dtype=torch.bool), batch.truncated)
    assert task.quality(none_terminate) == {"reward_mse": 1.0, "reward_r2": None, "termination_precision": None,
                                            "termination_recall": None}


def test_fit_measures_only_rows_new_since_the_last_fit():
    task = TaskModel(None, "learned", "never", 1, 1, TaskModelConfig(hidden_size=8, hidden_layers=1))
    buffer = ReplayBuffer(1, 1)
    rng = np.random.default_rng(0)
    for _ in range(64):
        x = rng.normal(size=1)
        buffer.add(x, [0.0], float(x[0]), x)
    first = task.fit(buffer, torch.Generator().manual_seed(0))
    assert first["reward_mse"] is None and first["task_diverged"] is False and task.fitted_rows == 64
    buffer.add([10.0], [0.0], 10.0, [10.0])  # one new row, far outside what was fitted
    expected = task.quality(buffer.all()[64:])["reward_mse"]
    second = task.fit(buffer, torch.Generator().manual_seed(0))
    assert second["reward_mse"] == expected and second["reward_r2"] is None  # one row: no variance
    assert task.fitted_rows == 65


@pytest.mark.parametrize("args, message", [
    (["pets", "--env", "MountainCarContinuous-v0", "agent.reward=known"],
     "agent.reward=known, but no reward and termination functions are registered for MountainCarContinuous-v0"),
    (["mbpo", "--env", "MountainCarContinuous-v0", "agent.termination=known"], "agent.termination=known"),
    (["dyna", "--env", "Pendulum-v1", "agent.reward=guess"], "reward must be one of ['auto', 'known', 'learned']"),
    (["pets", "--env", "Pendulum-v1", "agent.task_model.hidden_size=0"], "task_model.hidden_size must be an integer >= 1"),
])
def test_bad_reward_settings_exit_2_before_the_run_directory_exists(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_run_on_an_unregistered_dict_task_logs_the_learned_figures(tmp_path):
    from forethought.config import load_config
    from forethought.experiments.run import start_run
    from forethought.experiments.run_config import run_config_class

    if "forethought-tests/PointGoal-v0" not in gym.registry:
        gym.register("forethought-tests/PointGoal-v0", entry_point=PointGoal)
    config = load_config(run_config_class("pets"), None, [
        "env=forethought-tests/PointGoal-v0", "episodes=3", "video=false", f"out={tmp_path / 'run'}",
        "agent.model.ensemble_size=2", "agent.model.hidden_size=16", "agent.task_model.hidden_size=16",
        "agent.task_model.train.max_epochs=5", "agent.planner.horizon=3"])
    rows = []
    summary = start_run("pets", config, callback=rows.append)
    assert [row["reward_mse"] is None for row in rows] == [True, True, False]  # held-out rows from the 2nd fit on
    assert summary["task_quality"]["reward_mse"] == {"last": rows[2]["reward_mse"], "mean": rows[2]["reward_mse"],
                                                     "fits": 1}
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-4:] == ["reward_mse", "reward_r2", "termination_precision", "termination_recall"]
