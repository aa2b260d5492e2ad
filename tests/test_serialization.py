import json

import pytest
import torch

from forethought.serialization import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])}
    save_checkpoint(tmp_path / "ckpt", tensors, {"step": 7})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"step": 7}
    assert torch.equal(loaded["w"], tensors["w"]) and torch.equal(loaded["b"], tensors["b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]  # no temp files left


def test_truncated_tensor_file_is_detected(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(100)}, {})
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_or_foreign_metadata_is_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(1)}, {})
    (tmp_path / "ckpt.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a forethought checkpoint"):
        load_checkpoint(tmp_path / "ckpt")
