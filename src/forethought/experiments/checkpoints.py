"""Agent checkpoints a crash cannot half-write, the previous good one kept, and the search for
the newest good one.

An agent saves itself into a folder of files and subfolders (model, buffer, generator states,
JSON state). :func:`save_agent_checkpoint` writes a new folder beside the current one, then a
``manifest.json`` with the SHA-256 of every file in it (last, so a folder with a manifest is
complete), reads the folder back against its manifest, and only then swaps it in, keeping the
current one as the previous good checkpoint:

    checkpoints/agent.new/  ->  checkpoints/agent/      (the newest)
    checkpoints/agent/      ->  checkpoints/agent.old/  (the previous good one, kept)

:func:`latest_agent_checkpoint` returns the newest folder whose files all match their manifest: a
complete ``agent.new`` (a crash during the swap), else ``agent``, else ``agent.old``, saying why
through ``warn`` when it had to pass over a damaged one.
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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, agent: str | None = None) -> None:
    """Record the SHA-256 of every file under ``folder`` (subfolders included, by relative POSIX
    path) and, when given, the ``agent`` kind; written last, it marks the folder complete."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): _digest(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p != folder / MANIFEST}
    record = {"format": "forethought-agent", "files": files, **({"agent": agent} if agent is not None else {})}
    atomic_write_text(folder / MANIFEST, json.dumps(record, indent=2))


def _read_manifest(folder: Path) -> tuple[dict | None, str | None]:
    """The manifest of ``folder`` and None, or None and what is wrong with it."""
    if not (folder / MANIFEST).is_file():
        return None, f"{folder} has no {MANIFEST} (never finished writing)"
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
            raise ValueError("no 'files' mapping")
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        return None, f"{folder / MANIFEST} is damaged ({err})"
    return record, None


def check_manifest(folder: Path) -> str | None:
    """None if ``folder`` is complete and undamaged, else what is wrong with it."""
    folder = Path(folder)
    record, problem = _read_manifest(folder)
    if record is None:
        return problem
    for name, digest in record["files"].items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        try:
            if _digest(path) != digest:
                return f"{path} is corrupted or truncated (checksum mismatch)"
        except OSError as err:
            return f"{path} cannot be read ({err.strerror or err})"
    return None


def _siblings(folder: Path) -> tuple[Path, Path]:
    return folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")


def _swap_in(new: Path, folder: Path, old: Path) -> None:
    """Make the verified ``new`` the current checkpoint; a good current one becomes ``old``, a
    damaged one is dropped (``old`` then stays the previous good one)."""
    if folder.is_dir():
        if check_manifest(folder) is None:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        else:
            shutil.rmtree(folder)
    os.replace(new, folder)


def save_agent_checkpoint(save: Callable[[Path], None], folder: str | os.PathLike, agent: str | None = None) -> Path:
    """Call ``save(path)`` (e.g. ``agent.save``) into a fresh ``folder.new``, write and verify its
    manifest (recording ``agent``, the kind :func:`latest_agent_checkpoint` may ask for), and swap
    it in as ``folder``; the current checkpoint is kept as ``folder.old`` until the next one is
    verified. A complete ``folder.new`` left by a crash during a swap is swapped in first.

    Raises:
        CheckpointError: the new folder does not match its manifest when read back (the current
            and previous checkpoints are left as they were).
    """
    folder = Path(folder)
    new, old = _siblings(folder)
    if new.is_dir():
        if check_manifest(new) is None:
            _swap_in(new, folder, old)
        else:
            shutil.rmtree(new)
    save(new)
    write_manifest(new, agent)
    problem = check_manifest(new)
    if problem is not None:
        shutil.rmtree(new, ignore_errors=True)
        raise CheckpointError(f"the checkpoint just written does not read back ({problem}); "
                              f"{folder} is left as it was")
    _swap_in(new, folder, old)
    return folder


def latest_agent_checkpoint(folder: str | os.PathLike, warn: Callable[[str], None] | None = None,
                            agent: str | None = None) -> Path:
    """The newest undamaged agent folder among ``folder.new``, ``folder`` and ``folder.old``;
    ``warn`` hears which damaged ones were passed over.

    Raises:
        CheckpointError: none of them is complete and undamaged (each one's problem is named), or
            ``agent`` is given and the newest good one's manifest records another kind.
    """
    folder = Path(folder)
    new, old = _siblings(folder)
    problems = []
    # a complete .new is always the newest: it is written after the current one and swapped in at once
    for candidate in (new, folder, old):
        if not candidate.is_dir():
            continue
        problem = check_manifest(candidate)
        if problem is None:
            saved = _read_manifest(candidate)[0].get("agent")
            if agent is not None and saved is not None and saved != agent:
                raise CheckpointError(f"{candidate} holds a {saved} agent, not a {agent} agent")
            if problems and warn is not None:
                warn(f"using checkpoint {candidate}: " + "; ".join(problems))
            return candidate
        problems.append(problem)
    raise CheckpointError(f"no usable agent checkpoint in {folder.parent}: "
                          + ("; ".join(problems) if problems else f"{folder.name} does not exist"))
