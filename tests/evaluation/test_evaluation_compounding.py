"""Trajectory windows, open-loop rollout error and the analytic compounding table."""

import numpy as np
import pytest
import torch

from forethought.data.buffer import ReplayBuffer
from forethought.evaluation import (linear_compounding_table, one_step_error, open_loop_rollout, rollout_error,
                                    trajectory_windows)
from forethought.models import LinearGaussian
from forethought.models.base import DynamicsModel, FitReport, Prediction


class ScalarLinear(DynamicsModel):
    """Deterministic model x' = a x + b u of a 1-D system (no variance)."""

    def __init__(self, a, b=1.0):
        super().__init__(1, 1)
        self.a, self.b, self.fitted = a, b, True

    def _fit(self, obs, action, next_obs, generator):
        return FitReport()

    def _predict(self, obs, action):
        return Prediction(self.a * obs + self.b * action)

    def _state(self):
        return {}, {}

    @classmethod
    def _from_state(cls, tensors, config, obs_dim, act_dim, **kwargs):
        raise NotImplementedError


def scalar_episode(x0, steps, a=1.1, u=0.0):
    """Rows (x_t, u, x_{t+1}) of x' = a x + u, in float64 before storage."""
    xs = [x0]
    for _ in range(steps):
        xs.append(a * xs[-1] + u)
    xs = np.array(xs)
    return xs[:-1, None], np.full((steps, 1), u), xs[1:, None]


def two_episode_buffer(u=0.0):
    """Episode of 6 steps from x0 = 1 (truncated), then one of 3 steps from x0 = 2 (terminated)."""
    buffer = ReplayBuffer(1, 1)
    for x0, steps in ((1.0, 6), (2.0, 3)):
        obs, act, nxt = scalar_episode(x0, steps, u=u)
        ends = np.arange(steps) == steps - 1
        buffer.add_batch(obs, act, np.zeros(steps), nxt, terminated=ends & (x0 == 2.0), truncated=ends & (x0 == 1.0))
    return buffer


def test_textbook_compounding_numbers():
    table = linear_compounding_table()
    assert table["step"] == list(range(1, 11))
    assert [round(e, 4) for e in table["abs_error"][:5]] == [0.0500, 0.1075, 0.1734, 0.2486, 0.3342]
    assert table["rel_error"][4] == pytest.approx(0.208, abs=1e-3)
    assert table["rel_error"][9] == pytest.approx(0.372, abs=1e-3)
    # With no action the relative error is exactly 1 - (a_model / a_true)^t.
    np.testing.assert_allclose(table["rel_error"], [1 - (1.05 / 1.1) ** t for t in range(1, 11)], rtol=1e-12)
    assert table["true_state"][1] == pytest.approx(1.21, rel=1e-12)
    assert table["model_state"][1] == pytest.approx(1.1025, rel=1e-12)
    # A constant action: x_1 = a x0 + b u for both systems.
    driven = linear_compounding_table(action=0.5, b=2.0, steps=2)
    assert driven["true_state"] == pytest.approx([2.1, 3.31]) and driven["model_state"] == pytest.approx([2.05, 3.1525])
    zero = linear_compounding_table(x0=0.0, steps=3)
    assert zero["abs_error"] == [0.0, 0.0, 0.0] and all(np.isnan(zero["rel_error"]))
    with pytest.raises(ValueError, match="steps"):
        linear_compounding_table(steps=0)


def test_windows_stay_inside_episodes():
    buffer = two_episode_buffer()
    obs0, actions, true_obs = trajectory_windows(buffer, 3)
    assert obs0.shape == (5, 1) and actions.shape == (5, 3, 1) and true_obs.shape == (5, 3, 1)
    # Episode 1 gives starts 0..3, episode 2 (3 transitions) exactly one window starting at x0 = 2.
    np.testing.assert_allclose(obs0[:, 0].numpy(), [1.0, 1.1, 1.21, 1.331, 2.0], rtol=1e-6)
    np.testing.assert_allclose(true_obs[3, :, 0].numpy(), [1.1 ** 4, 1.1 ** 5, 1.1 ** 6], rtol=1e-6)
    np.testing.assert_allclose(true_obs[4, :, 0].numpy(), [2.2, 2.42, 2.662], rtol=1e-6)
    assert trajectory_windows(buffer, 4)[0].shape[0] == 3  # the short episode is too short now
    with pytest.raises(ValueError, match="longest has 6"):
        trajectory_windows(buffer, 7)
    with pytest.raises(ValueError, match="horizon"):
        trajectory_windows(buffer, 0)


def test_window_subsets_are_even_or_seeded():
    buffer = two_episode_buffer()
    even = trajectory_windows(buffer, 3, max_windows=2)[0][:, 0].numpy()
    np.testing.assert_allclose(even, [1.0, 2.0], rtol=1e-6)  # first and last of the 5 windows
    first = trajectory_windows(buffer, 3, max_windows=3, generator=torch.Generator().manual_seed(1))
    second = trajectory_windows(buffer, 3, max_windows=3, generator=torch.Generator().manual_seed(1))
    assert first[0].shape == (3, 1) and torch.equal(first[2], second[2])
    assert torch.all(first[0][1:, 0] > first[0][:-1, 0])  # kept in buffer order
    assert trajectory_windows(buffer, 3, max_windows=50)[0].shape[0] == 5


def test_rollout_error_reproduces_the_analytic_table():
    model = ScalarLinear(a=1.05)
    windows = trajectory_windows(two_episode_buffer(), 5)
    from_one = tuple(w[:1] for w in windows)  # the window starting at x0 = 1
    result = rollout_error(model, from_one, horizon=5)
    table = linear_compounding_table(steps=5)
    assert result["steps"] == [1, 2, 3, 4, 5] and result["horizon"] == 5 and result["n_windows"] == 1
    np.testing.assert_allclose(result["mse_per_step"], np.square(table["abs_error"]), rtol=1e-5)
    assert np.shape(result["mse_per_step_per_dim"]) == (5, 1)
    # With a constant action the model still drifts exactly as the analytic table says.
    driven = rollout_error(model, trajectory_windows(two_episode_buffer(u=0.5), 6), horizon=6)
    expected = linear_compounding_table(action=0.5, steps=6)
    np.testing.assert_allclose(driven["mse_per_step"], np.square(expected["abs_error"]), rtol=1e-5)
    # A perfect model has no compounding error; a shorter horizon on given windows uses their start.
    assert max(rollout_error(ScalarLinear(a=1.1), windows, horizon=3)["mse_per_step"]) < 1e-10
    with pytest.raises(ValueError, match="horizon 6"):
        rollout_error(model, windows, horizon=6)


def test_rollout_on_a_learned_model_compounds_and_starts_at_the_one_step_error():
    gen = torch.Generator().manual_seed(2)
    buffer = ReplayBuffer(2, 1)
    a_true = torch.tensor([[1.02, 0.1], [0.0, 0.98]])
    for _ in range(4):
        state = torch.randn(2, generator=gen)
        for t in range(30):
            action = torch.randn(1, generator=gen)
            nxt = a_true @ state + torch.tensor([0.0, 0.5]) * action + 0.05 * torch.randn(2, generator=gen)
            buffer.add(state.numpy(), action.numpy(), 0.0, nxt.numpy(), truncated=t == 29)
            state = nxt
    model = LinearGaussian(2, 1)
    model.fit(buffer)
    windows = trajectory_windows(buffer, 10)
    result = rollout_error(model, windows, horizon=10)
    assert result["n_windows"] == 4 * 21
    per_dim = np.array(result["mse_per_step_per_dim"])
    np.testing.assert_allclose(result["mse_per_step"], per_dim.mean(axis=1), rtol=1e-12)
    first_step = one_step_error(model, (windows[0], windows[1][:, 0], windows[2][:, 0]))
    np.testing.assert_allclose(per_dim[0], first_step["mse_per_dim"], rtol=1e-9)
    assert result["mse_per_step"][-1] > 3 * result["mse_per_step"][0]  # errors accumulate open loop
    pred = open_loop_rollout(model, windows[0], windows[1])
    assert pred.mean.shape == pred.aleatoric_var.shape == pred.epistemic_var.shape == (84, 10, 2)
    assert pred.mean.dtype == torch.float64
