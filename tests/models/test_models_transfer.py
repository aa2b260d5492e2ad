"""Fine-tuning a model of one system on a few transitions of a changed one."""

import copy

import pytest
import torch

from forethought.models import LinearGaussian
from forethought.models.neural import DeterministicEnsemble
from forethought.models.transfer import fine_tune


def system(n: int, seed: int, gain: float):
    """s' = s + 0.5 sin(3 s) + gain * a: the variants differ in the actuator gain."""
    g = torch.Generator().manual_seed(seed)
    obs, act = torch.rand(n, 1, generator=g) * 2 - 1, torch.rand(n, 1, generator=g) * 2 - 1
    return obs, act, obs + 0.5 * torch.sin(3 * obs) + gain * act


def error(model, data) -> float:
    obs, act, nxt = data
    return float((model.predict(obs, act).mean - nxt).pow(2).mean())


@pytest.fixture(scope="module")
def source():
    model = DeterministicEnsemble(1, 1, ensemble_size=2, hidden_size=32, hidden_layers=2, max_epochs=150,
                                  batch_size=64, patience=20)
    model.fit(*system(2000, 0, gain=0.3), generator=torch.Generator().manual_seed(0))
    return model


def test_fine_tuning_on_few_new_transitions_beats_the_source_model_and_training_from_scratch(source):
    few, held_out = system(30, 1, gain=0.6), system(500, 2, gain=0.6)
    options = dict(max_epochs=200, patience=30, batch_size=16, min_epoch_batches=2)
    scratch = DeterministicEnsemble(1, 1, ensemble_size=2, hidden_size=32, hidden_layers=2, **options)
    scratch.fit(*few, generator=torch.Generator().manual_seed(0))
    errors = {"source": error(source, held_out), "scratch": error(scratch, held_out)}
    for mode in ("all", "freeze", "output"):
        model = copy.deepcopy(source)
        fine_tune(model, few, mode=mode, frozen_layers=1, **options)
        errors[mode] = error(model, held_out)
    for mode in ("all", "freeze", "output"):
        assert errors[mode] < 0.5 * errors["source"], errors
        assert errors[mode] < errors["scratch"], errors


def test_frozen_layers_keep_their_weights_and_the_normaliser_mode_only_rescales(source):
    few = system(30, 1, gain=0.6)
    model = copy.deepcopy(source)
    fine_tune(model, few, mode="freeze", frozen_layers=2, max_epochs=5)
    body, original = model.network.body, source.network.body
    for layer in range(2):
        assert torch.equal(body.weights[layer], original.weights[layer])
        assert torch.equal(body.biases[layer], original.biases[layer])
    assert not torch.equal(body.weights[2], original.weights[2])
    assert torch.equal(model.obs_norm.mean, source.obs_norm.mean)  # the source's normalisers are kept
    rescaled = copy.deepcopy(source)
    report = fine_tune(rescaled, few, mode="normalizer")
    assert "no gradient steps" in report.message
    assert all(torch.equal(a, b) for a, b in zip(rescaled.network.parameters(), source.network.parameters()))
    assert not torch.equal(rescaled.delta_norm.std, source.delta_norm.std)


def test_bad_fine_tuning_requests_are_rejected(source):
    few = system(10, 1, gain=0.6)
    with pytest.raises(ValueError, match="mode must be one of"):
        fine_tune(copy.deepcopy(source), few, mode="last")
    with pytest.raises(ValueError, match="would freeze the output layer"):
        fine_tune(copy.deepcopy(source), few, mode="freeze", frozen_layers=3)
    with pytest.raises(ValueError, match="fitted model"):
        fine_tune(DeterministicEnsemble(1, 1), few)
    with pytest.raises(TypeError, match="neural models"):
        fine_tune(LinearGaussian(1, 1), few)
