"""The run directory: one writer at a time, overwrite removes only a run's own outputs, unwritable
targets are one-line errors with nothing half-written, resume checks the config, and reading a run
back imports nothing."""

import csv
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

from forethought import serialization
from forethought.experiments import run_dir as run_dir_module
from forethought.experiments.backends import ATTEMPT_FILE
from forethought.experiments.resume_checks import check_env_id_from_run, check_resume_config, config_changes
from forethought.experiments.run_dir import PRESERVED, RunDir, clear_run_outputs, read_run_info
from forethought.experiments.run_lock import LOCK_FILE, RunDirError, RunDirInUse, RunLock, in_use


@dataclass
class Planner:
    horizon: int = 5
    settings: dict = field(default_factory=lambda: {"population": 40})


@dataclass
class Config:
    env: str = "linear"
    trials: int = 3
    seed: int = 0
    sizes: tuple = (32, 32)
    planner: Planner = field(default_factory=Planner)


def rows(path) -> list[dict[str, str]]:
    with (path / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def holder_process(path, exit_how: str) -> subprocess.Popen:
    """A process that opens a RunDir on ``path``, says ``ready``, then waits (``wait``) or exits
    without closing it (``exit``)."""
    code = textwrap.dedent(f"""
        import time
        from dataclasses import dataclass
        from forethought.experiments.run_dir import RunDir

        @dataclass
        class Config:
            seed: int = 0

        run = RunDir({str(path)!r}, Config())
        print("ready", flush=True)
        if {exit_how!r} == "wait":
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


# ---------------------------------------------------------------------------- layout
def test_a_new_run_writes_its_layout_and_releases_its_lock(tmp_path):
    out = tmp_path / "run"
    with RunDir(out, Config(), command="run pets", info={"env_source": "config"}) as run:
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
        run.log({"trial": 1, "return": -3.5}, step=1)
        run.log({"trial": 2, "return": -1.0}, step=2)
        run.write_summary({"trials": 2})
    assert not (out / LOCK_FILE).exists()
    assert rows(out) == [{"trial": "1", "return": "-3.5"}, {"trial": "2", "return": "-1.0"}]
    info = json.loads((out / "run.json").read_text())
    assert info["command"] == "run pets" and info["env_source"] == "config" and "version" in info
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.yaml", "metrics.csv", "plots",
                                                     "run.json", "summary.json", "tensorboard"]


def test_files_get_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with RunDir(tmp_path / "run", Config()) as run:
            run.log({"trial": 1}, step=1)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.path.iterdir() if p.is_file()}
    finally:
        os.umask(previous)
    assert modes == {".lock": 0o644, "config.yaml": 0o644, "run.json": 0o644, "metrics.csv": 0o644}


def test_resume_keeps_the_rows_its_checkpoint_covers(tmp_path):
    out = tmp_path / "run"
    with RunDir(out, Config()) as run:
        for trial in range(1, 4):
            run.log({"trial": trial}, step=trial)
    with RunDir(out, Config(), resume_rows=2) as run:
        assert run.kept_rows == [{"trial": "1"}, {"trial": "2"}]
        run.log({"trial": 3}, step=3)
    assert [r["trial"] for r in rows(out)] == ["1", "2", "3"]
    with pytest.raises(RunDirError, match="not a forethought run directory"):
        RunDir(tmp_path / "elsewhere", Config(), resume_rows=0)


# ---------------------------------------------------------------------------- one writer
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunDir(out, Config()):
        with pytest.raises(RunDirInUse, match=rf"{out} is in use by process {os.getpid()} on "):
            RunDir(out, Config(), overwrite=True)
        with pytest.raises(RunDirInUse, match=f"process {os.getpid()}"):
            RunDir(out, Config(), resume_rows=0)
        assert in_use(out)["pid"] == os.getpid()
    assert in_use(out) is None
    RunDir(out, Config(), resume_rows=0).close()  # free again


def test_another_process_holds_the_lock_until_it_dies(tmp_path):
    out = tmp_path / "run"
    process = holder_process(out, "wait")
    try:
        with pytest.raises(RunDirInUse, match=f"in use by process {process.pid}") as caught:
            RunDir(out, Config(), overwrite=True)
        assert caught.value.holder["pid"] == process.pid
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # the dead process left its lock file behind: it is stale and taken over
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == process.pid and in_use(out) is None
    with RunDir(out, Config(), overwrite=True) as run:
        assert run.lock.previous["pid"] == process.pid
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_stale_lock_file_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 999_999_999, "host": "gone"}))
    with RunDir(out, Config()) as run:  # a folder holding only a lock counts as empty
        assert run.lock.previous == {"pid": 999_999_999, "host": "gone"}


def test_the_lock_is_released_at_process_exit(tmp_path):
    out = tmp_path / "run"
    process = holder_process(out, "exit")
    assert process.wait(timeout=60) == 0
    assert not (out / LOCK_FILE).exists()


def test_a_lock_taken_first_is_adopted(tmp_path):
    out = tmp_path / "run"
    RunDir(out, Config()).close()
    lock = RunLock(out)  # e.g. held while the checkpoint to resume is read
    with RunDir(out, Config(), resume_rows=0, lock=lock) as run:
        assert run.lock is lock and lock.held
    assert not lock.held and not (out / LOCK_FILE).exists()


# ---------------------------------------------------------------------------- overwrite
def test_overwrite_removes_the_old_runs_outputs_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    with RunDir(out, Config(trials=9)) as run:
        run.log({"trial": 1, "old_column": 5}, step=1)
        (run.checkpoints / "agent").mkdir()
        (run.checkpoints / "agent" / "state.json").write_text("{}")
        (run.plots / "learning_curve.png").write_bytes(b"png")
        (out / "videos").mkdir()
        (out / "videos" / "trial_001.gif").write_bytes(b"gif")
        run.write_summary({"trials": 1})
    (out / "notes.txt").write_text("mine")
    (out / ATTEMPT_FILE).write_text("{}")
    (out / ".summary.json.0123456789ab.tmp").write_text("left by a crash")
    with pytest.raises(FileExistsError, match="already holds a run"):
        RunDir(out, Config())
    with RunDir(out, Config(trials=2), overwrite=True) as run:
        assert sorted(p.name for p in out.iterdir()) == sorted([".lock", ATTEMPT_FILE, "checkpoints", "config.yaml",
                                                                "metrics.csv", "notes.txt", "plots", "run.json",
                                                                "tensorboard"])
        assert not any(run.checkpoints.iterdir()) and not any(run.plots.iterdir())
        run.log({"trial": 1}, step=1)
    assert rows(out) == [{"trial": "1"}] and "trials: 2" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_run_is_refused(tmp_path, overwrite):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("...")
    (out / "metrics.csv").write_text("mine")
    with pytest.raises(RunDirError, match=rf"{out} is not empty and not a forethought run directory "
                                          r"\(it holds chapter1.tex\)"):
        RunDir(out, Config(), overwrite=overwrite)
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex", "metrics.csv"]
    assert (out / "metrics.csv").read_text() == "mine"
    assert PRESERVED >= {ATTEMPT_FILE, LOCK_FILE}  # the sweep backend's record is never foreign


def test_overwrite_refuses_while_a_run_inside_is_being_written(tmp_path):
    study = tmp_path / "compare"
    RunDir(study, Config()).close()
    with RunDir(study / "runs" / "sac-seed0", Config()):
        with pytest.raises(RunDirInUse, match=rf"its run {study / 'runs' / 'sac-seed0'} is in use by process"):
            clear_run_outputs(study)
    assert clear_run_outputs(study) == ["checkpoints", "config.yaml", "metrics.csv", "plots", "run.json", "runs",
                                        "tensorboard"]


# ---------------------------------------------------------------------------- unwritable targets
def test_an_existing_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'taken'} is an existing file, not a folder"):
        RunDir(tmp_path / "taken", Config())
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'taken'} is an existing file"):
        RunDir(tmp_path / "taken" / "run", Config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir_module.os, "access", lambda path, mode: False)
    with pytest.raises(RunDirError, match=rf"cannot write the run directory {tmp_path / 'run'}: .* is not writable"):
        RunDir(tmp_path / "run", Config())
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_a_read_only_folder_is_refused(tmp_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        with pytest.raises(RunDirError, match="is not writable"):
            RunDir(readonly / "run", Config())
    finally:
        readonly.chmod(0o755)


def full_disk(after_bytes: int = 0):
    def write_all(fd, data):
        os.write(fd, data[:after_bytes])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write_all


@pytest.mark.parametrize("exists", [False, True])
def test_a_full_disk_while_setting_up_leaves_nothing(tmp_path, monkeypatch, exists):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    monkeypatch.setattr(serialization, "write_all", full_disk(5))
    with pytest.raises(RunDirError, match=rf"^cannot lock the run directory {out}: no space left on device$"):
        RunDir(out, Config())
    assert (sorted(p.name for p in out.iterdir()) == [] if exists else not out.exists())


def test_a_full_disk_writing_the_config_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = serialization.write_all
    monkeypatch.setattr(serialization, "write_all", lambda fd, data: (real if data.startswith(b'{"pid"') else
                                                                      full_disk(3))(fd, data))
    with pytest.raises(RunDirError, match=rf"cannot write the run directory {out}: no space left on device "
                                          rf"\(.*config.yaml\)"):
        RunDir(out, Config())
    assert not out.exists()


def test_a_full_disk_while_running_keeps_whole_rows(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with RunDir(out, Config()) as run:
        run.log({"trial": 1, "return": -2.0}, step=1)
        monkeypatch.setattr(serialization, "write_all", full_disk(4))
        with pytest.raises(RunDirError, match=rf"cannot write {out / 'metrics.csv'}: no space left on device"):
            run.log({"trial": 2, "return": -1.0}, step=2)
        with pytest.raises(RunDirError, match=r"cannot write .*summary.json: no space left on device"):
            run.write_summary({"trials": 2})
        monkeypatch.undo()
        run.log({"trial": 3, "return": 0.5}, step=3)
    assert rows(out) == [{"trial": "1", "return": "-2.0"}, {"trial": "3", "return": "0.5"}]
    assert not (out / "summary.json").exists() and not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------------------- resume checks
def test_config_changes_are_dotted_keys_with_old_and_new(tmp_path):
    assert config_changes(Config(), Config()) == {}
    changed = Config(trials=5, planner=Planner(horizon=10, settings={"population": 40, "elites": 4}))
    assert config_changes(Config(), changed) == {"planner.horizon": (5, 10), "planner.settings.elites": ("<absent>", 4),
                                                 "trials": (3, 5)}
    assert config_changes({"sizes": [32, 32]}, {"sizes": (32, 32)}) == {}  # as config.yaml stores them


def test_resume_refuses_changed_keys_unless_all_are_safe(tmp_path):
    out = tmp_path / "run"
    RunDir(out, Config()).close()
    assert check_resume_config(out, Config(trials=8)) == {"trials": (3, 8)}
    with pytest.raises(RunDirError, match=r"cannot resume .* \(planner.horizon: 5 -> 10; seed: 0 -> 1\); only "
                                          r"trials, steps, episodes, out may change"):
        check_resume_config(out, Config(trials=8, seed=1, planner=Planner(horizon=10)))
    assert check_resume_config(out, Config(planner=Planner(horizon=10)), safe=["planner.*"]) == {
        "planner.horizon": (5, 10)}
    (out / "config.yaml").write_text("[unclosed")
    with pytest.raises(RunDirError, match="config.yaml cannot be read as YAML"):
        check_resume_config(out, Config())


def test_an_env_id_that_imports_a_module_is_only_taken_when_given_again():
    assert check_env_id_from_run("Pendulum-v1") == "Pendulum-v1"
    assert check_env_id_from_run("Pendulum-v1", "HalfCheetah-v5") == "Pendulum-v1"
    assert check_env_id_from_run("my_pkg.envs:Robot-v0", "my_pkg.envs:Robot-v0") == "my_pkg.envs:Robot-v0"
    for given in (None, "Robot-v0"):
        with pytest.raises(RunDirError, match=r"runs/x names the environment 'my_pkg.envs:Robot-v0', which imports "
                                              r"the Python module 'my_pkg.envs'.*pass --env my_pkg.envs:Robot-v0 "
                                              "explicitly to allow importing that module"):
            check_env_id_from_run("my_pkg.envs:Robot-v0", given, "runs/x")
    assert "my_pkg" not in sys.modules


def test_a_damaged_run_record_is_a_run_dir_error(tmp_path):
    out = tmp_path / "run"
    RunDir(out, Config(), command="run pets").close()
    assert read_run_info(out)["command"] == "run pets"
    (out / "run.json").write_text('{"command": "run pe')
    with pytest.raises(RunDirError, match="run.json is not valid JSON"):
        read_run_info(out)
