"""The sequence buffer: chunks inside episodes, row conventions, capacity, persistence, bad input."""

import numpy as np
import pytest
import torch

from forethought.data.sequences import SequenceBuffer


def frame(value: int) -> np.ndarray:
    return np.full((1, 2, 2), value, np.uint8)


def fill(buffer: SequenceBuffer, episodes: list[int], terminate_last: bool = False) -> None:
    """Episodes of the given step counts; frame values count rows globally, actions = frame value."""
    value = 0
    for index, steps in enumerate(episodes):
        buffer.start_episode(frame(value))
        for t in range(steps):
            value += 1
            terminated = terminate_last and index == len(episodes) - 1 and t == steps - 1
            buffer.add_step([float(value)], reward=0.5 * value, next_obs=frame(value), terminated=terminated)
        value += 1


def test_chunks_are_consecutive_rows_of_one_episode():
    buffer = SequenceBuffer((1, 2, 2), action_dim=1)
    fill(buffer, [3, 9, 5])
    assert buffer.episode_lengths == [4, 10, 6] and len(buffer) == 20 and buffer.steps == 17
    batch = buffer.sample(64, 5, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (64, 5, 1, 2, 2) and batch.action.shape == (64, 5, 1) and batch.reward.shape == (64, 5)
    values = batch.obs[:, :, 0, 0, 0].long()
    assert torch.equal(values[:, 1:] - values[:, :-1], torch.ones(64, 4, dtype=torch.long))
    assert not batch.is_first[:, 1:].any()  # a chunk never crosses into the next episode
    # the action and reward of a row are those that led to its frame; zeros on an episode's first row
    steps = ~batch.is_first
    assert torch.equal(batch.action[..., 0][steps], values[steps].float())
    assert torch.equal(batch.reward[steps], 0.5 * values[steps].float())
    assert (batch.action[batch.is_first] == 0).all()


def test_only_episodes_long_enough_are_sampled_and_every_start_is_used():
    buffer = SequenceBuffer((1, 2, 2), action_dim=1)
    fill(buffer, [2, 6])
    assert buffer.valid_starts(5).tolist() == [3, 4, 5]
    starts = buffer.sample(300, 5, torch.Generator().manual_seed(1)).obs[:, 0, 0, 0, 0]
    assert set(starts.tolist()) == {3, 4, 5}


def test_termination_marks_the_last_row_but_truncation_does_not():
    buffer = SequenceBuffer((1, 2, 2), action_dim=1)
    fill(buffer, [3])
    fill(buffer, [2], terminate_last=True)
    assert not buffer.episode(0).is_terminal.any()
    assert buffer.episode(-1).is_terminal[0].tolist() == [False, False, True]
    with pytest.raises(RuntimeError, match="start_episode"):
        buffer.add_step([0.0], 0.0, frame(0), False)  # the terminated episode is closed


def test_capacity_drops_whole_oldest_episodes():
    buffer = SequenceBuffer((1, 2, 2), action_dim=1, capacity=12)
    fill(buffer, [4, 4, 4])  # 15 rows: the first episode goes when the third starts
    assert buffer.episode_lengths == [5, 5] and len(buffer) == 10
    assert buffer.episode(0).obs[0, 0, 0, 0, 0] == 5


def test_save_load_round_trip(tmp_path):
    buffer = SequenceBuffer((1, 2, 2), action_dim=1)
    fill(buffer, [3, 4])
    buffer.save(tmp_path / "seq.npz")
    loaded = SequenceBuffer.load(tmp_path / "seq.npz")
    assert loaded.episode_lengths == buffer.episode_lengths
    one, two = buffer.episode(1), loaded.episode(1)
    assert all(torch.equal(getattr(one, f), getattr(two, f)) for f in ("obs", "action", "reward", "is_first", "is_terminal"))


def test_bad_input_is_named():
    buffer = SequenceBuffer((1, 2, 2), action_dim=1)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(2, 3, torch.Generator())
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(1, 2, 2\)"):
        buffer.start_episode(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype float32, expected uint8"):
        buffer.start_episode(np.zeros((1, 2, 2), np.float32))
    fill(buffer, [3])
    with pytest.raises(ValueError, match="longer than every stored episode \\(the longest has 4 rows\\)"):
        buffer.sample(2, 5, torch.Generator())
    with pytest.raises(ValueError, match="finite"):
        buffer.add_step([np.nan], 0.0, frame(0), False)
