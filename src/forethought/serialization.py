"""Atomic, code-free persistence: safetensors tensors plus a JSON metadata file.

Every artefact the library writes (model checkpoints, buffers, run files) goes through these
helpers, so a crash never leaves a half-written file, files get the user's umask like any other
file they create, and loading never executes code. A checkpoint ``path`` is a pair
``path.safetensors`` + ``path.json``; the JSON records the SHA-256 of the tensor file so truncation
or corruption is detected on load.

Whatever is wrong with a saved file (missing, truncated, malformed JSON, a missing tensor or key,
another kind of checkpoint) is a :class:`CheckpointError` naming the file. What loading returns
(:func:`load_checkpoint`, :func:`read_agent_state`) are dicts whose missing entries raise it too,
so ``state["history"]`` on a damaged file names the file and the key instead of a bare KeyError.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match what the caller expected."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """A file a checkpoint needs does not exist (also a FileNotFoundError)."""


class SavedMapping(dict):
    """A dict read back from the file ``source``: a missing entry is a :class:`CheckpointError`
    naming the file and the ``what`` (``"tensor"``, ``"key"``) it lacks. Copies and pickles of it
    are plain dicts."""

    source: Path | None = None
    what: str = "key"

    @classmethod
    def of(cls, values: dict, source: str | os.PathLike, what: str = "key") -> "SavedMapping":
        mapping = cls(values)
        mapping.source, mapping.what = Path(source), what
        return mapping

    def __missing__(self, key: Any) -> Any:
        known = ", ".join(map(repr, sorted(self, key=str)[:8])) + (", ..." if len(self) > 8 else "")
        raise CheckpointError(f"{self.source} has no {self.what} {key!r} (it has {known or 'none'}): "
                              "the file is damaged or was written by other code")

    def __reduce__(self) -> tuple:
        return dict, (dict(self),)


# ---------------------------------------------------------------------------- atomic writes
def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the file descriptor ``fd`` (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename.

    The file gets the permissions any new file of the user gets (``0o666`` less the umask). On
    any error (a full disk, a read-only folder) the temporary file is removed and ``path`` is
    left as it was; an OSError that names no file is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # name the file a full disk failed to take
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------- checkpoints
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
    blob = save_safetensors({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write_bytes(tensor_path, blob)
    record = {"format": "forethought-checkpoint", "version": 1, "sha256": hashlib.sha256(blob).hexdigest(),
              "metadata": metadata}
    atomic_write_text(meta_path, json.dumps(record, indent=2, sort_keys=True))


def read_json(path: str | os.PathLike, what: str = "file") -> SavedMapping:
    """The JSON object in ``path`` as a :class:`SavedMapping`.

    Raises:
        MissingCheckpointError: ``path`` does not exist.
        CheckpointError: it cannot be read, is not valid UTF-8 JSON, or holds no JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise MissingCheckpointError(f"{what} {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what} {path} cannot be read: {err}") from err
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{what} {path} is not valid JSON (truncated or damaged?): {err}") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{what} {path} holds a JSON {type(value).__name__}, expected an object")
    return SavedMapping.of(value, path)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> tuple[SavedMapping, SavedMapping]:
    """Load a checkpoint saved by :func:`save_checkpoint`, verifying its checksum.

    Returns ``(tensors, metadata)``, both :class:`SavedMapping`: indexing a tensor or key that
    is not there raises :class:`CheckpointError` naming the file. With ``kind`` the metadata's
    ``"kind"`` must equal it.

    Raises:
        MissingCheckpointError: one of the two files is missing.
        CheckpointError: the JSON is malformed or not a forethought checkpoint, the tensor file
            does not match its checksum or cannot be parsed, or ``kind`` differs.
    """
    tensor_path, meta_path = _paths(path)
    if not meta_path.exists() or not tensor_path.exists():
        raise MissingCheckpointError(f"checkpoint {Path(path)} is incomplete: expected both {tensor_path.name} "
                                     f"and {meta_path.name}")
    record = read_json(meta_path, "checkpoint metadata")
    if record.get("format") != "forethought-checkpoint":
        raise CheckpointError(f"{meta_path} is not a forethought checkpoint (missing format marker)")
    if not isinstance(record.get("version"), int) or record["version"] > 1:
        raise CheckpointError(f"{meta_path} has checkpoint format version {record.get('version')!r}; "
                              "this forethought reads version 1")
    metadata = record.get("metadata")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{meta_path} has no metadata object")
    try:
        blob = tensor_path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {tensor_path} cannot be read: {err}") from err
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record.get("sha256"):
        raise CheckpointError(f"checkpoint {tensor_path} is corrupted or truncated: sha256 {digest[:12]}... "
                              f"does not match the recorded {str(record.get('sha256'))[:12]}...")
    try:
        tensors = load_safetensors(blob)
    except Exception as err:  # safetensors raises its own SafetensorError (and others) on a bad header
        raise CheckpointError(f"checkpoint {tensor_path} is not a valid safetensors file: {err}") from err
    metadata = SavedMapping.of(metadata, meta_path)
    if kind is not None:
        require_kind(metadata, kind, meta_path)
    return SavedMapping.of(tensors, tensor_path, "tensor"), metadata


# ---------------------------------------------------------------------------- reading state
def require_tensor(tensors: dict[str, torch.Tensor], name: str, path: str | os.PathLike,
                   shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``tensors[name]``, checked: present, a tensor, and of ``shape`` when given.

    Raises:
        CheckpointError: naming ``path``, the tensor and what was expected.
    """
    if name not in tensors:
        raise CheckpointError(f"checkpoint {path} has no tensor {name!r}")
    value = tensors[name]
    if not torch.is_tensor(value):
        raise CheckpointError(f"checkpoint {path}: {name!r} is a {type(value).__name__}, not a tensor")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"checkpoint {path}: tensor {name!r} has shape {tuple(value.shape)}, "
                              f"expected {tuple(shape)}")
    return value


def require_key(state: dict[str, Any], key: str, path: str | os.PathLike,
                expected: type | tuple[type, ...] | None = None) -> Any:
    """``state[key]`` for a dotted ``key`` (``"config.planner.horizon"``), checked: present and,
    when ``expected`` is given, an instance of it (``int`` also accepts no ``bool``).

    Raises:
        CheckpointError: naming ``path``, the key and what was expected.
    """
    value: Any = state
    for depth, part in enumerate(key.split(".")):
        if not isinstance(value, dict) or part not in value:
            where = ".".join(key.split(".")[:depth]) or "the top level"
            raise CheckpointError(f"{path} has no key {key!r} ({part!r} missing under {where})")
        value = value[part]
    if expected is not None:
        types = expected if isinstance(expected, tuple) else (expected,)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types and int in types):
            names = " or ".join(t.__name__ for t in types)
            raise CheckpointError(f"{path}: key {key!r} holds {value!r} ({type(value).__name__}), expected {names}")
    return value


def require_kind(metadata: dict[str, Any], kind: str, path: str | os.PathLike) -> None:
    """Check that ``metadata["kind"]`` is ``kind``.

    Raises:
        CheckpointError: the checkpoint at ``path`` holds another kind (or none).
    """
    found = metadata.get("kind")
    if found != kind:
        raise CheckpointError(f"checkpoint {path} holds {found!r}, not {kind!r}" if found is not None
                              else f"checkpoint {path} records no kind; expected {kind!r}")


def read_agent_state(path: str | os.PathLike, agent: str) -> SavedMapping:
    """The ``state.json`` of the agent folder ``path`` (``agent`` names the kind in the errors).

    Raises:
        MissingCheckpointError: ``path`` holds no ``state.json``.
        CheckpointError: the file is damaged (see :func:`read_json`), or records ``"agent"`` as
            another kind than ``agent``. A key missing from the returned mapping raises it too.
    """
    path = Path(path)
    if not (path / "state.json").is_file():
        raise MissingCheckpointError(f"{path} holds no saved {agent} agent (state.json missing)")
    state = read_json(path / "state.json", f"{agent} agent state")
    if "agent" in state and state["agent"] != agent:
        raise CheckpointError(f"{path} holds a saved {state['agent']} agent, not a {agent} agent")
    return state


# ---------------------------------------------------------------------------- modules and optimisers
def _source(tensors: dict[str, torch.Tensor]) -> str:
    return str(getattr(tensors, "source", None) or "the checkpoint")


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state (Adam's moments and step counts) as flat tensors
    ``prefix.optim.<index>.<name>`` for :func:`save_checkpoint`."""
    return {f"{prefix}.optim.{index}.{k}": v if torch.is_tensor(v) else torch.tensor(v)
            for index, state in optimizer.state_dict()["state"].items() for k, v in state.items()}


def load_optimizer_tensors(prefix: str, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Restore what :func:`optimizer_tensors` wrote under ``prefix``.

    Raises:
        CheckpointError: a tensor name is malformed or the optimiser rejects the state.
    """
    state, optim = optimizer.state_dict(), f"{prefix}.optim."
    for key, value in tensors.items():
        if key.startswith(optim):
            index, _, name = key[len(optim):].partition(".")
            if not index.isdigit() or not name:
                raise CheckpointError(f"{_source(tensors)}: optimiser tensor {key!r} is not {optim}<index>.<name>")
            state["state"].setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{_source(tensors)}: the optimiser state under {prefix!r} does not fit: {err}") from err


def module_tensors(prefix: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, torch.Tensor]:
    """A module's weights (``prefix.weights.*``) and, when given, its optimiser's state (see
    :func:`optimizer_tensors`) as flat tensors for :func:`save_checkpoint`."""
    tensors = {f"{prefix}.weights.{k}": v for k, v in module.state_dict().items()}
    return {**tensors, **(optimizer_tensors(prefix, optimizer) if optimizer is not None else {})}


def load_module_tensors(prefix: str, tensors: dict[str, torch.Tensor], module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None) -> None:
    """Restore what :func:`module_tensors` wrote under ``prefix`` (weights strictly).

    Raises:
        CheckpointError: a weight is missing, unexpected or of the wrong shape (naming the file
            when ``tensors`` came from :func:`load_checkpoint`), or the optimiser state does not fit.
    """
    weights = f"{prefix}.weights."
    try:
        module.load_state_dict({k[len(weights):]: v for k, v in tensors.items() if k.startswith(weights)})
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{_source(tensors)}: the weights under {prefix!r} do not fit "
                              f"{type(module).__name__}: {detail}") from err
    if optimizer is not None:
        load_optimizer_tensors(prefix, tensors, optimizer)
