"""The latent world model: shapes, the free-bits floor, deterministic imagination, overfitting moving dots."""

import numpy as np
import pytest
import torch

from forethought.data.sequences import SequenceBuffer
from forethought.models.rssm import RSSM, LatentState
from forethought.models.vision import ConvDecoder, ConvEncoder, check_image_size
from forethought.models.world_model import LatentModelConfig, LatentWorldModel, balanced_kl_loss

TINY = dict(image_size=16, depth=8, deter_size=32, stoch=8, hidden_size=32)


def dot_episode(start: int, velocity: int, length: int, size: int = 16) -> np.ndarray:
    """``[length, 3, size, size]`` uint8 frames of a 3x3 white dot moving horizontally, wrapping."""
    frames = np.zeros((length, 3, size, size), np.uint8)
    for t in range(length):
        x = (start + velocity * t) % (size - 2)
        frames[t, :, 6:9, x:x + 3] = 255
    return frames


def dot_buffer(episodes: int = 4, length: int = 12) -> SequenceBuffer:
    buffer = SequenceBuffer((3, 16, 16), action_dim=1)
    for e in range(episodes):
        frames = dot_episode(start=3 * e, velocity=1 + e % 2, length=length)
        buffer.start_episode(frames[0])
        for t in range(1, length):
            buffer.add_step([0.1 * e], reward=float(frames[t, 0, 7].argmax()) / 16, next_obs=frames[t], terminated=False)
    return buffer


def test_shapes_through_encoder_rssm_decoder():
    encoder, rssm = ConvEncoder(64, depth=8), RSSM(action_dim=2, embed_dim=8 * 8 * 16, deter_size=20, stoch=6)
    assert encoder.embed_dim == 8 * 8 * 16  # 4 halvings 64 -> 4, last layer 8 * depth channels, 4 x 4
    embed = encoder(torch.zeros(5, 3, 64, 64))
    assert embed.shape == (5, encoder.embed_dim)
    state, posterior, prior = rssm.obs_step(rssm.initial(5), torch.zeros(5, 2), embed, torch.Generator())
    assert state.deter.shape == (5, 20) and state.stoch.shape == (5, 6) and posterior.shape == prior.shape == (5, 12)
    decoder = ConvDecoder(rssm.feature_dim, 64, depth=8)
    assert decoder(state.features).shape == (5, 3, 64, 64)
    discrete = RSSM(action_dim=2, embed_dim=7, deter_size=20, stoch=4, classes=5)
    state, posterior, _ = discrete.obs_step(discrete.initial(3), torch.zeros(3, 2), torch.zeros(3, 7), torch.Generator())
    assert state.stoch.shape == (3, 20) and posterior.shape == (3, 20)
    assert torch.allclose(state.stoch.reshape(3, 4, 5).sum(-1), torch.ones(3, 4))  # one class per group


def test_world_model_observe_and_open_loop_shapes():
    model = LatentWorldModel(LatentModelConfig(**TINY), action_dim=1)
    batch = dot_buffer().sample(3, 10, torch.Generator().manual_seed(0))
    states, posterior, prior = model.observe(batch.obs, batch.action, batch.is_first)
    assert states.deter.shape == (3, 10, 32) and states.stoch.shape == (3, 10, 8) and posterior.shape == (3, 10, 16)
    frames, rewards = model.open_loop(batch, context=4)
    assert frames.shape == batch.obs.shape and frames.dtype == torch.uint8 and rewards.shape == (3, 10)


@pytest.mark.parametrize("classes", [0, 4])
def test_kl_with_free_bits_is_exactly_the_floor_when_prior_equals_posterior(classes):
    rssm = RSSM(action_dim=1, embed_dim=3, deter_size=4, stoch=3, classes=classes)
    stats = torch.randn(6, 12)
    if not classes:
        stats = rssm._stats(stats)
    assert torch.allclose(rssm.kl(stats, stats), torch.zeros(6), atol=1e-6)
    loss = balanced_kl_loss(rssm, stats, stats.clone(), free_nats=1.5, balance=0.8)
    assert torch.equal(loss, torch.full((6,), 1.5))
    # above the floor the two directions add up to the KL itself
    other = rssm._stats(torch.randn(6, 12) * 3) if not classes else torch.randn(6, 12) * 3
    kl = rssm.kl(stats, other)
    assert torch.allclose(balanced_kl_loss(rssm, stats, other, 0.0, 0.8), kl)


def test_gaussian_kl_matches_torch_distributions():
    rssm = RSSM(action_dim=1, embed_dim=3, deter_size=4, stoch=5)
    q, p = rssm._stats(torch.randn(7, 10)), rssm._stats(torch.randn(7, 10))
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(*q.chunk(2, -1)), normal(*p.chunk(2, -1))).sum(-1)
    assert torch.allclose(rssm.kl(q, p), expected, atol=1e-5)


@pytest.mark.parametrize("classes", [0, 4])
def test_imagination_under_fixed_actions_is_deterministic_given_the_generator(classes):
    model = LatentWorldModel(LatentModelConfig(**TINY, classes=classes), action_dim=1)
    start = LatentState(torch.randn(4, 32), model.rssm.initial(4).stoch)
    actions = torch.rand(4, 6, 1) * 2 - 1
    one, _ = model.imagine(start, 6, actions=actions, generator=torch.Generator().manual_seed(3))
    two, _ = model.imagine(start, 6, actions=actions, generator=torch.Generator().manual_seed(3))
    other, _ = model.imagine(start, 6, actions=actions, generator=torch.Generator().manual_seed(4))
    assert torch.equal(one.features, two.features) and one.features.shape == (4, 6, model.feature_dim)
    assert not torch.equal(one.stoch, other.stoch)


def test_tiny_rssm_overfits_moving_dots():
    """Reconstruction error (summed squared error per 16x16 frame, pixels in [-0.5, 0.5]) falls below
    3.0 within 150 steps (it ends near 1.7); predicting all-black frames scores 0.5 * 27 = 13.5 per frame."""
    torch.set_num_threads(2)
    model = LatentWorldModel(LatentModelConfig(**TINY, learning_rate=3e-3), action_dim=1)
    buffer, generator = dot_buffer(), torch.Generator().manual_seed(0)
    first = model.train_step(buffer.sample(8, 10, generator))[0]["reconstruction"]
    for _ in range(150):
        parts, _ = model.train_step(buffer.sample(8, 10, generator))
    assert first > 10.0 and parts["reconstruction"] < 3.0
    assert parts["reward_mse"] < 0.02


def test_save_load_round_trip(tmp_path):
    model = LatentWorldModel(LatentModelConfig(**TINY), action_dim=1)
    batch = dot_buffer().sample(2, 6, torch.Generator().manual_seed(0))
    model.train_step(batch)
    model.save(tmp_path / "wm")
    loaded = LatentWorldModel.load(tmp_path / "wm")
    assert loaded.updates == 1 and torch.equal(loaded.generator.get_state(), model.generator.get_state())
    a, _ = model.train_step(batch)
    b, _ = loaded.train_step(batch)
    assert a == pytest.approx(b, rel=1e-5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="power of two"):
        check_image_size(48)
    model = LatentWorldModel(LatentModelConfig(**TINY), action_dim=1)
    with pytest.raises(ValueError, match="uint8"):
        model.observe(torch.zeros(1, 2, 3, 16, 16), torch.zeros(1, 2, 1), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B, L, 3, 16, 16\]"):
        model.observe(torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 2, 1), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="exactly one"):
        model.imagine(model.rssm.initial(1), 3)
