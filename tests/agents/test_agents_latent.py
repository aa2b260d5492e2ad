"""PlaNet and Dreamer: lambda-returns, the actor's log-probabilities, what each update touches,
acting, a short learning run, save/load and bad input."""


import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents.dreamer import Dreamer, DreamerConfig, TanhGaussianActor, lambda_returns
from forethought.agents.planet import PlaNet, PlaNetConfig
from forethought.envs.pixels import make_pixel_env
from forethought.models.world_model import LatentModelConfig

TINY_MODEL = LatentModelConfig(image_size=16, depth=4, deter_size=16, stoch=4, hidden_size=16)
SHORT = dict(model=TINY_MODEL, seed_episodes=1, train_steps=2, batch_size=3, sequence_length=6)


def pixel_env(steps: int = 10):
    return make_pixel_env("pendulum-swingup", size=16, action_repeat=2, max_episode_steps=steps)


def test_lambda_returns_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    discounts = torch.full((1, 3), 0.5)
    # lambda = 1: discounted rewards plus the discounted last value
    assert lambda_returns(rewards, values, discounts, 1.0).tolist() == [[1 + 0.5 * (2 + 0.5 * (3 + 0.5 * 40)),
                                                                         2 + 0.5 * (3 + 0.5 * 40), 3 + 0.5 * 40]]
    # lambda = 0: one-step targets r_t + d_t v_{t+1}
    assert lambda_returns(rewards, values, discounts, 0.0).tolist() == [[11.0, 17.0, 23.0]]
    with pytest.raises(ValueError, match=r"values \[N, H \+ 1\]"):
        lambda_returns(rewards, values[:, :3], discounts, 0.5)


def test_actor_log_prob_matches_the_tanh_transformed_gaussian():
    actor = TanhGaussianActor(feature_dim=5, action_dim=2, hidden=8, init_std=0.3)  # unsaturated: atanh exact
    features = torch.randn(6, 5)
    action, log_prob, _ = actor.sample(features, torch.Generator().manual_seed(0))
    mean, std = actor.distribution(features)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std), [torch.distributions.TanhTransform(cache_size=1)])
    assert action.shape == (6, 2) and (action.abs() < 1).all()
    assert torch.allclose(log_prob, reference.log_prob(action).sum(-1), atol=1e-3)


@pytest.mark.parametrize("actor_gradient", ["dynamics", "reinforce"])
def test_dreamer_behaviour_update_trains_actor_and_critic_but_not_the_world_model(actor_gradient):
    agent = Dreamer(pixel_env(), DreamerConfig(**SHORT, imagination_horizon=4, actor_lr=1e-2, critic_lr=1e-2,
                                               actor_gradient=actor_gradient))
    agent.learn(episodes=1)
    batch = agent.buffer.sample(3, 6, agent.generator)
    _, states = agent.model.train_step(batch)
    model_before = [p.clone() for p in agent.model.parameters()]
    actor_before = [p.clone() for p in agent.behaviour.actor.parameters()]
    critic_before = [p.clone() for p in agent.behaviour.critic.parameters()]
    parts = agent.train_behaviour(states)
    assert all(torch.equal(a, b) for a, b in zip(model_before, agent.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.behaviour.actor.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, agent.behaviour.critic.parameters()))
    assert all(p.requires_grad for p in agent.model.parameters())  # unfrozen again
    assert set(parts) >= {"actor_loss", "critic_loss", "imagined_return", "entropy", "return_scale"}


def test_imagined_features_include_the_start_and_follow_the_horizon():
    agent = Dreamer(pixel_env(), DreamerConfig(**SHORT, imagination_horizon=5))
    start = agent.model.rssm.initial(7)
    features, log_probs, pre_tanh = agent.behaviour.imagine(agent.model, start)
    assert features.shape == (7, 6, agent.model.feature_dim) and log_probs.shape == (7, 5)
    assert pre_tanh.shape == (7, 5, agent.action_dim)
    mean, std = agent.behaviour.actor.distribution(features[:, :-1])  # each step's action drawn from the actor at its state
    assert torch.allclose(agent.behaviour.actor.log_prob(mean, std, pre_tanh), log_probs, atol=1e-5)
    assert torch.equal(features[:, 0], start.features)


def test_planet_plans_toward_the_predicted_reward():
    agent = PlaNet(pixel_env(), PlaNetConfig(**SHORT, horizon=3, exploration_noise=0.0,
                                             settings={"population": 64, "elites": 8, "iterations": 3}))
    # a reward head that pays the first feature of the state: find out which action raises it
    with torch.no_grad():
        for layer in agent.model.reward_head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_(), layer.bias.zero_()
    state = agent.model.rssm.initial(1)
    probe = torch.tensor([[[1.0]] * 3, [[-1.0]] * 3])
    future, _ = agent.model.imagine(state.repeat(2), 3, actions=probe, sample=False)
    sign = 1.0 if future.deter[0, 0, 0] > future.deter[1, 0, 0] else -1.0
    with torch.no_grad():
        agent.model.reward_head[-1].bias.fill_(0.0)
        head = torch.nn.Linear(agent.model.feature_dim, 1)
        head.weight.zero_(), head.bias.zero_()
        head.weight[0, 0] = 1.0
        agent.model.reward_head = torch.nn.Sequential(head)
    agent.config.sample = False
    action = agent.act_latent(state, explore=False)
    assert action.shape == (1,) and action[0] * sign > 0.5


def reward_of_first_feature(agent) -> float:
    """Make the world model pay the first deterministic feature; the sign (+1 or -1) of the
    constant action that raises it from the initial state."""
    state = agent.model.rssm.initial(1)
    with torch.no_grad():
        probe = torch.tensor([[[1.0]] * 3, [[-1.0]] * 3])
        future, _ = agent.model.imagine(state.repeat(2), 3, actions=probe, sample=False)
        head = torch.nn.Linear(agent.model.feature_dim, 1)
        head.weight.zero_(), head.bias.zero_()
        head.weight[0, 0] = 1.0
        agent.model.reward_head = torch.nn.Sequential(head)
        agent.model.reward_std.fill_(1.0), agent.model.reward_mean.fill_(0.0)
    return 1.0 if future.deter[0, 0, 0] > future.deter[1, 0, 0] else -1.0


@pytest.mark.parametrize("actor_gradient", ["dynamics", "reinforce"])
def test_dreamer_actor_learns_the_action_the_model_rewards(actor_gradient):
    agent = Dreamer(pixel_env(), DreamerConfig(**SHORT, imagination_horizon=3, actor_lr=3e-3, critic_lr=3e-3,
                                               actor_init_std=1.0, actor_gradient=actor_gradient))
    sign = reward_of_first_feature(agent)
    start = agent.model.rssm.initial(64)
    before = agent.behaviour.actor.mode(start.features)[0, 0].item() * sign
    for _ in range(40):
        agent.train_behaviour(start)
    after = agent.behaviour.actor.mode(start.features)[0, 0].item() * sign
    assert after > 0.5 and after > before


def test_short_runs_collect_train_and_round_trip(tmp_path):
    for cls, config in ((PlaNet, PlaNetConfig(**SHORT, settings={"population": 16, "elites": 4, "iterations": 2})),
                        (Dreamer, DreamerConfig(**SHORT, imagination_horizon=3))):
        env = pixel_env()
        agent = cls(env, config)
        results = agent.learn(episodes=2)
        assert [r.random for r in results] == [True, False] and agent.env_steps == 20
        assert len(agent.buffer) == 12 and results[1].info["reconstruction"] > 0
        assert set(cls.metrics) <= set(results[1].info) and results[1].info["train_s"] > 0  # what a run logs
        agent.save(tmp_path / cls.name)
        loaded = cls.load(tmp_path / cls.name, env)
        assert loaded.env_steps == 20 and len(loaded.buffer) == 12 and loaded.model.updates == agent.model.updates
        torch.testing.assert_close(dict(loaded.model.state_dict()), dict(agent.model.state_dict()))
        assert torch.equal(loaded.generator.get_state(), agent.generator.get_state())
        frame, _ = env.reset(seed=3)
        agent.reset(), loaded.reset()
        a1, a2 = agent.act(frame), loaded.act(frame)
        assert a1.shape == (1,) and -2.0 <= a1[0] <= 2.0 and a1 == pytest.approx(a2, abs=1e-5)
        assert agent.to_env_action(agent.last_action) == pytest.approx(a1)
        with pytest.raises(ValueError, match="holds a"):
            (Dreamer if cls is PlaNet else PlaNet).load(tmp_path / cls.name, env)


def test_actions_map_onto_the_environment_bounds():
    agent = Dreamer(pixel_env(), DreamerConfig(**SHORT))
    assert agent.to_env_action(np.array([-1.0])).tolist() == [-2.0]
    assert agent.to_env_action(np.array([0.5])).tolist() == [1.0]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="image observations"):
        Dreamer(make_pixel_env("pendulum-swingup", size=32), DreamerConfig(**SHORT))
    with pytest.raises(ValueError, match="Box action space"):
        PlaNet(gym.make("CartPole-v1"), PlaNetConfig(**SHORT))
    with pytest.raises(ValueError, match="sequence_length"):
        DreamerConfig(sequence_length=1)
    with pytest.raises(ValueError, match="lambda_"):
        DreamerConfig(lambda_=1.5)
    with pytest.raises(ValueError, match="actor_gradient must be 'dynamics' or 'reinforce'"):
        DreamerConfig(actor_gradient="straight-through")
    with pytest.raises(ValueError, match="actor_init_std"):
        DreamerConfig(actor_init_std=0.0)
    with pytest.raises(ValueError, match="optimizer"):
        PlaNetConfig(optimizer="nope")


def test_plan2explore_heads_learn_the_seen_steps_and_their_disagreement_enters_the_imagined_reward(tmp_path):
    agent = Dreamer(pixel_env(), DreamerConfig(**SHORT, imagination_horizon=3, exploration_bonus=2.0,
                                               exploration_anneal_steps=10_000, disagreement_heads=3))
    agent.learn(episodes=1)
    batch = agent.buffer.sample(4, 6, agent.generator)
    _, states = agent.model.train_step(batch)
    features, action = states.features[:, :-1].detach(), batch.action[:, 1:]
    before = agent.explorer.disagreement(features, action).mean().item()
    losses = [agent.explorer.train(states, batch.action, batch.is_first)["disagreement_loss"] for _ in range(60)]
    assert losses[-1] < 0.75 * losses[0]  # the targets are sampled stochastic states: the loss has a floor
    # trained on these steps, the heads agree on them more than on steps with actions never taken
    seen = agent.explorer.disagreement(features, action).mean().item()
    unseen = agent.explorer.disagreement(features, 5.0 * torch.ones_like(action)).mean().item()
    assert seen < unseen and before > 0
    parts = agent.train_behaviour(states, batch)
    assert parts["intrinsic_reward"] > 0 and "disagreement_loss" in parts
    agent.save(tmp_path / "agent")
    loaded = Dreamer.load(tmp_path / "agent", pixel_env())
    assert torch.equal(loaded.explorer.disagreement(features, action), agent.explorer.disagreement(features, action))
    with pytest.raises(ValueError, match="disagreement_heads must be an integer >= 2, got 1"):
        DreamerConfig(exploration_bonus=1.0, disagreement_heads=1)
    with pytest.raises(ValueError, match="exploration_bonus must be a finite number >= 0"):
        DreamerConfig(exploration_bonus=-1.0)


def test_plan2explore_disagreement_is_the_heads_spread_in_units_of_the_targets_scale():
    from types import SimpleNamespace

    from forethought.agents.plan2explore import DisagreementHeads
    from forethought.serialization import CheckpointError

    heads = DisagreementHeads(feature_dim=3, action_dim=1, stoch_dim=2, heads=4, hidden=8, seed=0, scale_decay=0.5)
    gen = torch.Generator().manual_seed(0)
    features, action = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 1, generator=gen)
    stoch = torch.randn(2, 5, 2, generator=gen) * torch.tensor([1.0, 10.0])
    is_first = torch.zeros(2, 5, dtype=torch.bool)
    is_first[1, 2] = True  # the pair (1, 1) -> (1, 2) crosses an episode start: not a target
    kept = torch.cat([stoch[0, 1:], stoch[1, 1:2], stoch[1, 3:]])
    before = heads.disagreement(features[0], action[0])
    predictions = heads.net(torch.cat([features[0], action[0]], -1)).detach()
    assert torch.allclose(before, predictions.std(0, unbiased=False).mean(-1), atol=1e-6)  # scale 1 before training
    heads.train(SimpleNamespace(features=features, stoch=stoch), action, is_first)
    first = kept.std(0, unbiased=False)
    assert torch.allclose(heads.target_scale, first)  # the first batch sets the scale
    predictions = heads.net(torch.cat([features[0], action[0]], -1)).detach()
    expected = (predictions.std(0, unbiased=False) / first).mean(-1)
    assert torch.allclose(heads.disagreement(features[0], action[0]), expected, atol=1e-6)
    heads.train(SimpleNamespace(features=features, stoch=2 * stoch), action, is_first)
    assert torch.allclose(heads.target_scale, 0.5 * first + 0.5 * (2 * first))  # then it moves at scale_decay
    # the same spread on targets ten times larger is a tenth of the disagreement: units, not sizes
    copy = DisagreementHeads(feature_dim=3, action_dim=1, stoch_dim=2, heads=4, hidden=8, seed=0)
    copy.load_tensors(heads.tensors())
    assert torch.equal(copy.target_scale, heads.target_scale) and copy.updates == 2
    copy.target_scale = heads.target_scale * 10
    assert torch.allclose(copy.disagreement(features, action), heads.disagreement(features, action) / 10, rtol=1e-5)
    stale = {k: v for k, v in heads.tensors().items() if not k.endswith("target_scale")}
    with pytest.raises(CheckpointError, match="no disagreement.target_scale of shape"):
        copy.load_tensors(stale)
