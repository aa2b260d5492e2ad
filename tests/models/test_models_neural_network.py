"""The batched ensemble network and the pieces of its training loop."""

import math

import pytest
import torch
from torch import nn

from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork, EnsembleMLP, soft_bound
from forethought.models.config import TrainConfig
from forethought.models.training import clip_member_gradients


def reference_network(ensemble: EnsembleMLP, k: int) -> nn.Sequential:
    """Member k rebuilt from its weights as ordinary nn.Linear layers (an independent implementation)."""
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(ensemble.weights, ensemble.biases)):
        linear = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            linear.weight.copy_(w[k].T)
            linear.bias.copy_(b[k, 0])
        layers.append(linear)
        if i < len(ensemble.weights) - 1:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def test_member_outputs_equal_independent_networks_built_from_member_weights():
    net = EnsembleMLP(6, 3, ensemble_size=4, hidden_size=32, hidden_layers=3,
                      generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 17, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
        for k in range(4):
            torch.testing.assert_close(out[k], reference_network(net, k)(x[k]), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(out[k:k + 1], net.member(k)(x[k:k + 1]), rtol=1e-5, atol=1e-6)
    # shared rows [B, in] go to every member
    shared = x[0]
    torch.testing.assert_close(net(shared)[2], reference_network(net, 2)(shared), rtol=1e-5, atol=1e-6)


def test_forward_is_one_batched_matmul_per_layer_whatever_the_ensemble_size(monkeypatch):
    calls = []
    real = torch.baddbmm

    def counting(*args, **kwargs):
        calls.append(args[1].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "baddbmm", counting)
    for k in (1, 7):
        calls.clear()
        EnsembleMLP(2, 2, ensemble_size=k, hidden_size=8, hidden_layers=4)(torch.zeros(k, 5, 2))
        assert calls == [k] * 5  # 4 hidden layers + output, each covering all k members at once


@pytest.mark.parametrize("batch", [1, 1000])
def test_shapes_for_any_batch_size(batch):
    net = EnsembleDynamicsNetwork(4, 3, probabilistic=True, ensemble_size=5, hidden_size=16, hidden_layers=2)
    mean, log_std = net(torch.zeros(batch, 4))
    assert mean.shape == log_std.shape == (5, batch, 3)
    mean, log_std = EnsembleDynamicsNetwork(4, 3, probabilistic=False, hidden_size=16)(torch.zeros(1, batch, 4))
    assert mean.shape == (1, batch, 3) and log_std is None


def test_wrong_input_shape_is_rejected_with_the_expected_shape_in_the_message():
    net = EnsembleMLP(4, 2, ensemble_size=3, hidden_size=8)
    with pytest.raises(ValueError, match=r"expected \(3, B, 4\)"):
        net(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="expected"):
        net(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="hidden_size"):
        EnsembleMLP(4, 2, hidden_size=0)


def test_initialisation_is_driven_by_the_generator_and_differs_between_members():
    a = EnsembleMLP(5, 2, ensemble_size=3, hidden_size=64, generator=torch.Generator().manual_seed(3))
    b = EnsembleMLP(5, 2, ensemble_size=3, hidden_size=64, generator=torch.Generator().manual_seed(3))
    c = EnsembleMLP(5, 2, ensemble_size=3, hidden_size=64, generator=torch.Generator().manual_seed(4))
    for wa, wb, wc in zip(a.weights, b.weights, c.weights):
        assert torch.equal(wa, wb) and not torch.equal(wa, wc)
        assert not torch.equal(wa[0], wa[1])
        std = 1 / math.sqrt(wa.shape[1])
        assert wa.abs().max() <= 2 * std + 1e-6  # truncated at two standard deviations
        assert 0.7 * std < wa.std() < 1.0 * std  # a normal truncated at 2 std has std 0.88 std
    assert all(torch.count_nonzero(bias) == 0 for bias in a.biases)


def test_soft_bound_keeps_log_std_inside_learnable_bounds_and_passes_gradient_to_them():
    lower = torch.tensor([-2.0], requires_grad=True)
    upper = torch.tensor([0.5], requires_grad=True)
    x = torch.linspace(-50, 50, 101)
    y = soft_bound(x, lower, upper)
    values = y.detach()
    # soft bounds: never below lower, at most upper + log(1 + exp(lower - upper)) above
    assert (y >= lower).all() and (y <= upper + math.log1p(math.exp(-2.5)) + 1e-6).all()
    assert float(values[0]) == pytest.approx(-2.0, abs=1e-6) and float(values[-1]) > 0.5
    assert abs(float(soft_bound(torch.tensor([-0.75]), lower, upper).detach()) + 0.75) < 0.2  # near identity mid-range
    y.sum().backward()
    assert lower.grad.abs() > 0 and upper.grad.abs() > 0


def test_bound_penalty_is_per_member_sum_of_bound_gap():
    net = EnsembleDynamicsNetwork(2, 3, probabilistic=True, ensemble_size=2, hidden_size=4,
                                  max_log_std=0.5, min_log_std=-4.0)
    torch.testing.assert_close(net.bound_penalty(), torch.full((2,), 3 * 4.5))
    deterministic = EnsembleDynamicsNetwork(2, 3, probabilistic=False, ensemble_size=2)
    assert torch.equal(deterministic.bound_penalty(), torch.zeros(2))


def test_gradient_clipping_is_per_member():
    net = EnsembleMLP(3, 1, ensemble_size=2, hidden_size=4, hidden_layers=1)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
        p.grad[1] *= 1e-3  # member 1 has a tiny gradient
    before = [p.grad.clone() for p in net.parameters()]
    norms = clip_member_gradients(net, max_norm=1.0)
    assert norms[0] > 1.0 and norms[1] < 1.0
    after_norm0 = math.sqrt(sum(float(p.grad[0].pow(2).sum()) for p in net.parameters()))
    assert after_norm0 == pytest.approx(1.0, rel=1e-4)
    for p, old in zip(net.parameters(), before):
        assert torch.equal(p.grad[1], old[1])  # the small member is left untouched


def test_training_options_are_validated():
    with pytest.raises(ValueError, match=r"train.val_fraction must be a number in \(0, 1\), got 0.0"):
        TrainConfig(val_fraction=0.0)
    with pytest.raises(ValueError, match="train.lr must be a finite number > 0, got -1.0"):
        TrainConfig(lr=-1.0)
    assert "patience" in TrainConfig.names()


def test_inference_path_in_row_blocks_matches_the_training_path():
    net = EnsembleMLP(3, 2, ensemble_size=4, hidden_size=256, hidden_layers=2,
                      generator=torch.Generator().manual_seed(5))
    x = torch.randn(4, 2500, 3, generator=torch.Generator().manual_seed(6))  # > 1024 rows: several blocks
    with torch.no_grad():
        blocked = net(x)
    recorded = net(x)  # parameters require grad: the graph-building path
    assert recorded.requires_grad and not blocked.requires_grad
    torch.testing.assert_close(blocked, recorded.detach(), rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_inputs_when_the_weights_are_frozen():
    net = EnsembleMLP(3, 2, ensemble_size=2, hidden_size=8).requires_grad_(False)
    x = torch.randn(2, 5, 3, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
