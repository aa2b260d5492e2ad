"""Atomic, code-free persistence: safetensors tensors plus a JSON metadata file.

Every artefact the library writes (model checkpoints, buffers' metadata, run files) goes through
these helpers, so a crash never leaves a half-written file and loading never executes code.
A checkpoint ``path`` is a pair ``path.safetensors`` + ``path.json``; the JSON records the
SHA-256 of the tensor file so truncation or corruption is detected on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match what the caller expected."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Save ``tensors`` (safetensors) and JSON-serialisable ``metadata`` under the base ``path``.

    The tensor file is written first and the JSON (with the tensor file's checksum) last, so a
    checkpoint whose JSON exists is complete.
    """
    tensor_path, meta_path = _paths(path)
    with tempfile.TemporaryDirectory(dir=tensor_path.parent if tensor_path.parent.exists() else None) as tmpdir:
        scratch = Path(tmpdir) / "tensors.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(scratch))
        blob = scratch.read_bytes()
    atomic_write_bytes(tensor_path, blob)
    record = {"format": "forethought-checkpoint", "version": 1, "sha256": hashlib.sha256(blob).hexdigest(),
              "metadata": metadata}
    atomic_write_text(meta_path, json.dumps(record, indent=2, sort_keys=True))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`, verifying its checksum.

    Raises:
        CheckpointError: a file is missing, the JSON is malformed, or the checksum does not match.
    """
    tensor_path, meta_path = _paths(path)
    if not meta_path.exists() or not tensor_path.exists():
        raise CheckpointError(f"checkpoint {Path(path)} is incomplete: expected both {tensor_path.name} and {meta_path.name}")
    try:
        record = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {err}") from err
    if not isinstance(record, dict) or record.get("format") != "forethought-checkpoint":
        raise CheckpointError(f"{meta_path} is not a forethought checkpoint (missing format marker)")
    blob = tensor_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record.get("sha256"):
        raise CheckpointError(f"checkpoint {tensor_path} is corrupted or truncated: sha256 {digest[:12]}... "
                              f"does not match the recorded {str(record.get('sha256'))[:12]}...")
    return load_file(str(tensor_path)), record["metadata"]


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state (Adam's moments and step counts) as flat tensors
    ``prefix.optim.<index>.<name>`` for :func:`save_checkpoint`."""
    return {f"{prefix}.optim.{index}.{k}": v if torch.is_tensor(v) else torch.tensor(v)
            for index, state in optimizer.state_dict()["state"].items() for k, v in state.items()}


def load_optimizer_tensors(prefix: str, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Restore what :func:`optimizer_tensors` wrote under ``prefix``."""
    state, optim = optimizer.state_dict(), f"{prefix}.optim."
    for key, value in tensors.items():
        if key.startswith(optim):
            index, name = key[len(optim):].split(".", 1)
            state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(state)


def module_tensors(prefix: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, torch.Tensor]:
    """A module's weights (``prefix.weights.*``) and, when given, its optimiser's state (see
    :func:`optimizer_tensors`) as flat tensors for :func:`save_checkpoint`."""
    tensors = {f"{prefix}.weights.{k}": v for k, v in module.state_dict().items()}
    return {**tensors, **(optimizer_tensors(prefix, optimizer) if optimizer is not None else {})}


def load_module_tensors(prefix: str, tensors: dict[str, torch.Tensor], module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None) -> None:
    """Restore what :func:`module_tensors` wrote under ``prefix`` (weights strictly: a missing or
    unexpected weight raises)."""
    weights = f"{prefix}.weights."
    module.load_state_dict({k[len(weights):]: v for k, v in tensors.items() if k.startswith(weights)})
    if optimizer is not None:
        load_optimizer_tensors(prefix, tensors, optimizer)


def read_agent_state(path: str | os.PathLike, agent: str) -> dict[str, Any]:
    """The ``state.json`` of the agent folder ``path`` (``agent`` names the kind in the error)."""
    path = Path(path)
    if not (path / "state.json").exists():
        raise FileNotFoundError(f"{path} holds no saved {agent} agent (state.json missing)")
    return json.loads((path / "state.json").read_text(encoding="utf-8"))
