"""forethought sweep: grid x random x seeds expansion, sweep files rejected before any run starts,
the sweep folder's records, and fault tolerance: a run that crashes, or whose worker process is
SIGKILLed (process pool, local Ray cluster), is resumed from its checkpoint and ends up with the
metrics of an uninterrupted run."""

import csv
import json
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from forethought.cli import main
from forethought.experiments import run as run_module
from forethought.experiments.sweep import SweepBoard, sweep
from forethought.experiments.backends import read_attempt
from forethought.experiments.sweep_spec import load_sweep, resolve_runs

TINY_PETS = {"env": "linear", "episodes": 6, "oracle_episodes": 0, "video": False, "agent.model.kind": "linear",
             "agent.planner.particles": 2, "agent.planner.settings": {"population": 40, "elites": 5, "iterations": 2}}
RUNS = ["horizon=3,seed=0", "horizon=5,seed=0"]
TIMINGS = ("wall_s", "plan_ms_per_step")


def write_sweep(path: Path, **settings) -> Path:
    spec = {"command": "pets", "out": str(path.parent / "out"), "base": TINY_PETS,
            "grid": {"agent.planner.horizon": [3, 5]}, "backend": "sequential", **settings}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def metrics(path: Path) -> list[dict[str, str]]:
    with (path / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(handle)]


def runs_csv(out: Path) -> dict[str, dict[str, str]]:
    with (out / "runs.csv").open(newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def test_grid_random_and_seeds_expand_into_named_reproducible_runs(tmp_path):
    file = write_sweep(tmp_path / "sweep.yaml", seeds=[0, 1], random={
        "samples": 2, "seed": 7, "params": {"agent.train.lr": {"log_uniform": ["1e-4", 1.0e-2]},
                                            "agent.planner.particles": {"choice": [5, 10]}}},
        base={k: v for k, v in TINY_PETS.items() if k != "agent.planner.particles"})
    runs = resolve_runs(load_sweep(file))
    rng = np.random.default_rng(7)  # the draws, in order: per sample, per key
    draws = []
    for _ in range(2):
        lr = math.exp(rng.uniform(math.log(1e-4), math.log(1e-2)))
        draws.append((lr, [5, 10][int(rng.integers(2))]))
    expected = [(h, s, d, seed) for h in (3, 5) for s, d in enumerate(draws) for seed in (0, 1)]
    assert [r.name for r in runs] == [f"horizon={h},sample={s},lr={lr:.3g},particles={p},seed={seed}"
                                      for h, s, (lr, p), seed in expected]
    for run, (horizon, _, (lr, particles), seed) in zip(runs, expected):
        assert run.values == {"agent.planner.horizon": horizon, "agent.train.lr": lr, "agent.planner.particles": particles}
        assert run.config["agent"]["planner"]["horizon"] == horizon and run.config["agent"]["train"]["lr"] == lr
        assert run.config["agent"]["planner"]["particles"] == particles and run.config["seed"] == seed
        assert run.config["agent"]["planner"]["settings"] == {"population": 40, "elites": 5, "iterations": 2}
        assert run.config["out"] == str(tmp_path / "out" / "runs" / run.name)
    assert all(1e-4 <= r.values["agent.train.lr"] <= 1e-2 for r in runs)
    assert [r.values for r in resolve_runs(load_sweep(file))] == [r.values for r in runs]  # same draws every time
    assert [r.name for r in resolve_runs(load_sweep(file, ["random.seed=8"]))] != [r.name for r in runs]
    only_seeds = resolve_runs(load_sweep(file, ["grid={}", "random=null", "seeds=3"]))
    assert [r.name for r in only_seeds] == ["seed=0", "seed=1", "seed=2"]


@pytest.mark.parametrize("change, message", [
    ({"grdi": {}}, "unknown config key grdi"),
    ({"command": "ppo"}, "command must be one of"),
    ({"backend": "slurm"}, "backend must be one of"),
    ({"workers": 0}, "workers must be >= 1"),
    ({"retries": -1}, "retries must be >= 0"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"grid": {"agent.planner.horizon": []}}, "grid.agent.planner.horizon must be a non-empty list"),
    ({"grid": {"agent.planner.horizn": [3]}}, "unknown config key agent.planner.horizn"),
    ({"grid": {"agent.planner.horizon": [0, 5]}}, "horizon=0,seed=0 of the sweep: .*horizon must be an integer >= 1 or 'auto', got 0"),
    ({"base": {**TINY_PETS, "episodes": "many"}}, "episodes must be an integer"),
    ({"base": {**TINY_PETS, "seed": 3}}, "base.seed is set by the sweep: use seeds"),
    ({"base": {**TINY_PETS, "agent.planner.horizon": 4}}, "agent.planner.horizon is in both base and grid"),
    ({"random": {"params": {"agent.train.lr": {"normal": [0, 1]}}}}, "unknown distribution 'normal'"),
    ({"random": {"params": {"agent.train.lr": {"log_uniform": [1e-2, 1e-4]}}}}, "low < high"),
    ({"random": {"params": {"agent.train.lr": {"log_uniform": [0, 1e-2]}}}}, "needs 0 < low"),
    ({"random": {"params": {"agent.planner.particles": {"int_uniform": [2.5, 4]}}}}, "integers"),
    ({"random": {"samples": 0, "params": {"agent.train.lr": {"uniform": [0, 1]}}}}, "samples must be >= 1"),
])
def test_bad_sweep_files_are_rejected_before_any_run_starts(tmp_path, capsys, change, message):
    file = write_sweep(tmp_path / "sweep.yaml", **change)
    assert main(["sweep", str(file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("forethought sweep: error: ") and re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The two runs done one after another, uninterrupted."""
    folder = tmp_path_factory.mktemp("reference")
    assert main(["sweep", str(write_sweep(folder / "sweep.yaml")), "--quiet"]) == 0
    return folder / "out"


def test_a_sequential_sweep_writes_its_records_and_keeps_finished_runs(reference, capsys):
    rows = runs_csv(reference)
    assert list(rows) == RUNS
    for name, row in rows.items():
        summary = json.loads((reference / "runs" / name / "summary.json").read_text())
        assert row["status"] == "done" and row["attempts"] == "1" and row["seed"] == "0"
        assert float(row["final_return"]) == pytest.approx(summary["final_return"], rel=1e-5)
        assert len(metrics(reference / "runs" / name)) == 6
    assert [row["agent.planner.horizon"] for row in rows.values()] == ["3", "5"]
    table = (reference / "sweep.md").read_text()
    assert "| name | agent.planner.horizon | seed | status | attempts |" in table
    assert all(f"| {name} | " in table for name in RUNS) and "Best return: horizon=" in table
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["done"] == 2 and summary["failed"] == 0 and len(summary["runs"]) == 2
    board = SweepBoard(load_sweep(reference / "sweep.yaml"), resolve_runs(load_sweep(reference / "sweep.yaml")))
    board.status[RUNS[0]] = "done"  # as the backend reports it; the rest is read from the run directories
    console = Console(record=True, width=150)
    console.print(board.table())
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in console.export_text().splitlines()]
    table_rows = {row[0]: row[1:5] for row in cells if row and row[0] in RUNS}
    assert table_rows[RUNS[0]][:3] == ["done", "1", "6"] and table_rows[RUNS[1]][:3] == ["running", "1", "6"]
    assert float(table_rows[RUNS[0]][3]) == pytest.approx(float(rows[RUNS[0]]["final_return"]), abs=0.01)
    resolved = load_sweep(reference / "sweep.yaml")
    assert resolved.grid == {"agent.planner.horizon": [3, 5]} and resolved.backend == "sequential"
    # the same sweep again: nothing re-runs; another config in the same folder is refused
    before = (reference / "runs" / RUNS[0] / "metrics.csv").stat().st_mtime_ns
    assert main(["sweep", str(reference / "sweep.yaml"), "--quiet"]) == 0
    assert (reference / "runs" / RUNS[0] / "metrics.csv").stat().st_mtime_ns == before
    assert {row["attempts"] for row in runs_csv(reference).values()} == {"0"}
    capsys.readouterr()
    assert main(["sweep", str(reference / "sweep.yaml"), "--quiet", "base.episodes=7"]) == 2
    assert "holds a run with another config" in capsys.readouterr().err


def test_a_crashing_run_is_resumed_and_one_that_keeps_crashing_is_reported(reference, tmp_path, monkeypatch):
    real_start, calls = run_module.start_run, []

    class Crash(Exception):
        pass

    def flaky_start(algo, config, callback=None, overwrite=False, resume=False, warn=None, info=None):
        name = Path(config.out).name
        calls.append((name, resume))
        if name == RUNS[1]:
            raise Crash("horizon 5 always crashes")

        def crash_after_two(row):
            if len([c for c in calls if c[0] == name]) == 1 and row["episode"] == 1:
                raise Crash("first attempt crashes after two episodes")
        return real_start(algo, config, crash_after_two, overwrite=overwrite, resume=resume, warn=warn, info=info)

    monkeypatch.setattr(run_module, "start_run", flaky_start)
    summary = sweep(load_sweep(write_sweep(tmp_path / "sweep.yaml", retries=1)), progress=False)
    assert calls == [(RUNS[0], False), (RUNS[0], True), (RUNS[1], False), (RUNS[1], False)]
    rows = runs_csv(tmp_path / "out")
    assert rows[RUNS[0]]["status"] == "done" and rows[RUNS[0]]["attempts"] == "2"
    assert metrics(tmp_path / "out" / "runs" / RUNS[0]) == metrics(reference / "runs" / RUNS[0])
    assert rows[RUNS[1]]["status"] == "failed" and rows[RUNS[1]]["attempts"] == "2"
    assert rows[RUNS[1]]["error"] == "horizon 5 always crashes"
    assert summary["done"] == 1 and summary["failed"] == 1


def sweep_and_kill_one_worker(file: Path, victim: str) -> dict:
    """Run the sweep in a thread; once ``victim`` has logged two episodes, SIGKILL its worker process."""
    result, errors = {}, []

    def target():
        try:
            result.update(sweep(load_sweep(file), progress=False))
        except BaseException as err:  # re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    path, deadline = file.parent / "out" / "runs" / victim, time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline:
        attempt = read_attempt(path)
        if attempt and (path / "metrics.csv").exists() and len(metrics(path)) >= 2:
            assert attempt["pid"] != os.getpid() and attempt["attempt"] == 1
            os.kill(attempt["pid"], signal.SIGKILL)
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"{victim} never logged two episodes in a worker")
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    return result


def check_every_run_matches(out: Path, reference: Path, victim: str) -> None:
    rows = runs_csv(out)
    assert [row["status"] for row in rows.values()] == ["done", "done"]
    assert {name: row["attempts"] for name, row in rows.items()} == \
        {name: "2" if name == victim else "1" for name in RUNS}
    for name in RUNS:  # every episode's return and loss digit for digit, timings aside
        assert metrics(out / "runs" / name) == metrics(reference / "runs" / name)
        assert json.loads((out / "runs" / name / "summary.json").read_text())["episodes"] == 6


def test_a_process_pool_sweep_resumes_the_run_whose_worker_was_killed(reference, tmp_path):
    file = write_sweep(tmp_path / "sweep.yaml", backend="process", workers=2)
    summary = sweep_and_kill_one_worker(file, RUNS[1])
    assert summary["done"] == 2
    check_every_run_matches(tmp_path / "out", reference, RUNS[1])


@pytest.fixture
def local_ray():
    """A one-machine Ray cluster with 2 CPUs, shut down after the test."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_a_ray_sweep_resumes_the_run_whose_worker_was_killed(reference, tmp_path, local_ray):
    file = write_sweep(tmp_path / "sweep.yaml", backend="ray", workers=2)
    summary = sweep_and_kill_one_worker(file, RUNS[1])
    assert summary["done"] == 2 and summary["backend"] == "ray"
    check_every_run_matches(tmp_path / "out", reference, RUNS[1])
    assert local_ray.is_initialized()  # a cluster the sweep joined is left to its owner


def test_the_documented_sweep_file_is_valid(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sweeps.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", doc, flags=re.S).group(1)
    (tmp_path / "sweep.yaml").write_text(block)
    runs = resolve_runs(load_sweep(tmp_path / "sweep.yaml", [f"out={tmp_path / 'out'}"]))
    assert len(runs) == 8 and runs[0].name == "horizon=5,sample=0,lr=0.00188,particles=10,seed=0"
    assert not (tmp_path / "out").exists()
