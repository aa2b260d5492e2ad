"""The PNG figures are written, have the requested size and actually contain a drawing."""

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from forethought.data.buffer import ReplayBuffer
from forethought.evaluation import plot_compounding_error, plot_predicted_trajectories, rollout_error, trajectory_windows
from forethought.models import LinearGaussian


def linear_buffer(episodes=3, steps=25, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a_true = torch.tensor([[1.0, 0.1], [-0.1, 0.95]])
    buffer = ReplayBuffer(2, 1)
    for _ in range(episodes):
        state = torch.randn(2, generator=gen)
        for t in range(steps):
            action = torch.randn(1, generator=gen)
            nxt = a_true @ state + torch.tensor([0.0, 0.3]) * action + 0.05 * torch.randn(2, generator=gen)
            buffer.add(state.numpy(), action.numpy(), 0.0, nxt.numpy(), truncated=t == steps - 1)
            state = nxt
    return buffer


def assert_real_png(path, height, width):
    assert path.exists() and path.stat().st_size > 5_000
    image = imread(path)
    assert image.shape == (height, width, 4)
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_compounding_error_plot(tmp_path):
    buffer = linear_buffer()
    exact, ridge = LinearGaussian(2, 1), LinearGaussian(2, 1, ridge=50.0)
    exact.fit(buffer)
    ridge.fit(buffer)
    windows = trajectory_windows(buffer, 15)
    curves = {name: rollout_error(model, windows, 15)["mse_per_step"] for name, model in
              (("linear", exact), ("linear, ridge 50", ridge))}
    path = plot_compounding_error(curves, tmp_path / "plots" / "compounding.png", figsize=(6, 4), dpi=100)
    assert path == tmp_path / "plots" / "compounding.png"
    assert_real_png(path, 400, 600)
    # Non-positive values are gaps on the log axis, not a crash; overwriting replaces the file.
    plot_compounding_error({"with zero": [0.0, 0.1, 0.2]}, path, figsize=(5, 3), dpi=80)
    assert_real_png(path, 240, 400)


def test_compounding_error_plot_rejects_unplottable_input(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_compounding_error({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="log scale"):
        plot_compounding_error({"perfect": [0.0, 0.0]}, tmp_path / "a.png")
    assert not any(tmp_path.iterdir())


def test_predicted_trajectories_plot_from_buffer_and_from_a_window(tmp_path):
    buffer = linear_buffer()
    model = LinearGaussian(2, 1)
    model.fit(buffer)
    path = plot_predicted_trajectories(model, buffer, tmp_path / "one" / "traj.png", horizon=20,
                                       panel_size=(6, 2.5), dpi=100)
    assert_real_png(path, 500, 600)  # two panels of 2.5 inches
    obs0, actions, true_obs = trajectory_windows(buffer, 20)
    single = (obs0[3], actions[3], true_obs[3])  # one window without the window axis
    path = plot_predicted_trajectories(model, single, tmp_path / "two" / "traj.png", horizon=10, dims=[1],
                                       panel_size=(5, 3), dpi=80)
    assert_real_png(path, 240, 400)
    with pytest.raises(ValueError, match="dims"):
        plot_predicted_trajectories(model, single, tmp_path / "bad.png", horizon=10, dims=[2])
    with pytest.raises(ValueError, match="fewer than horizon"):
        plot_predicted_trajectories(model, single, tmp_path / "bad.png", horizon=30)


def test_uncertainty_band_is_drawn_only_when_the_model_has_variance(tmp_path):
    buffer = linear_buffer()
    model = LinearGaussian(2, 1)
    model.fit(buffer)
    banded = imread(plot_predicted_trajectories(model, buffer, tmp_path / "a" / "band.png", horizon=20))
    model.noise_cov = torch.zeros(2, 2, dtype=torch.float64)  # zero variance: the band collapses
    flat = imread(plot_predicted_trajectories(model, buffer, tmp_path / "b" / "flat.png", horizon=20))
    assert banded.shape == flat.shape
    changed = np.abs(banded - flat).sum(axis=-1) > 0.1
    assert changed.mean() > 0.01  # the shaded band covers a visible part of the figure
