"""Dict and Tuple observations flattened in order, with their layout; DeepMind Control ids."""

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from forethought.envs import make
from forethought.envs.flatten import flatten_observations, observation_layout, space_layout


class StructuredEnv(gym.Env):
    """Observations from ``space`` whose every entry is distinct (their flat index, for Box parts)."""

    def __init__(self, space: gym.Space) -> None:
        self.observation_space, self.action_space = space, spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


NESTED = spaces.Dict({"zeta": spaces.Box(-5, 5, (2, 3), np.float64),
                      "alpha": spaces.Tuple((spaces.Discrete(3), spaces.Box(0, 1, (2,), np.float32))),
                      "mid": spaces.Box(-1, 1, (), np.float64)}, seed=0)


def test_the_flat_vector_keeps_the_order_and_its_slices_equal_the_parts():
    env = flatten_observations(StructuredEnv(NESTED))
    layout = observation_layout(env)
    where = {p["key"]: slice(p["offset"], p["offset"] + p["size"]) for p in layout}
    assert [(p["key"], p["shape"], p["offset"], p["size"]) for p in layout] == [
        ("alpha/0", [], 0, 3), ("alpha/1", [2], 3, 2), ("mid", [], 5, 1), ("zeta", [2, 3], 6, 6)]
    assert env.observation_space.shape == (12,)
    for seed in range(3):
        NESTED.seed(seed)
        flat, _ = env.reset(seed=seed)
        NESTED.seed(seed)
        parts = NESTED.sample()

        def part(key):
            return flat[where[key]]
        np.testing.assert_array_equal(part("zeta").reshape(2, 3), parts["zeta"])
        np.testing.assert_array_equal(part("mid"), np.ravel(parts["mid"]))
        np.testing.assert_array_equal(part("alpha/1"), parts["alpha"][1])
        np.testing.assert_array_equal(part("alpha/0"), np.eye(3)[parts["alpha"][0]])  # Discrete: one-hot


def test_a_dict_keeps_the_order_of_an_ordered_space():
    space = spaces.Dict([("velocity", spaces.Box(-1, 1, (2,))), ("position", spaces.Box(-1, 1, (3,)))])
    assert [p["key"] for p in space_layout(space)] == ["velocity", "position"]
    env = flatten_observations(StructuredEnv(space))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and [p["offset"] for p in observation_layout(env)] == [0, 2]


def test_other_spaces_are_left_alone():
    box = StructuredEnv(spaces.Box(-1, 1, (4,)))
    assert flatten_observations(box) is box and observation_layout(box) is None
    assert space_layout(spaces.Box(-1, 1, (2, 2))) == [{"key": "obs", "shape": [2, 2], "offset": 0, "size": 4}]


def test_a_space_without_a_fixed_size_vector_is_a_clear_error():
    space = spaces.Dict({"pose": spaces.Box(-1, 1, (2,)), "path": spaces.Sequence(spaces.Box(-1, 1, (2,)))})
    with pytest.raises(ValueError, match=r"observation part 'path' is a Sequence space .* no fixed-size flat vector"):
        flatten_observations(StructuredEnv(space))
    with pytest.raises(ValueError, match="'1/label' is a Text space"):
        space_layout(spaces.Tuple((spaces.Box(-1, 1, (1,)), spaces.Dict({"label": spaces.Text(5)}))))
    with pytest.raises(ValueError, match="no entries"):
        flatten_observations(StructuredEnv(spaces.Dict({})))


def test_make_flattens_a_registered_dict_environment_and_names_a_bad_one():
    gym.register("tests/Structured-v0", entry_point=lambda: StructuredEnv(NESTED))
    gym.register("tests/Unflattenable-v0",
                 entry_point=lambda: StructuredEnv(spaces.Dict({"g": spaces.Graph(spaces.Box(0, 1, (1,)), None)})))
    try:
        env = make("tests/Structured-v0")
        assert env.observation_space.shape == (12,) and env.reset(seed=0)[0].shape == (12,)
        with pytest.raises(ValueError, match=r"^environment 'tests/Unflattenable-v0': observation part 'g' is a Graph"):
            make("tests/Unflattenable-v0")
    finally:
        del gym.registry["tests/Structured-v0"], gym.registry["tests/Unflattenable-v0"]


@pytest.mark.parametrize("name", ["dm_control/cartpole-swingup-v0", "shimmy:dm_control/cartpole-swingup-v0"])
def test_deepmind_control_ids_work_flattened(name):
    pytest.importorskip("dm_control")
    env = make(name)
    assert observation_layout(env) == [{"key": "position", "shape": [3], "offset": 0, "size": 3},
                                       {"key": "velocity", "shape": [2], "offset": 3, "size": 2}]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and env.observation_space.contains(obs)
    inner = env.env  # the Dict observations beneath the flattening
    position = inner.unwrapped._env.physics.named.data.qpos  # cart x, pole angle (cos, sin in the obs)
    assert obs[0] == pytest.approx(position[0])
    next_obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert next_obs.shape == (5,) and np.isfinite(reward) and not terminated
    env.close()


def test_a_missing_dmc_install_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "shimmy", None)  # import shimmy now raises ImportError
    with pytest.raises(ValueError, match=r"^environment 'dm_control/cartpole-swingup-v0' needs the module 'shimmy'.*"
                                         r"pip install 'forethought\[dmc\]'$"):
        make("dm_control/cartpole-swingup-v0")
    with pytest.raises(ValueError, match=r"pip install 'forethought\[dmc\]'$"):
        make("shimmy:dm_control/cartpole-swingup-v0")


def test_deepmind_control_takes_the_runs_64_bit_seeds():
    pytest.importorskip("dm_control")
    env = make("dm_control/cartpole-swingup-v0")
    first, _ = env.reset(seed=2**40 + 5)
    again, _ = env.reset(seed=5)  # the same seed, folded into NumPy's range
    other, _ = env.reset(seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
