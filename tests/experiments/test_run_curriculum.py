"""The curriculum in the run loop: training episodes start from the stage, evaluations from the
task's own start, the stage is logged per episode, survives a resume, and bad settings stop the
CLI before anything is written."""

import csv
import dataclasses
import pytest

from forethought.cli import main
from forethought.config import load_config
from forethought.envs.cartpole_swingup import CartPoleSwingUpEnv
from forethought.experiments.resume import resume_run
from forethought.experiments.run import start_run
from forethought.experiments.run_config import run_config_class
from forethought.seeding import derive_seed, episode_seed

# every training return of the cart-pole is above -5, so every episode widens the start
SETTINGS = ["env=cartpole-swingup", "steps=400", "eval_every=200", "eval_episodes=2", "agent.hidden_size=16",
            "agent.batch_size=16", "agent.learning_starts=30", "video=false", "curriculum.start_spread=0.5",
            "curriculum.widen_by=1.0", "curriculum.widen_when_return_above=-5", "seed=2"]


class Crash(Exception):
    pass


def crash_after(rows):
    seen = []

    def callback(row):
        seen.append(row)
        if len(seen) == rows:
            raise Crash
    return callback


def metrics(path):
    with open(path / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(handle)]


def sac_config(out, *extra):
    config = load_config(run_config_class("sac"), None, [*SETTINGS, *extra])
    return dataclasses.replace(config, out=str(out))


def test_training_starts_follow_the_stages_and_evaluations_start_as_the_task_does(tmp_path, monkeypatch):
    resets = []
    original = CartPoleSwingUpEnv.reset

    def recording(self, *, seed=None, options=None):
        resets.append((seed, options))
        return original(self, seed=seed, options=options)

    monkeypatch.setattr(CartPoleSwingUpEnv, "reset", recording)
    start_run("sac", sac_config(tmp_path / "run"))
    eval_seeds = {derive_seed(2, "eval", i) for i in range(2)}
    evaluations = [options for seed, options in resets if seed in eval_seeds]
    training = [(seed, options) for seed, options in resets if seed not in eval_seeds]
    assert len(evaluations) == 4 and all(options is None for options in evaluations)  # 2 evaluations x 2 episodes
    assert [seed for seed, _ in training] == [episode_seed(2, episode) for episode in range(4)]
    for (_, options), spread in zip(training[:3], (0.5, 1.5, 2.5)):
        assert abs(options["theta"]) <= spread
    assert training[3][1] is None  # 3.5 >= pi: the fourth episode starts as the task does
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["start_spread"] for row in rows] == ["0.5", "1.5", "2.5", ""]
    assert rows[1]["eval_return"] != "" and rows[3]["eval_return"] != ""  # evaluated at 200 and 400 steps


def test_a_killed_curriculum_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path):
    start_run("sac", sac_config(tmp_path / "reference"))
    with pytest.raises(Crash):
        start_run("sac", sac_config(tmp_path / "crashed"), callback=crash_after(2))
    resume_run(tmp_path / "crashed")
    assert metrics(tmp_path / "crashed") == metrics(tmp_path / "reference")
    assert "start_spread: 0.5" in (tmp_path / "crashed" / "config.yaml").read_text()


@pytest.mark.parametrize("algo, setting, message", [
    ("sac", "curriculum.start_spread=4", "curriculum.start_spread must be None (no curriculum) or radians in (0, pi)"),
    ("sac", "curriculum.widen_by=0", "curriculum.widen_by must be radians > 0, got 0"),
    ("sac", "env=Pendulum-v1", "curriculum.start_spread needs cartpole-swingup or pendulum-swingup"),
    ("pets", "eval_every=null", "curriculum.start_spread=0.5 needs eval_every"),
    ("pets", "agent.train.lr_schedule=cosine", "train.lr_schedule must be one of"),
    ("mbpo", "agent.sac.lr_decay_updates=0", "sac.lr_decay_updates must be an integer >= 1, got 0"),
])
def test_bad_settings_are_named_and_nothing_is_written(tmp_path, capsys, algo, setting, message):
    out = tmp_path / "run"
    base = ["env=cartpole-swingup", "eval_every=100", "curriculum.start_spread=0.5"]
    assert main(["run", algo, "--out", str(out), *base, setting]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
