"""The fast inference paths of planning compute what the reference paths compute, within their
documented tolerances: the frozen float32 snapshot to rounding, the bfloat16 option to about 1e-2
of a typical one-step change, with the planner's ranking of candidates kept."""

import pytest
import torch

from forethought.data import ReplayBuffer
from forethought.models import ProbabilisticEnsemble
from forethought.models import frozen as frozen_module
from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.frozen import FrozenEnsemble
from forethought.models.neural import MLPDynamics
from forethought.planning.rollout import TrajectoryEvaluator


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def trained_looking(network: EnsembleDynamicsNetwork) -> EnsembleDynamicsNetwork:
    """Nonzero biases and members whose log-std bounds differ, as after training."""
    with torch.no_grad():
        for bias in network.body.biases:
            bias.copy_(0.3 * torch.randn(bias.shape, generator=gen(7)))
        if network.probabilistic:
            network.max_log_std.copy_(0.5 + 0.1 * torch.randn(network.max_log_std.shape, generator=gen(8)))
            network.min_log_std.copy_(-4.0 + 0.1 * torch.randn(network.min_log_std.shape, generator=gen(9)))
    return network


def reference(network: EnsembleDynamicsNetwork, members: list[int], x: torch.Tensor):
    """The module's forward on ``x [E, B, in]`` for ``members``, the others fed zeros."""
    full = torch.zeros(network.ensemble_size, *x.shape[1:])
    full[members] = x
    mean, log_std = network(full)
    return mean[members], None if log_std is None else log_std[members]


@pytest.mark.parametrize("probabilistic,hidden_layers,pad,chunk_bytes,rows", [
    (True, 3, 1, None, 37), (True, 3, 16, None, 37), (False, 2, 1, None, 37), (True, 0, 1, None, 37),
    (True, 2, 8, 4096, 37),
    # above FUSED_ROWS rows per member: fused layers member by member, in blocks (the second with a short last block)
    (True, 3, 16, None, 300), (True, 3, 16, None, 600), (True, 2, 8, 40_000, 1100), (False, 0, 1, None, 600),
])
@pytest.mark.parametrize("fused", [True, False])
def test_float32_snapshot_matches_the_network(probabilistic, hidden_layers, pad, chunk_bytes, rows, fused,
                                              monkeypatch):
    if not fused:  # where PyTorch lacks oneDNN's fused linear: the bmm and member-by-member mm paths
        monkeypatch.setattr(frozen_module, "fused_linear_available", lambda: False)
    elif rows > frozen_module.FUSED_ROWS and not frozen_module.fused_linear_available():
        pytest.skip("this PyTorch build has no oneDNN fused linear")
    network = trained_looking(EnsembleDynamicsNetwork(6, 5, probabilistic, 4, 24, hidden_layers, generator=gen(0)))
    members = [0, 2, 3]
    x = 2.0 * torch.randn(3, rows, 6, generator=gen(1))
    frozen = FrozenEnsemble(network, members, "float32", pad=pad, chunk_bytes=chunk_bytes)
    mean, log_std = frozen(x)
    ref_mean, ref_log_std = reference(network, members, x)
    assert mean.dtype == torch.float32 and mean.shape == ref_mean.shape
    assert torch.allclose(mean, ref_mean, rtol=1e-5, atol=1e-5)
    if probabilistic:
        assert torch.allclose(log_std, ref_log_std, rtol=1e-5, atol=1e-5)
    else:
        assert log_std is None


@pytest.mark.parametrize("rows", [9, 300])
def test_input_map_and_parts_equal_mapping_first(rows):
    network = trained_looking(EnsembleDynamicsNetwork(6, 5, True, 3, 16, 2, generator=gen(0)))
    scale, shift = torch.rand(6, generator=gen(2)) + 0.5, torch.randn(6, generator=gen(3))
    obs, action = torch.randn(3, rows, 5, generator=gen(4)), torch.randn(3, rows, 1, generator=gen(5))
    mapped = FrozenEnsemble(network, [0, 1, 2], input_scale=scale, input_shift=shift)(obs, action)
    direct = FrozenEnsemble(network, [0, 1, 2])(torch.cat([obs, action], dim=-1) * scale + shift)
    for got, want in zip(mapped, direct):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bfloat16_snapshot_is_close_and_keeps_the_log_std_bounds():
    network = trained_looking(EnsembleDynamicsNetwork(6, 5, True, 4, 200, 4, generator=gen(0)))
    x = torch.randn(4, 300, 6, generator=gen(1))
    mean32, log_std32 = FrozenEnsemble(network, [0, 1, 2, 3], "float32")(x)
    mean16, log_std16 = FrozenEnsemble(network, [0, 1, 2, 3], torch.bfloat16)(x)
    assert mean16.dtype == torch.float32 and log_std16.dtype == torch.float32
    scale = mean32.abs().mean()
    assert float((mean16 - mean32).abs().mean()) < 0.02 * scale
    assert float((mean16 - mean32).abs().max()) < 0.2 * scale
    assert float((log_std16 - log_std32).abs().max()) < 0.1
    assert bool((log_std16 >= network.min_log_std[:, :, :].expand_as(log_std16) - 1e-6).all())
    assert not torch.allclose(mean16, mean32, atol=1e-6)  # it really computed in bfloat16


def fitted_cartpole_like_model() -> MLPDynamics:
    """A 5-member ensemble with normalisers fitted on synthetic data of cart-pole's scales."""
    model = ProbabilisticEnsemble(5, 1, ensemble_size=5, hidden_size=64, hidden_layers=3, max_epochs=2)
    obs = torch.randn(400, 5, generator=gen(0)) * torch.tensor([1.0, 2.0, 0.7, 0.7, 5.0])
    action = torch.rand(400, 1, generator=gen(1)) * 2 - 1
    next_obs = obs + 0.1 * torch.tanh(obs @ torch.randn(5, 5, generator=gen(2)) + action)
    buffer = ReplayBuffer(5, 1)
    buffer.add_batch(obs.numpy(), action.numpy(), torch.zeros(400).numpy(), next_obs.numpy())
    model.fit(buffer, generator=gen(3))
    model.elites = [0, 1, 3, 4]
    return model


def test_frozen_member_predictor_float32_matches_predict_members():
    model = fitted_cartpole_like_model()
    obs, action = torch.randn(4, 50, 5, generator=gen(4)), torch.rand(4, 50, 1, generator=gen(5))
    predictor = model.frozen_member_predictor("float32")
    assert predictor.members == [0, 1, 3, 4] and predictor.probabilistic
    means, stds = predictor(obs, action)
    full_obs, full_action = torch.zeros(5, 50, 5), torch.zeros(5, 50, 1)
    full_obs[[0, 1, 3, 4]], full_action[[0, 1, 3, 4]] = obs, action
    ref_means, ref_vars = model.predict_members(full_obs, full_action)
    assert torch.allclose(means, ref_means[[0, 1, 3, 4]], rtol=1e-5, atol=1e-5)
    assert torch.allclose(stds, ref_vars[[0, 1, 3, 4]].sqrt(), rtol=1e-5, atol=1e-6)


def evaluators(model, propagation, **kwargs):
    def make(**more):
        return TrajectoryEvaluator(model, lambda o, a, n: -(n**2).sum(-1), particles=6, propagation=propagation,
                                   generator=gen(11), **kwargs, **more)
    return make


@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "all-members", "expectation"])
def test_fast_float32_rollouts_match_the_module_path(propagation):
    model = fitted_cartpole_like_model()
    obs, actions = torch.randn(5, generator=gen(6)), torch.rand(40, 8, 1, generator=gen(7)) * 2 - 1
    make = evaluators(model, propagation, measure_disagreement=True)
    fast = make().evaluate(obs, actions)
    slow = make(differentiable=True).evaluate(obs, actions)  # the float32 module path, with autograd
    assert torch.allclose(fast.mean_return, slow.mean_return.detach(), rtol=1e-4, atol=1e-4)
    assert torch.allclose(fast.disagreement, slow.disagreement.detach(), rtol=1e-4, atol=1e-5)


def test_bfloat16_rollouts_rank_candidates_like_float32():
    model = fitted_cartpole_like_model()
    obs, actions = torch.randn(5, generator=gen(6)), torch.rand(200, 10, 1, generator=gen(7)) * 2 - 1
    make = evaluators(model, "ts1")
    r32 = make().evaluate(obs, actions).mean_return
    r16 = make(compute_dtype="bfloat16").evaluate(obs, actions).mean_return
    assert not torch.equal(r16, r32)
    ranks = torch.stack([r32.argsort().argsort(), r16.argsort().argsort()]).float()
    assert float(torch.corrcoef(ranks)[0, 1]) > 0.99
    assert float((r16 - r32).abs().max()) < 0.05 * float(r32.std())
    assert len(set(r32.topk(20).indices.tolist()) & set(r16.topk(20).indices.tolist())) >= 16


def test_differentiable_rollouts_keep_gradients_whatever_the_compute_dtype():
    model = fitted_cartpole_like_model()
    actions = torch.zeros(3, 4, 1, requires_grad=True)
    evaluator = evaluators(model, "ts1")(compute_dtype=torch.bfloat16, differentiable=True)
    evaluator.evaluate(torch.randn(5, generator=gen(6)), actions).score.sum().backward()
    assert actions.grad is not None and bool((actions.grad != 0).any())


def test_unknown_compute_dtypes_are_named():
    with pytest.raises(ValueError, match="compute_dtype"):
        evaluators(fitted_cartpole_like_model(), "ts1")(compute_dtype="float16")
    with pytest.raises(ValueError, match="compute_dtype"):
        FrozenEnsemble(EnsembleDynamicsNetwork(3, 2, True, 2, 8, 1), [0, 1], torch.float64)


def test_inputs_of_the_wrong_width_are_named():
    frozen = FrozenEnsemble(EnsembleDynamicsNetwork(6, 5, True, 2, 8, 1), [0, 1])
    with pytest.raises(ValueError, match="7 features in all, the network takes 6"):
        frozen(torch.randn(2, 4, 5), torch.randn(2, 4, 2))


def test_this_build_has_the_fused_linear_the_planner_relies_on_for_speed():
    # the CI machine's PyTorch (x86-64 CPU wheel) ships oneDNN; a build without it still plans, slower
    assert frozen_module.fused_linear_available()
