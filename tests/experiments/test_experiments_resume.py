"""Exact resume: a run killed with SIGKILL and resumed writes the metrics of an uninterrupted run;
damaged checkpoints are passed over; directories that are not runs are refused."""

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forethought.cli import main
from forethought.experiments.checkpoints import latest_agent_checkpoint, save_agent_checkpoint, write_manifest
from forethought.serialization import CheckpointError

PETS_ARGS = ["run", "pets", "--env", "linear", "--trials", "6", "--seed", "3", "oracle_episodes=0", "video=false",
             "agent.model.ensemble_size=2", "agent.model.hidden_size=16", "agent.model.hidden_layers=2",
             "agent.train.max_epochs=30", "agent.planner.horizon=5", "agent.planner.particles=2",
             "agent.planner.settings={population: 40, elites: 5, iterations: 2}"]
TIMINGS = ("wall_s", "plan_ms_per_step")


def forethought(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count in every process: same rounding
    return subprocess.Popen([sys.executable, "-m", "forethought.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def metrics(path: Path) -> list[dict[str, str]]:
    with (path / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(handle)]


def kill_and_resume(args: list[str], out: Path, after_rows: int, wait_s: float = 0.0) -> subprocess.Popen:
    """Start ``forethought *args --out out``, SIGKILL it ``wait_s`` after its metrics.csv holds
    ``after_rows`` rows, and return ``forethought resume out`` started."""
    killed = forethought(*args, "--out", str(out))
    deadline = time.monotonic() + 300
    rows = out / "metrics.csv"
    while time.monotonic() < deadline and not (rows.exists() and len(rows.read_text().splitlines()) > after_rows):
        assert killed.poll() is None, f"the run ended before it was killed: {killed.stderr.read()}"
        time.sleep(0.05)
    time.sleep(wait_s)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(metrics(out)) <= after_rows + 1
    return forethought("resume", str(out))


def test_a_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    reference = forethought(*PETS_ARGS, "--out", str(tmp_path / "reference"))
    resumed = kill_and_resume(PETS_ARGS, tmp_path / "killed", after_rows=2)  # mid-way through the third trial
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    expected, got = metrics(tmp_path / "reference"), metrics(tmp_path / "killed")
    assert len(expected) == 6 and got == expected  # every trial, every return and loss, digit for digit
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["episodes"] == 6 and summary["env_steps"] == 300


def test_a_killed_run_with_a_learned_reward_resumes_to_the_same_metrics(tmp_path):
    args = [*PETS_ARGS, "agent.reward=learned", "agent.termination=learned", "agent.task_model.hidden_size=16",
            "agent.task_model.train.max_epochs=5"]
    reference = forethought(*args, "--out", str(tmp_path / "reference"))
    resumed = kill_and_resume(args, tmp_path / "killed", after_rows=3)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    expected, got = metrics(tmp_path / "reference"), metrics(tmp_path / "killed")
    assert len(expected) == 6 and got == expected
    assert all(row["reward_mse"] != "" for row in expected[2:])  # the learned reward was measured and resumed


def test_damaged_checkpoints_are_passed_over_with_a_message(tmp_path):
    folder = tmp_path / "checkpoints" / "agent"

    def writer(text):
        def save(path):
            path.mkdir(parents=True)
            (path / "state.json").write_text(text)
        return save

    save_agent_checkpoint(writer("first"), folder)
    assert latest_agent_checkpoint(folder) == folder
    save_agent_checkpoint(writer("second"), folder)
    assert (folder / "state.json").read_text() == "second"
    assert (folder.with_name("agent.old") / "state.json").read_text() == "first"  # the previous good one, kept
    # a crash mid-swap: the previous one dropped, the current one moved aside, the new one being written
    shutil.rmtree(folder.with_name("agent.old"))
    os.replace(folder, folder.with_name("agent.old"))
    writer("third")(folder.with_name("agent.new"))
    assert latest_agent_checkpoint(folder) == folder.with_name("agent.old")  # .new has no manifest yet
    (folder.with_name("agent.old") / "state.json").write_text("tampered")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        latest_agent_checkpoint(folder)
    save_agent_checkpoint(writer("fourth"), folder)
    (folder / "state.json").write_text("truncat")
    messages = []
    with pytest.raises(CheckpointError, match="no usable agent checkpoint"):
        latest_agent_checkpoint(folder, messages.append)


def test_previous_checkpoint_is_used_when_the_newest_is_damaged(tmp_path):
    folder = tmp_path / "agent"
    save_agent_checkpoint(lambda p: (p.mkdir(), (p / "state.json").write_text("two")), folder)
    newest = folder.with_name("agent.new")  # a crash after the new folder was complete, before the swap
    newest.mkdir()
    (newest / "state.json").write_text("three")
    write_manifest(newest)
    assert (latest_agent_checkpoint(folder) / "state.json").read_text() == "three"
    (newest / "state.json").write_text("thre")  # then damaged on disk
    messages = []
    chosen = latest_agent_checkpoint(folder, messages.append)
    assert (chosen / "state.json").read_text() == "two" and "checksum mismatch" in messages[0]


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["resume", str(tmp_path / "plain")]) == 2
    assert "not a forethought run directory" in capsys.readouterr().err
    out = tmp_path / "fit"
    assert main(["fit-model", "--env", "linear", "--model", "linear", "--steps", "200", "--out", str(out), "--quiet"]) == 0
    assert main(["resume", str(out)]) == 2
    assert "written by 'fit-model'" in capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "version": "0.0.1"}))
    assert main(["resume", str(out)]) == 2
    assert "written by forethought 0.0.1" in capsys.readouterr().err


MBPO_ARGS = ["run", "mbpo", "--env", "Pendulum-v1", "--steps", "450", "--seed", "2", "eval_every=150", "eval_episodes=1",
             "agent.sac.hidden_size=32", "agent.sac.batch_size=32", "agent.sac.learning_starts=60",
             "agent.model.ensemble_size=2", "agent.model.hidden_size=16", "agent.model.hidden_layers=2",
             "agent.train.max_epochs=5", "agent.model_every=100", "agent.rollout_every=50",
             "agent.rollout_starts=64", "agent.policy_updates=2", "agent.rollout_schedule=[100, 300]",
             "agent.max_rollout_length=3"]


def test_a_killed_and_resumed_mbpo_run_matches_an_uninterrupted_one(tmp_path):
    """Killed mid-way through the second 200-step episode (evaluations after the episodes that cross
    150 and 300 steps, and at the end): the resumed run replays the unfinished episode from the
    checkpoint after the first, and its SAC, model, model buffer and generators carry on exactly."""
    reference = forethought(*MBPO_ARGS, "--out", str(tmp_path / "reference"))
    resumed = kill_and_resume(MBPO_ARGS, tmp_path / "killed", after_rows=1, wait_s=0.5)  # into the second episode
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    expected, got = metrics(tmp_path / "reference"), metrics(tmp_path / "killed")
    # one row per episode, then the evaluation where the step budget ends inside the third
    assert [(r["episode"], r["env_steps"]) for r in expected] == [("0", "200"), ("1", "400"), ("", "450")]
    assert all(r["eval_return"] != "" for r in expected) and expected[-1]["return"] == ""
    assert got == expected


class Crash(Exception):
    pass


def _crash_after(rows: int):
    seen = []

    def callback(row) -> None:
        seen.append(row)
        if len(seen) == rows:
            raise Crash
    return callback


@pytest.mark.parametrize("algo", ["sac", "dyna"])
def test_sac_and_dyna_runs_resume_exactly_after_a_crash(tmp_path, algo):
    from forethought.config import load_config
    from forethought.experiments.resume import resume_run
    from forethought.experiments.run import start_run
    from forethought.experiments.run_config import run_config_class

    overrides = ["env=Pendulum-v1", "steps=400", "eval_every=150", "eval_episodes=1", "seed=1",
                 "agent.sac.hidden_size=32" if algo == "dyna" else "agent.hidden_size=32",
                 "agent.sac.batch_size=32" if algo == "dyna" else "agent.batch_size=32"]
    if algo == "dyna":
        overrides += ["agent.model.ensemble_size=2", "agent.model.hidden_size=16", "agent.train.max_epochs=3",
                      "agent.model_warmup=50", "agent.model_every=100", "agent.imagined_updates=2"]
    config = load_config(run_config_class(algo), None, overrides)
    start_run(algo, dataclasses.replace(config, out=str(tmp_path / "reference")))
    with pytest.raises(Crash):
        start_run(algo, dataclasses.replace(config, out=str(tmp_path / "crashed")), callback=_crash_after(2))
    summary = resume_run(tmp_path / "crashed")
    expected, got = metrics(tmp_path / "reference"), metrics(tmp_path / "crashed")
    # two 200-step episodes, each evaluated (it crosses 150, then 300 steps); the crash came after the
    # second's row, before its checkpoint: the resumed run replays it from the first's
    assert [r["env_steps"] for r in expected] == ["200", "400"] and all(r["eval_return"] for r in expected)
    assert got == expected
    assert summary["env_steps"] == 400


def test_a_crashed_dreamer_run_resumes_exactly(tmp_path):
    from forethought.config import load_config
    from forethought.experiments.resume import resume_run
    from forethought.experiments.run import start_run
    from forethought.experiments.run_config import run_config_class

    # 20 raw steps (10 decisions at action repeat 2) per episode, evaluated every 50 raw steps: after
    # the episodes that cross 50 and 100 (the last)
    overrides = ["env=pendulum-swingup", "agent.model.image_size=16", "action_repeat=2", "steps=100",
                 "oracle_episodes=0", "eval_every=50", "checkpoint_every=1", "seed=4", "env_kwargs={max_episode_steps: 20}",
                 "open_loop_context=3", "open_loop_length=8", "agent.model.depth=4", "agent.model.deter_size=16",
                 "agent.model.stoch=4", "agent.model.hidden_size=16", "agent.seed_episodes=1", "agent.train_steps=2",
                 "agent.batch_size=2", "agent.sequence_length=5", "agent.imagination_horizon=3"]
    config = load_config(run_config_class("dreamer"), None, overrides)
    start_run("dreamer", dataclasses.replace(config, out=str(tmp_path / "reference")))
    with pytest.raises(Crash):
        start_run("dreamer", dataclasses.replace(config, out=str(tmp_path / "crashed")), callback=_crash_after(3))
    resume_run(tmp_path / "crashed")
    drop = ("wall_s", "act_ms_per_step", "train_s")
    expected = [{k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / "reference")]
    got = [{k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / "crashed")]
    assert len(expected) == 5 and got == expected
    assert [r["env_steps"] for r in expected] == ["20", "40", "60", "80", "100"]
    assert [bool(r["eval_return"]) for r in expected] == [False, False, True, False, True]
    reference = json.loads((tmp_path / "reference" / "summary.json").read_text())
    resumed = json.loads((tmp_path / "crashed" / "summary.json").read_text())
    assert resumed["held_out_reward_abs_error_by_horizon"] == reference["held_out_reward_abs_error_by_horizon"]


def test_a_finished_pets_run_goes_on_to_a_larger_budget_as_one_started_with_it(tmp_path):
    import yaml

    short, full = tmp_path / "short", tmp_path / "full"
    args = [arg for arg in PETS_ARGS if arg not in ("--trials", "6")]
    assert main([*args, "--trials", "3", "--out", str(short)]) == 0
    assert main([*args, "--trials", "5", "--out", str(full)]) == 0
    assert main(["resume", str(short), "--trials", "5"]) == 0
    assert metrics(short) == metrics(full) and len(metrics(full)) == 5  # no evaluations: digit for digit
    assert yaml.safe_load((short / "config.yaml").read_text())["episodes"] == 5  # a later resume keeps it
    assert json.loads((short / "summary.json").read_text())["episodes"] == 5


def test_a_finished_sac_run_goes_on_to_more_steps(tmp_path):
    from forethought.config import load_config
    from forethought.experiments.resume import resume_run
    from forethought.experiments.run import start_run
    from forethought.experiments.run_config import run_config_class

    overrides = ["env=Pendulum-v1", "eval_every=150", "eval_episodes=1", "seed=1", "agent.hidden_size=32",
                 "agent.batch_size=32", "agent.learning_starts=100"]
    config = load_config(run_config_class("sac"), None, [*overrides, "steps=200"])
    start_run("sac", dataclasses.replace(config, out=str(tmp_path / "short")))
    start_run("sac", dataclasses.replace(config, steps=400, out=str(tmp_path / "full")))
    summary = resume_run(tmp_path / "short", budget=["steps=400"])
    # the evaluation at the old end (200 steps) is one the full run makes too (it crosses 150)
    assert [r["env_steps"] for r in metrics(tmp_path / "full")] == ["200", "400"]
    assert metrics(tmp_path / "short") == metrics(tmp_path / "full")
    assert summary["env_steps"] == 400


def test_resume_refuses_a_budget_already_met_and_any_other_key_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    args = [arg for arg in PETS_ARGS if arg not in ("--trials", "6")]
    assert main([*args, "--trials", "2", "--out", str(out)]) == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert main(["resume", str(out), "--trials", "1"]) == 2
    assert "already taken 100 environment steps in 2 episodes, which episodes=1 does not go beyond" in capsys.readouterr().err
    assert main(["resume", str(out), "seed=4"]) == 2
    assert "resume only moves a run's budget (steps=N, episodes=N); 'seed=4'" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
