"""Collecting from several copies of an environment at once (vector environments)."""

import gymnasium as gym
import numpy as np
import pytest

from forethought import envs
from forethought.data import collect


def feedback(obs: np.ndarray) -> np.ndarray:
    """A deterministic policy for one ``[1]`` or many ``[N, 1]`` observations of the linear system."""
    return np.clip(-0.4 * obs + 0.3 * np.sin(3 * obs), -1, 1).astype(np.float32)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_copies_store_what_each_copy_alone_would_have(asynchronous):
    vector = envs.make_vector("linear", 3, asynchronous=asynchronous)
    try:
        together = collect(vector, 250, seed=7, policy=feedback).arrays()
    finally:
        vector.close()
    quota = [84, 83, 83]  # 250 shared as evenly as possible, copy 0 first
    first = 0
    for i, rows in enumerate(quota):
        alone = collect(envs.make("linear"), rows, seed=7 + i, policy=feedback).arrays()
        part = {name: values[first:first + rows] for name, values in together.items()}
        for name in ("obs", "action", "reward", "next_obs", "terminated"):
            np.testing.assert_array_equal(part[name], alone[name], err_msg=f"copy {i}, {name}")
        alone["truncated"][-1] = True  # the budget cut the copy's last episode
        np.testing.assert_array_equal(part["truncated"], alone["truncated"])
        first += rows
    assert first == len(together["obs"]) == 250
    episode_ends = np.flatnonzero(together["terminated"] | together["truncated"])
    assert len(episode_ends) > 3  # episodes end inside each copy's rows too (the final obs is stored)


def test_random_actions_from_copies_are_reproducible_and_differ_between_copies():
    def rows(seed):
        vector = envs.make_vector("pendulum-swingup", 2)
        try:
            return collect(vector, 40, seed=seed).arrays()
        finally:
            vector.close()
    a, b = rows(3), rows(3)
    np.testing.assert_array_equal(a["action"], b["action"])
    assert not np.array_equal(a["obs"][:20], a["obs"][20:])


def test_vector_collection_needs_same_step_autoreset():
    vector = gym.vector.SyncVectorEnv([lambda: envs.make("linear")] * 2)  # Gymnasium's default: next-step reset
    with pytest.raises(ValueError, match="same-step autoreset"):
        collect(vector, 10, seed=0)
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        envs.make_vector("linear", 0)
    with pytest.raises(ValueError, match="unknown environment"):
        envs.make_vector("no-such-env", 2)
