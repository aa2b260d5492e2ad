import numpy as np
import pytest
import torch

from forethought.data import ReplayBuffer, bootstrap_indices, load_npz


def filled(n: int, episode: int = 10, capacity: int | None = None) -> ReplayBuffer:
    buffer = ReplayBuffer(2, 1, capacity=capacity)
    for i in range(n):
        buffer.add([i, -i], [0.1 * i], float(i), [i + 1, -i - 1], False, (i + 1) % episode == 0)
    return buffer


def test_insert_grows_and_keeps_order():
    buffer = filled(5000)
    assert len(buffer) == 5000
    arrays = buffer.arrays()
    np.testing.assert_array_equal(arrays["obs"][:, 0], np.arange(5000))
    np.testing.assert_allclose(arrays["action"][:, 0], 0.1 * np.arange(5000), rtol=1e-6)
    assert arrays["truncated"].sum() == 500


def test_ring_capacity_keeps_newest_in_order():
    buffer = filled(25, capacity=10)
    assert len(buffer) == 10
    np.testing.assert_array_equal(buffer.arrays()["obs"][:, 0], np.arange(15, 25))
    big = ReplayBuffer(2, 1, capacity=4)
    big.add_batch(np.arange(12).reshape(6, 2), np.zeros((6, 1)), np.zeros(6), np.ones((6, 2)))
    np.testing.assert_array_equal(big.arrays()["obs"][:, 0], [4, 6, 8, 10])


def test_sampling_is_reproducible_with_a_generator():
    buffer = filled(100)
    first = buffer.sample(32, torch.Generator().manual_seed(3))
    second = buffer.sample(32, torch.Generator().manual_seed(3))
    other = buffer.sample(32, torch.Generator().manual_seed(4))
    assert torch.equal(first.obs, second.obs)
    assert not torch.equal(first.obs, other.obs)
    assert first.obs.shape == (32, 2) and first.action.shape == (32, 1) and first.reward.shape == (32,)
    assert first.terminated.dtype == torch.bool
    # every sampled row is a real row: next_obs = obs + (1, -1)
    torch.testing.assert_close(first.next_obs - first.obs, torch.tensor([[1.0, -1.0]]).expand(32, 2))


def test_split_partitions_rows():
    buffer = filled(100)
    train, val = buffer.split(0.2, torch.Generator().manual_seed(0))
    assert len(train) == 80 and len(val) == 20
    rows = torch.cat([train.obs[:, 0], val.obs[:, 0]]).sort().values
    assert torch.equal(rows, torch.arange(100, dtype=torch.float32))


def test_split_episodes_holds_out_whole_episodes():
    buffer = filled(100, episode=10)
    train, test = buffer.split_episodes(0.25)
    assert len(train) + len(test) == 100
    assert len(train) % 10 == 0 and len(test) >= 10
    assert test.arrays()["obs"][0, 0] == len(train)


def test_episode_starts_from_flags_and_discontinuities():
    buffer = filled(30, episode=10)
    np.testing.assert_array_equal(buffer.episode_starts(), [0, 10, 20])
    buffer.add([100, 0], [0.0], 0.0, [101, 0])  # does not continue the previous next_obs
    assert buffer.episode_starts()[-1] == 30


def test_bootstrap_indices_shape_and_range():
    idx = bootstrap_indices(50, 7, torch.Generator().manual_seed(0))
    assert idx.shape == (7, 50) and idx.min() >= 0 and idx.max() < 50
    assert not torch.equal(idx[0], idx[1])  # members resample independently


def test_save_load_roundtrip(tmp_path):
    buffer = filled(57)
    buffer.save(tmp_path / "data.npz")
    loaded = ReplayBuffer.load(tmp_path / "data.npz")
    for name, values in buffer.arrays().items():
        np.testing.assert_array_equal(values, loaded.arrays()[name])


def test_load_npz_with_only_required_fields(tmp_path):
    np.savez(tmp_path / "log.npz", obs=np.zeros((4, 3)), action=np.ones(4), next_obs=np.ones((4, 3)))
    buffer = load_npz(tmp_path / "log.npz")
    assert (buffer.obs_dim, buffer.act_dim, len(buffer)) == (3, 1, 4)
    assert not buffer.arrays()["terminated"].any()


def test_load_npz_rejects_missing_fields(tmp_path):
    np.savez(tmp_path / "bad.npz", obs=np.zeros((4, 3)), next_obs=np.ones((4, 3)))
    with pytest.raises(ValueError, match="action"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("field, value, message", [
    ("obs", [[0.0, np.nan]], "field 'obs' has a non-finite value at row 0"),
    ("reward", [np.inf], "field 'reward' has a non-finite value at row 0"),
    ("action", [[0.0, 1.0]], r"field 'action' has shape \(1, 2\), expected \(N, 1\)"),
    ("next_obs", [[1.0, 2.0, 3.0]], r"field 'next_obs' has shape \(1, 3\)"),
])
def test_bad_inserts_name_the_field_and_row(field, value, message):
    row = {"obs": [[0.0, 0.0]], "action": [[0.0]], "reward": [0.0], "next_obs": [[0.0, 0.0]]}
    row[field] = value
    buffer = ReplayBuffer(2, 1)
    with pytest.raises(ValueError, match=message):
        buffer.add_batch(**row)
    assert len(buffer) == 0


def test_bad_row_in_a_batch_is_named():
    obs = np.zeros((5, 2))
    obs[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        ReplayBuffer(2, 1).add_batch(obs, np.zeros((5, 1)), np.zeros(5), np.zeros((5, 2)))


def test_sampling_empty_buffer_fails_clearly():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2, 1).sample(4, torch.Generator())
