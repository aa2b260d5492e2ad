"""Exact resume: a run killed with SIGKILL and resumed writes the metrics of an uninterrupted run;
damaged checkpoints are passed over; directories that are not runs are refused."""

import csv
import json
import os
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


def test_a_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    reference = forethought(*PETS_ARGS, "--out", str(tmp_path / "reference"))
    killed = forethought(*PETS_ARGS, "--out", str(tmp_path / "killed"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once two trials are logged, mid-way through the third
        rows = (tmp_path / "killed" / "metrics.csv")
        if rows.exists() and len(rows.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(metrics(tmp_path / "killed")) < 6
    resumed = forethought("resume", str(tmp_path / "killed"))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    expected, got = metrics(tmp_path / "reference"), metrics(tmp_path / "killed")
    assert len(expected) == 6 and got == expected  # every trial, every return and loss, digit for digit
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["trials"] == 6


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
    assert (folder / "state.json").read_text() == "second" and not folder.with_name("agent.old").exists()
    # a crash mid-swap: the current folder moved aside, the new one complete
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
