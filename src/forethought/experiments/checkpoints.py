"""Agent checkpoints a crash cannot half-write, and the search for the last good one.

An agent saves itself into a folder of several files (model, buffer, generator states, JSON
state). :func:`save_agent_checkpoint` writes a new folder beside the current one, then a
``manifest.json`` with every file's SHA-256 (last, so a folder with a manifest is complete), and
only then swaps it in:

    checkpoints/agent.new/  ->  checkpoints/agent/  (the previous one kept as agent.old/ meanwhile)

:func:`latest_agent_checkpoint` returns the newest folder whose files all match their manifest: a
complete ``agent.new`` (a crash during the swap), else ``agent``, else ``agent.old``, saying why
when it had to pass over a damaged one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from forethought.serialization import CheckpointError, atomic_write_text

MANIFEST = "manifest.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the SHA-256 of every file in ``folder`` (written last: it marks the folder complete)."""
    files = {p.name: _digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    atomic_write_text(folder / MANIFEST, json.dumps({"format": "forethought-agent", "files": files}, indent=2))


def check_manifest(folder: Path) -> str | None:
    """None if ``folder`` is complete and undamaged, else what is wrong with it."""
    if not (folder / MANIFEST).is_file():
        return f"{folder} has no {MANIFEST} (never finished writing)"
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        return f"{folder / MANIFEST} is damaged ({err})"
    for name, digest in files.items():
        if not (folder / name).is_file():
            return f"{folder / name} is missing"
        if _digest(folder / name) != digest:
            return f"{folder / name} is corrupted or truncated (checksum mismatch)"
    return None


def save_agent_checkpoint(save: Callable[[Path], None], folder: str | os.PathLike) -> Path:
    """Call ``save(path)`` (e.g. ``agent.save``) into a fresh folder and swap it in as ``folder``."""
    folder = Path(folder)
    new, old = folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    save(new)
    write_manifest(new)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_agent_checkpoint(folder: str | os.PathLike, warn: Callable[[str], None] | None = None) -> Path:
    """The newest undamaged agent folder among ``folder``, ``folder.new`` and ``folder.old``.

    Raises:
        CheckpointError: none of them is complete and undamaged (each one's problem is named).
    """
    folder = Path(folder)
    problems = []
    # a complete .new is always the newest: it is written after the current one and swapped in at once
    for candidate in (folder.with_name(folder.name + ".new"), folder, folder.with_name(folder.name + ".old")):
        if not candidate.is_dir():
            continue
        problem = check_manifest(candidate)
        if problem is None:
            if problems and warn is not None:
                warn(f"using checkpoint {candidate}: " + "; ".join(problems))
            return candidate
        problems.append(problem)
    raise CheckpointError(f"no usable agent checkpoint in {folder.parent}: "
                          + ("; ".join(problems) if problems else f"{folder.name} does not exist"))
