"""A sweep of 8 short PETS runs (linear system, a 3-member probabilistic ensemble, iCEM over 10
steps; one torch thread per run) one after another, on the local process pool and on a local Ray
cluster: wall-clock time of each, its ratio to sequential, and that every backend gives the same
returns. Each time includes the backend's start-up (spawning workers that import torch, starting
Ray), as a user of ``forethought sweep`` pays it. First it measures how many cores' worth of
pure-Python work ``--workers`` processes side by side get here, against one process alone (on a
machine whose cores other jobs share, the sweep cannot be faster than that).

    python benchmarks/sweep_parallel.py --runs 8 --workers 2 --trials 8
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

from forethought.experiments.sweep import sweep
from forethought.experiments.sweep_spec import SweepConfig

BASE = {"env": "linear", "oracle_episodes": 0, "video": False, "agent.model.kind": "pe", "agent.model.ensemble_size": 3,
        "agent.model.hidden_size": 64, "agent.model.hidden_layers": 2, "agent.train.max_epochs": 20,
        "agent.planner.optimizer": "icem", "agent.planner.horizon": 10, "agent.planner.particles": 3,
        "agent.planner.settings": {"population": 100, "elites": 10, "iterations": 3}}


def _spin(steps: int = 20_000_000) -> float:
    start, total = time.perf_counter(), 0
    for i in range(steps):
        total += i
    return time.perf_counter() - start


def cores_available(workers: int) -> float:
    """Work done by ``workers`` busy processes side by side per unit of one process's work alone."""
    alone = _spin()
    with get_context("spawn").Pool(workers) as pool:
        pool.map(_spin, [1] * workers)  # the workers' start-up (importing this script) is not counted
        start = time.perf_counter()
        pool.map(_spin, [20_000_000] * workers)
        together = time.perf_counter() - start
    return workers * alone / together


def final_returns(out: Path) -> list[str]:
    with (out / "runs.csv").open(newline="") as handle:
        return [row["final_return"] for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="runs in the sweep (seeds 0 .. runs-1)")
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers and Ray CPUs")
    parser.add_argument("--trials", type=int, default=8, help="PETS trials per run")
    parser.add_argument("--backends", default="sequential,process,ray")
    args = parser.parse_args()
    print(f"{args.workers} busy processes side by side get {cores_available(args.workers):.2f} cores' worth here")
    timings, returns = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            config = SweepConfig(command="pets", out=str(Path(folder) / backend), base={**BASE, "trials": args.trials},
                                 seeds=list(range(args.runs)), backend=backend, workers=args.workers, threads=1)
            start = time.perf_counter()
            summary = sweep(config, progress=False)
            timings[backend] = time.perf_counter() - start
            returns[backend] = final_returns(Path(config.out))
            run_s = sum(run["wall_s"] for run in summary["runs"])
            print(f"{backend:10s} {timings[backend]:7.1f} s wall clock for {summary['done']} runs "
                  f"({run_s:.1f} s inside the runs)", flush=True)
    reference = next(iter(timings))
    for backend, seconds in timings.items():
        same = "same returns" if returns[backend] == returns[reference] else "DIFFERENT returns"
        print(f"{backend:10s} {timings[reference] / seconds:5.2f}x the speed of {reference} ({same})")


if __name__ == "__main__":
    main()
