"""Transition files: a damaged or foreign .npz is one line naming the file and what is wrong, and a
file may record the environment its transitions came from."""

import numpy as np
import pytest

from forethought.data import ReplayBuffer, load_npz
from forethought.data.offline import npz_env_id, read_npz, save_transitions


def transitions(n: int = 30) -> ReplayBuffer:
    rng = np.random.default_rng(1)
    buffer = ReplayBuffer(3, 1)
    buffer.add_batch(rng.normal(size=(n, 3)), rng.normal(size=(n, 1)), rng.normal(size=n), rng.normal(size=(n, 3)))
    return buffer


def one_line_value_error(path, match: str):
    with pytest.raises(ValueError, match=match) as caught:
        load_npz(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_truncated_file(tmp_path):
    path = tmp_path / "data.npz"
    transitions().save(path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    one_line_value_error(path, "is not a readable .npz file: truncated or damaged")


@pytest.mark.parametrize("content, what", [
    (b"", "the file is empty"),
    (b"obs,action\n1,2\n", "not a zip archive"),
    (b"\x80\x04\x95pickle", "not a zip archive"),
])
def test_files_that_are_not_archives(tmp_path, content, what):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    one_line_value_error(path, what)


def test_a_single_npy_array(tmp_path):
    path = tmp_path / "data.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros((3, 3)))
    one_line_value_error(path, "a single .npy array, not an .npz archive")


def test_a_damaged_member_and_object_arrays(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, obs=np.zeros((30, 3)), action=np.zeros((30, 1)), next_obs=np.ones((30, 3)))
    blob = bytearray(path.read_bytes())
    blob[200] ^= 0xFF  # inside the first member's data: its CRC no longer matches
    path.write_bytes(bytes(blob))
    one_line_value_error(path, r"array '\w+' is damaged \(Bad CRC-32")
    np.savez(path, obs=np.array([{"a": 1}], dtype=object), action=np.zeros((1, 1)), next_obs=np.zeros((1, 3)))
    one_line_value_error(path, "array 'obs' holds Python objects, which are not loaded")


def test_missing_arrays_are_named(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, obs=np.zeros((4, 3)), reward=np.zeros(4))
    message = one_line_value_error(path, r"lacks required arrays \['action', 'next_obs'\]")
    assert "it has ['obs', 'reward']" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_bad_shapes_name_the_file(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, obs=np.zeros((4, 3)), action=np.zeros((4, 1, 1)), next_obs=np.zeros((4, 3)))
    one_line_value_error(path, r"array 'action' has shape \(4, 1, 1\)")
    np.savez(path, obs=np.zeros((4, 3)), action=np.zeros((4, 1)), next_obs=np.zeros((4, 2)))
    one_line_value_error(path, "field 'next_obs' has shape")


def test_environment_id_is_saved_and_read_back(tmp_path):
    buffer = transitions()
    save_transitions(buffer, tmp_path / "with.npz", env_id="Pendulum-v1")
    save_transitions(buffer, tmp_path / "without.npz")
    assert npz_env_id(tmp_path / "with.npz") == "Pendulum-v1" and npz_env_id(tmp_path / "without.npz") is None
    loaded = load_npz(tmp_path / "with.npz")  # the id is not a transition field
    np.testing.assert_array_equal(loaded.arrays()["obs"], buffer.arrays()["obs"])
    np.savez(tmp_path / "odd.npz", env_id=np.array([1, 2]))
    with pytest.raises(ValueError, match="'env_id' should be one string"):
        npz_env_id(tmp_path / "odd.npz")
    assert sorted(read_npz(tmp_path / "with.npz", ["obs"], optional=["env_id", "nothing"])) == ["env_id", "obs"]
