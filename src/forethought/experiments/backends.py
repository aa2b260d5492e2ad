"""Where the runs of a sweep, comparison or ablation are run: one after another, in a local
process pool, or as Ray tasks (:func:`run_jobs`).

Every backend runs the same task, :func:`execute_run`: given a run's command and resolved config
(a small dict), it continues the run from its last good checkpoint if its run directory has one,
else starts it afresh. So a run whose process died (SIGKILL, out of memory, a lost Ray node) or
that raised is simply run again, up to ``retries`` more times, and picks up where its checkpoint
left it: its metrics come out as those of an uninterrupted run.

The task records each start in ``<run>/sweep_attempt.json`` (attempt number, pid, host, start
time), which is what the progress table and ``runs.csv`` read.

Each backend reports to ``report(name, status, summary=None, error=None)`` from the calling
thread: ``"done"`` with the run's summary, or ``"failed"`` with the last error once no retries
are left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from forethought.serialization import CheckpointError, atomic_write_text

ATTEMPT_FILE = "sweep_attempt.json"
BACKENDS = ("sequential", "process", "ray")
Report = Callable[..., None]


class RunsFailed(RuntimeError):
    """Some runs of a comparison or ablation still failed after their retries (each named with its error)."""


@dataclass
class Job:
    """One run to execute: its name, command (``pets``, ``sac``, ...), resolved config dict and
    more fields for its ``run.json`` (e.g. the preset its config was resolved with)."""

    name: str
    command: str
    config: dict
    info: dict = field(default_factory=dict)


def record_attempt(path: Path) -> dict[str, Any]:
    """Count one more start of the run in ``path`` (this process's pid and host, the time)."""
    file = path / ATTEMPT_FILE
    previous = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    now = time.time()
    attempt = {"attempt": previous.get("attempt", 0) + 1, "pid": os.getpid(), "host": socket.gethostname(),
               "started": now, "first_started": previous.get("first_started", now)}
    atomic_write_text(file, json.dumps(attempt, indent=2))
    return attempt


def read_attempt(path: Path) -> dict[str, Any] | None:
    """The last start recorded in ``path`` (see :func:`record_attempt`), or None if it never started."""
    try:
        return json.loads((path / ATTEMPT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def has_checkpoint(path: Path) -> bool:
    """Whether the run in ``path`` can be resumed: a run directory with an undamaged agent checkpoint."""
    from forethought.experiments.checkpoints import latest_agent_checkpoint

    if not (path / "run.json").is_file() or not (path / "config.yaml").is_file():
        return False
    try:
        latest_agent_checkpoint(path / "checkpoints" / "agent")
    except CheckpointError:
        return False
    return True


def execute_run(command: str, config: dict, threads: int | None = None, info: dict | None = None) -> dict[str, Any]:
    """Run one sweep run in this process with ``threads`` torch threads (None: leave as is):
    resumed from its last good checkpoint if its run directory (``config["out"]``) has one, else
    started afresh (``info``: more fields for its ``run.json``). Returns the run's summary."""
    import torch

    from forethought.config import build
    from forethought.experiments.run import start_run
    from forethought.experiments.run_config import run_config_class

    run_config = build(run_config_class(command), config)
    path = Path(run_config.out)
    path.mkdir(parents=True, exist_ok=True)
    record_attempt(path)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if has_checkpoint(path):
            return start_run(command, run_config, resume=True,
                             warn=lambda message: print(f"forethought sweep: {path.name}: {message}", file=sys.stderr))
        (path / "summary.json").unlink(missing_ok=True)  # a stale one from a run this start replaces
        return start_run(command, run_config, overwrite=True, info=info)
    finally:
        torch.set_num_threads(previous_threads)


def describe(error: BaseException) -> str:
    """The last line of an error (a Ray error carries the remote traceback before it)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else type(error).__name__
    return (text if len(text) <= 300 else text[:297] + "...") or type(error).__name__


def run_sequential(jobs: list[Job], retries: int, threads: int | None, report: Report) -> None:
    """Each run in this process, one after another; a run that raises is resumed up to ``retries`` times."""
    for job in jobs:
        for attempt in range(retries + 1):
            try:
                summary = execute_run(job.command, job.config, threads, job.info)
            except Exception as err:  # any crash of the run: the next attempt resumes it
                if attempt == retries:
                    report(job.name, "failed", error=describe(err))
                continue
            report(job.name, "done", summary=summary)
            break


def run_process_pool(jobs: list[Job], workers: int, retries: int, threads: int | None, report: Report) -> None:
    """Up to ``workers`` runs at a time, each slot a one-process pool (spawned, so no state is
    inherited). A run that raises, or whose process dies, is resumed up to ``retries`` times; a
    death breaks only its own slot's pool, which is started again, so the other runs carry on."""
    context = get_context("spawn")
    pending, failures = deque(jobs), {job.name: 0 for job in jobs}
    slots: list[ProcessPoolExecutor | None] = [None] * min(workers, len(jobs))
    running: dict[Future, tuple[int, Job]] = {}
    try:
        while pending or running:
            busy = {slot for slot, _ in running.values()}
            for slot in range(len(slots)):
                if pending and slot not in busy:
                    if slots[slot] is None:
                        slots[slot] = ProcessPoolExecutor(1, mp_context=context)
                    job = pending.popleft()
                    running[slots[slot].submit(execute_run, job.command, job.config, threads, job.info)] = (slot, job)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot, job = running.pop(future)
                try:
                    report(job.name, "done", summary=future.result())
                    continue
                except BrokenProcessPool as err:  # the worker process died: a fresh one for this slot
                    slots[slot].shutdown(wait=False)
                    slots[slot] = None
                    error = f"worker process died ({describe(err)})"
                except Exception as err:
                    error = describe(err)
                failures[job.name] += 1
                if failures[job.name] > retries:
                    report(job.name, "failed", error=error)
                else:
                    pending.appendleft(job)
    finally:
        for executor in slots:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


def run_ray(jobs: list[Job], workers: int, retries: int, threads: int | None, address: str | None,
            report: Report) -> None:
    """Every run as a Ray task (``threads`` CPUs each) that Ray retries up to ``retries`` times
    after its worker dies or it raises. Connects to the cluster at ``address``, or starts a local
    one with ``workers`` CPUs (shut down at the end); uses the one this process already joined, if any."""
    import ray

    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        task = ray.remote(execute_run).options(num_cpus=threads or 1, max_retries=retries, retry_exceptions=True)
        refs = {task.remote(job.command, job.config, threads, job.info): job for job in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                job = refs.pop(ref)
                try:
                    report(job.name, "done", summary=ray.get(ref))
                except Exception as err:  # RayTaskError, WorkerCrashedError, ...: retries used up
                    report(job.name, "failed", error=describe(err))
    finally:
        if started:
            ray.shutdown()


def check_backend(backend: str, workers: int, retries: int) -> None:
    """ValueError naming the setting unless ``backend`` is one of :data:`BACKENDS`, ``workers`` >= 1
    and ``retries`` >= 0."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")


def run_jobs(jobs: list[Job], backend: str, workers: int, retries: int, threads: int | None, report: Report,
             ray_address: str | None = None) -> None:
    """Run ``jobs`` on ``backend`` (one of :data:`BACKENDS`), ``workers`` at a time, each retried
    up to ``retries`` times from its checkpoint, with ``threads`` torch threads each (None: as the
    process has); ``report`` hears how each ended."""
    if backend == "sequential":
        run_sequential(jobs, retries, threads, report)
    elif backend == "process":
        run_process_pool(jobs, workers, retries, threads, report)
    elif backend == "ray":
        run_ray(jobs, workers, retries, threads, ray_address, report)
    else:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def run_study(jobs: list[Job], backend: str, workers: int, retries: int, on_done: Callable[[Job, dict[str, Any]], None],
              ray_address: str | None = None) -> None:
    """Run the jobs of a comparison or ablation afresh (their run folders are cleared first, so no
    run resumes from an older study's checkpoints) with :func:`run_jobs`, one torch thread each when
    ``workers`` > 1; ``on_done(job, summary)`` hears each finished run. Raises :class:`RunsFailed`
    naming every run that still failed after its retries."""
    by_name, failed = {job.name: job for job in jobs}, []
    for job in jobs:
        shutil.rmtree(job.config["out"], ignore_errors=True)

    def report(name: str, status: str, summary: dict[str, Any] | None = None, error: str | None = None) -> None:
        if status == "failed":
            failed.append(f"{name}: {error}")
        else:
            on_done(by_name[name], summary)

    run_jobs(jobs, backend, workers, retries, 1 if workers > 1 else None, report, ray_address)
    if failed:
        raise RunsFailed("runs failed after their retries: " + "; ".join(failed))
