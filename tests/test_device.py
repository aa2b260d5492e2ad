"""The device setting: values, refusals before anything is written, and models that follow ``.to``."""

import pytest
import torch

from forethought.cli import main
from forethought.device import check_device, resolve_device
from forethought.experiments.fit_model import FitModelConfig
from forethought.experiments.run_config import PETSRunConfig
from forethought.models import ProbabilisticEnsemble
from forethought.models.linear import LinearGaussian
from forethought.seeding import generator, load_generators, save_generators
from forethought.serialization import CheckpointError, save_checkpoint

CUDA = torch.cuda.is_available()


def test_auto_picks_cuda_where_available_else_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert check_device(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("value", ["gpu", "meta", "mps", "cuda:1", "CPU", "", None, 0, torch.device("meta")])
def test_unknown_devices_are_refused_naming_the_key_and_the_choices(value):
    with pytest.raises(ValueError, match=r"^agent_device must be one of cpu, cuda, auto, got"):
        check_device(value, key="agent_device")


@pytest.mark.skipif(CUDA, reason="CUDA is available here: test_cuda_runs_where_available covers it")
def test_cuda_without_cuda_is_a_clear_error_in_every_config():
    message = r"^device=cuda but torch.cuda.is_available\(\) is False \(torch .* built for CPU"
    for make in (lambda: PETSRunConfig(device="cuda"), lambda: FitModelConfig(device="cuda"),
                 lambda: resolve_device("cuda")):
        with pytest.raises(ValueError, match=message):
            make()


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
@pytest.mark.parametrize("command", [["run", "pets", "--env", "linear"], ["run", "dreamer"], ["fit-model", "--quiet"]])
@pytest.mark.parametrize("setting", ["device=cuda", "device=meta"])
def test_the_cli_refuses_a_device_before_the_run_directory_exists(tmp_path, command, setting):
    out = tmp_path / "run"
    assert main([*command, "--out", str(out), setting]) == 2
    assert not out.exists()


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_runs_where_available(tmp_path):
    assert main(["fit-model", "--quiet", "--out", str(tmp_path / "f"), "steps=300", "eval_steps=100",
                 "train.max_epochs=2", "device=cuda"]) == 0


def test_a_model_moved_with_to_predicts_samples_and_freezes_on_that_device():
    # the meta device holds shapes only: any tensor a path creates on the CPU instead is an error
    model = ProbabilisticEnsemble(3, 1, ensemble_size=3, hidden_size=8, hidden_layers=1).to("meta")
    model.fitted, model.elites = True, [0, 2]
    tensors = [*model.network.parameters(), model.obs_norm.mean, model.act_norm.std, model.delta_norm.std]
    assert model.device == torch.device("meta") and all(t.device.type == "meta" for t in tensors)
    obs, action = torch.zeros(4, 3, device="meta"), torch.zeros(4, 1, device="meta")
    prediction = model.predict(obs, action)
    assert prediction.mean.is_meta and prediction.epistemic_var.is_meta and prediction.aleatoric_var.is_meta
    assert model.sample(obs, action, torch.Generator()).is_meta
    assert model.delta_scale().is_meta
    blocks = (torch.zeros(2, 4, 3, device="meta"), torch.zeros(2, 4, 1, device="meta"))
    for predictor in (model.member_predictor(), model.frozen_member_predictor(),
                      model.frozen_member_predictor("bfloat16")):
        means, stds = predictor(*blocks)
        assert means.is_meta and stds.is_meta
    linear = LinearGaussian(3, 1).to("meta")
    linear.fitted = True
    assert linear.predict(obs, action).mean.is_meta


def test_a_model_loads_onto_the_device_asked_for_and_saves_cpu_tensors(tmp_path):
    model = ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden_size=8, hidden_layers=1, max_epochs=1)
    model.fit(torch.randn(40, 2), torch.randn(40, 1), torch.randn(40, 2))
    model.save(tmp_path / "m")
    loaded = ProbabilisticEnsemble.load(tmp_path / "m", device=resolve_device("auto"))
    assert loaded.device == resolve_device("auto")
    assert all(p.device == loaded.device for p in loaded.network.parameters())
    torch.testing.assert_close(loaded.predict(torch.ones(3, 2), torch.ones(3, 1)).mean.cpu(),
                               model.predict(torch.ones(3, 2), torch.ones(3, 1)).mean)


def test_a_generator_state_from_another_kind_of_device_is_refused_by_name(tmp_path):
    save_generators(tmp_path / "g", {"model": generator(0, "model")})
    fresh = generator(1, "model")
    load_generators(tmp_path / "g", {"model": fresh})
    assert fresh.get_state().equal(generator(0, "model").get_state())
    # a CUDA generator's state is 16 bytes; a CPU generator cannot take it
    save_checkpoint(tmp_path / "cuda", {"model": torch.zeros(16, dtype=torch.uint8)}, {"kind": "generators"})
    with pytest.raises(CheckpointError, match=r"generator 'model'.*16 bytes, a cpu generator's has \d+: "
                                              r"it was saved on another kind of device"):
        load_generators(tmp_path / "cuda", {"model": generator(0, "model")})
