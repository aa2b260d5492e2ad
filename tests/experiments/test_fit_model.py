"""fit-model records the environment its transitions came from, in summary.json, run.json and data.npz."""

import dataclasses
import json

import numpy as np
import pytest

from forethought import envs
from forethought.data import collect
from forethought.data.offline import npz_env_id, save_transitions
from forethought.experiments.fit_model import FitModelConfig, fit_model
from forethought.models.config import ModelConfig


def config(tmp_path, name: str, **kwargs) -> FitModelConfig:
    return FitModelConfig(env="linear", steps=200, eval_steps=100, out=str(tmp_path / name),
                          model=ModelConfig(kind="linear"), **kwargs)


def recorded(out) -> tuple[dict, dict, str | None]:
    return (json.loads((out / "summary.json").read_text()), json.loads((out / "run.json").read_text()),
            npz_env_id(out / "data.npz"))


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Transitions of the linear system, saved with and without their env id."""
    folder = tmp_path_factory.mktemp("data")
    env = envs.make("linear")
    buffer = collect(env, 400, seed=0)
    env.close()
    save_transitions(buffer, folder / "with_id.npz", env_id="linear")
    save_transitions(buffer, folder / "without_id.npz")
    return folder


def test_collected_data_records_the_configured_env(tmp_path):
    fit_model(config(tmp_path, "collected"))
    summary, info, saved = recorded(tmp_path / "collected")
    assert (summary["env"], summary["env_source"], summary["data"]) == ("linear", "collected", None)
    assert (info["env"], info["env_source"], info["command"]) == ("linear", "collected", "fit-model")
    assert saved == "linear"


def test_data_records_the_env_the_file_names(tmp_path, logged):
    # the configured env is another one: what the file records wins
    fit_model(dataclasses.replace(config(tmp_path, "from_file", data=str(logged / "with_id.npz")), env="pendulum-swingup"))
    summary, info, saved = recorded(tmp_path / "from_file")
    assert (summary["env"], summary["env_source"], info["env"], saved) == ("linear", "data", "linear", "linear")
    assert summary["data"] == info["data"] == str(logged / "with_id.npz")


def test_data_without_an_env_id_records_the_configured_env(tmp_path, logged):
    fit_model(config(tmp_path, "assumed", data=str(logged / "without_id.npz")))
    summary, info, saved = recorded(tmp_path / "assumed")
    assert (summary["env"], summary["env_source"], info["env_source"], saved) == ("linear", "config", "config", "linear")
    np.testing.assert_equal(summary["train_transitions"] + summary["held_out_transitions"], 400)
