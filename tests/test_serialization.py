"""Code-free persistence: atomic writes with the user's umask, and every way a saved file can be
damaged is a CheckpointError naming the file (never a bare KeyError, JSON, safetensors or zip error)."""

import copy
import errno
import hashlib
import json
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from forethought import serialization
from forethought.data import ReplayBuffer
from forethought.data.sequences import SequenceBuffer
from forethought.serialization import (CheckpointError, MissingCheckpointError, atomic_write_text, load_checkpoint,
                                       load_module_tensors, load_optimizer_tensors, module_tensors, optimizer_tensors,
                                       read_agent_state, require_key, require_kind, require_tensor, save_checkpoint)


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_roundtrip(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])}
    save_checkpoint(tmp_path / "ckpt", tensors, {"step": 7})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"step": 7}
    assert torch.equal(loaded["w"], tensors["w"]) and torch.equal(loaded["b"], tensors["b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]  # no temp files left


def test_files_get_the_users_umask(tmp_path, umask):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {})
    atomic_write_text(tmp_path / "note.txt", "hello")
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {"ckpt.json": 0o644, "ckpt.safetensors": 0o644,
                                                             "note.txt": 0o644}
    umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "hello")
    assert mode(tmp_path / "private.txt") == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    atomic_write_text(tmp_path / "a.json", "old")

    def full_disk(fd, data):
        os.write(fd, data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serialization, "write_all", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(tmp_path / "a.json", "new contents")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


def test_truncated_tensor_file_is_detected(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(100)}, {})
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=rf"{path}.*corrupted or truncated"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_or_foreign_metadata_is_rejected(tmp_path):
    with pytest.raises(MissingCheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {})
    (tmp_path / "ckpt.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a forethought checkpoint"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[: len(text) // 2], "is not valid JSON"),
    (lambda text: "[1, 2]", "holds a JSON list, expected an object"),
    (lambda text: text.replace('"metadata"', '"metadatum"'), "has no metadata object"),
    (lambda text: text.replace('"version": 1', '"version": 9'), "format version 9"),
])
def test_damaged_metadata_names_the_file(tmp_path, damage, message):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {"kind": "mlp"})
    meta = tmp_path / "ckpt.json"
    meta.write_text(damage(meta.read_text()))
    with pytest.raises(CheckpointError, match=rf"{meta}.*{message}|{message}"):
        load_checkpoint(tmp_path / "ckpt")


def test_undecodable_metadata_and_unparsable_tensors(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {})
    (tmp_path / "ckpt.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "ckpt")
    # a tensor file that matches its recorded checksum but is not safetensors
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {})
    blob = b"not a safetensors file"
    (tmp_path / "ckpt.safetensors").write_bytes(blob)
    record = json.loads((tmp_path / "ckpt.json").read_text())
    (tmp_path / "ckpt.json").write_text(json.dumps({**record, "sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(CheckpointError, match="ckpt.safetensors is not a valid safetensors file"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_tensors_and_keys_name_the_file(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2, 3)}, {"kind": "mlp", "config": {"hidden": 8}})
    tensors, meta = load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"ckpt.safetensors has no tensor 'bias' \(it has 'w'\)"):
        tensors["bias"]
    with pytest.raises(CheckpointError, match=r"ckpt.json has no key 'obs_dim'"):
        meta["obs_dim"]
    assert require_tensor(tensors, "w", "ckpt", shape=(2, 3)).shape == (2, 3)
    with pytest.raises(CheckpointError, match=r"ckpt: tensor 'w' has shape \(2, 3\), expected \(3,\)"):
        require_tensor(tensors, "w", "ckpt", shape=(3,))
    with pytest.raises(CheckpointError, match="ckpt has no tensor 'b'"):
        require_tensor(tensors, "b", "ckpt")
    assert require_key(meta, "config.hidden", "ckpt", int) == 8
    with pytest.raises(CheckpointError, match=r"ckpt has no key 'config.depth' \('depth' missing under config\)"):
        require_key(meta, "config.depth", "ckpt")
    with pytest.raises(CheckpointError, match=r"key 'kind' holds 'mlp' \(str\), expected int"):
        require_key(meta, "kind", "ckpt", int)
    with pytest.raises(CheckpointError, match="expected int"):
        require_key({"n": True}, "n", "ckpt", int)
    # copies and pickles are plain dicts (configs built from them dump to YAML as before)
    assert type(copy.deepcopy(meta)) is dict and type(pickle.loads(pickle.dumps(tensors))) is dict


def test_wrong_kind_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {"kind": "reward_model"})
    with pytest.raises(CheckpointError, match=r"ckpt.json holds 'reward_model', not 'dynamics'"):
        load_checkpoint(tmp_path / "ckpt", kind="dynamics")
    assert load_checkpoint(tmp_path / "ckpt", kind="reward_model")[1]["kind"] == "reward_model"
    with pytest.raises(CheckpointError, match="records no kind"):
        require_kind({}, "dynamics", "ckpt")


def test_agent_state_failures_are_checkpoint_errors(tmp_path):
    with pytest.raises(MissingCheckpointError, match="holds no saved PETS agent"):
        read_agent_state(tmp_path, "PETS")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, as before
        read_agent_state(tmp_path, "PETS")
    (tmp_path / "state.json").write_text('{"config": {"trials": 3}, "seed"')
    with pytest.raises(CheckpointError, match=rf"PETS agent state {tmp_path / 'state.json'} is not valid JSON"):
        read_agent_state(tmp_path, "PETS")
    (tmp_path / "state.json").write_text(json.dumps({"agent": "SAC", "seed": 0}))
    with pytest.raises(CheckpointError, match="holds a saved SAC agent, not a PETS agent"):
        read_agent_state(tmp_path, "PETS")
    (tmp_path / "state.json").write_text(json.dumps({"config": {}, "seed": 0}))
    state = read_agent_state(tmp_path, "PETS")
    with pytest.raises(CheckpointError, match=r"state.json has no key 'history'"):
        state["history"]


def test_module_and_optimizer_state_that_does_not_fit(tmp_path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "nets", {**module_tensors("actor", net), **optimizer_tensors("actor", optimizer)}, {})
    tensors, _ = load_checkpoint(tmp_path / "nets")
    load_module_tensors("actor", tensors, torch.nn.Linear(3, 2), torch.optim.Adam(torch.nn.Linear(3, 2).parameters()))
    with pytest.raises(CheckpointError, match=r"nets.safetensors: the weights under 'actor' do not fit Linear: .*size mismatch"):
        load_module_tensors("actor", tensors, torch.nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match="weights under 'critic' do not fit Linear: .*Missing key"):
        load_module_tensors("critic", tensors, torch.nn.Linear(3, 2))
    bad = serialization.SavedMapping.of({**tensors, "actor.optim.x.exp_avg": torch.ones(1)}, tmp_path / "nets")
    with pytest.raises(CheckpointError, match=r"optimiser tensor 'actor.optim.x.exp_avg'"):
        load_optimizer_tensors("actor", bad, optimizer)


def replay_buffer() -> ReplayBuffer:
    buffer = ReplayBuffer(2, 1)
    rng = np.random.default_rng(0)
    buffer.add_batch(rng.normal(size=(20, 2)), rng.normal(size=(20, 1)), rng.normal(size=20), rng.normal(size=(20, 2)))
    return buffer


def test_buffer_files_that_are_damaged_are_checkpoint_errors(tmp_path):
    path = tmp_path / "buffer.npz"
    replay_buffer().save(path)
    assert len(ReplayBuffer.load(path)) == 20
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=rf"{path} is not a readable .npz file: truncated or damaged"):
        ReplayBuffer.load(path)
    with pytest.raises(MissingCheckpointError, match="does not exist"):
        ReplayBuffer.load(tmp_path / "none.npz")
    np.savez(path, obs=np.zeros((3, 2)), next_obs=np.zeros((3, 2)))
    with pytest.raises(CheckpointError, match=r"lacks required arrays \['action'\]"):
        ReplayBuffer.load(path)
    np.savez(path, obs=np.zeros((3, 2)), action=np.zeros((3, 1)), next_obs=np.zeros((4, 2)))
    with pytest.raises(CheckpointError, match=rf"{path}: field 'next_obs' has shape"):
        ReplayBuffer.load(path)


def sequence_buffer() -> SequenceBuffer:
    buffer = SequenceBuffer((3,), 1, obs_dtype=np.float32)
    buffer.start_episode(np.zeros(3, np.float32))
    for t in range(4):
        buffer.add_step(np.zeros(1), 1.0, np.full(3, t + 1.0, np.float32), False)
    return buffer


def test_sequence_buffer_files_that_are_damaged_are_checkpoint_errors(tmp_path):
    path = tmp_path / "sequences.npz"
    sequence_buffer().save(path)
    assert SequenceBuffer.load(path).episode_lengths == [5]
    blob = bytearray(path.read_bytes())
    path.write_bytes(bytes(blob[:-40]))
    with pytest.raises(CheckpointError, match=rf"{path} is not a readable .npz file"):
        SequenceBuffer.load(path)
    with pytest.raises(MissingCheckpointError):
        SequenceBuffer.load(tmp_path / "none.npz")
    np.savez(path, obs=np.zeros((3, 3)), action=np.zeros((3, 1)), reward=np.zeros(3), is_first=np.zeros(3, bool),
             is_terminal=np.zeros(3, bool))
    with pytest.raises(CheckpointError, match=r"lacks required arrays \['episode_starts'\]"):
        SequenceBuffer.load(path)
    np.savez(path, obs=np.zeros((3, 3)), action=np.zeros((3, 1)), reward=np.zeros(2), is_first=np.zeros(3, bool),
             is_terminal=np.zeros(3, bool), episode_starts=np.array([0]))
    with pytest.raises(CheckpointError, match="is inconsistent: rows per array"):
        SequenceBuffer.load(path)
