"""Minari loading, against a stand-in for the minari module (creating a real Minari dataset needs
JAX, which the test environment does not install); the conversion code under test is the real one."""

import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

from forethought.data import load_minari


@dataclass
class Episode:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


def episode(start: float, steps: int, terminated: bool) -> Episode:
    obs = start + np.arange(steps + 1, dtype=np.float64)[:, None] * np.array([1.0, -1.0])
    ends = np.zeros(steps, bool)
    ends[-1] = True
    return Episode(obs, np.full(steps, 0.5), np.arange(steps, dtype=np.float64),
                   ends if terminated else np.zeros(steps, bool), np.zeros(steps, bool) if terminated else ends)


@pytest.fixture
def fake_minari(monkeypatch):
    datasets = {"test/two-episodes-v0": [episode(0.0, 4, True), episode(100.0, 3, False)],
                "test/empty-v0": []}
    module = types.ModuleType("minari")

    def load_dataset(dataset_id):
        episodes = datasets[dataset_id]
        return types.SimpleNamespace(iterate_episodes=lambda: iter(episodes))

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "minari", module)


def test_episodes_become_transitions(fake_minari):
    buffer = load_minari("test/two-episodes-v0")
    arrays = buffer.arrays()
    assert (len(buffer), buffer.obs_dim, buffer.act_dim) == (7, 2, 1)
    np.testing.assert_array_equal(arrays["obs"][:, 0], [0, 1, 2, 3, 100, 101, 102])
    np.testing.assert_array_equal(arrays["next_obs"][:, 0], [1, 2, 3, 4, 101, 102, 103])
    np.testing.assert_array_equal(arrays["terminated"], [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(arrays["truncated"], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(buffer.episode_starts(), [0, 4])


def test_empty_dataset_is_an_error(fake_minari):
    with pytest.raises(ValueError, match="holds no episodes"):
        load_minari("test/empty-v0")


def test_missing_minari_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)
    with pytest.raises(ImportError, match=r"pip install 'forethought\[minari\]'"):
        load_minari("anything")
