"""Collecting transitions: one environment, or several copies sharing the budget."""

import numpy as np
import pytest

from forethought import envs
from forethought.data import collect


def feedback(obs: np.ndarray) -> np.ndarray:
    """A deterministic policy for a ``[1]`` observation of the linear system."""
    return np.clip(-0.4 * obs + 0.3 * np.sin(3 * obs), -1, 1).astype(np.float32)


def test_copies_store_what_each_copy_alone_would_have():
    together = collect([envs.make("linear") for _ in range(3)], 250, seed=7, policy=feedback).arrays()
    quota = [84, 83, 83]  # 250 shared as evenly as possible, copy 0 first
    first = 0
    for i, rows in enumerate(quota):
        alone = collect(envs.make("linear"), rows, seed=7 + i, policy=feedback).arrays()
        part = {name: values[first:first + rows] for name, values in together.items()}
        for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
            np.testing.assert_array_equal(part[name], alone[name], err_msg=f"copy {i}, {name}")
        assert part["truncated"][-1]  # the budget cut the copy's last episode
        first += rows
    assert first == len(together["obs"]) == 250
    episode_ends = np.flatnonzero(together["terminated"] | together["truncated"])
    assert len(episode_ends) > 3  # episodes end inside each copy's rows too


def test_episodes_restart_and_follow_on_from_their_own_observations():
    data = collect(envs.make("linear"), 300, seed=0).arrays()
    ends = data["terminated"] | data["truncated"]
    follow = ~ends[:-1]
    np.testing.assert_array_equal(data["obs"][1:][follow], data["next_obs"][:-1][follow])
    assert ends[:-1].sum() >= 1  # the linear system's episodes are shorter than 300 steps


def test_random_actions_are_reproducible_and_differ_between_copies():
    def rows(seed):
        return collect([envs.make("pendulum-swingup") for _ in range(2)], 40, seed=seed).arrays()
    a, b = rows(3), rows(3)
    np.testing.assert_array_equal(a["action"], b["action"])
    assert not np.array_equal(a["action"][:20], a["action"][20:])


def test_bad_collection_requests_are_refused():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        collect(envs.make("linear"), 0, seed=0)
    with pytest.raises(ValueError, match="at least one environment"):
        collect([], 10, seed=0)
    vector = envs.make_vector("linear", 2)
    try:
        with pytest.raises(TypeError, match="not a vector environment"):
            collect(vector, 10, seed=0)
    finally:
        vector.close()
