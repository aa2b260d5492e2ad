"""The action-repeat wrapper: summed rewards, early stop at the episode's end, bad input."""

import numpy as np
import pytest

from forethought.envs import ActionRepeat, make


def test_rewards_are_summed_and_the_last_observation_returned():
    repeated = ActionRepeat(make("pendulum-swingup", max_episode_steps=5), 2)
    bare = make("pendulum-swingup", max_episode_steps=5)
    repeated.reset(seed=1)
    bare.reset(seed=1)
    outcomes = [repeated.step(np.array([-1.0])) for _ in range(3)]
    expected = [bare.step(np.array([-1.0])) for _ in range(5)]
    assert [info["repeat_steps"] for *_, info in outcomes] == [2, 2, 1]  # the episode ends inside the third
    assert [reward for _, reward, *_ in outcomes] == pytest.approx(
        [expected[0][1] + expected[1][1], expected[2][1] + expected[3][1], expected[4][1]])
    np.testing.assert_array_equal(outcomes[1][0], expected[3][0])
    assert outcomes[2][3] and not outcomes[2][2]  # truncated, not terminated


@pytest.mark.parametrize("repeat", [0, -1, 1.5, True])
def test_a_repeat_that_is_not_a_positive_integer_is_refused(repeat):
    with pytest.raises(ValueError, match="action_repeat must be an integer >= 1"):
        ActionRepeat(make("pendulum-swingup"), repeat)
