"""MuZero: the tree search on a known model, the n-step targets, root-only noise, the networks' value
transform, the trajectory replay, learning CartPole, and the refusal of Box action spaces."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from forethought.agents import AGENTS, MuZero, MuZeroConfig
from forethought.cli import main
from forethought.config import ConfigError, load_config
from forethought.data.env_loop import episode_returns, random_policy
from forethought.data.trajectories import TrajectoryBuffer, n_step_targets
from forethought.experiments.run_config import run_config_class
from forethought.models.muzero_net import (FrozenMuZero, MuZeroNet, min_max_scale, scale_value, unroll_loss,
                                           unscale_value)
from forethought.planning.mcts import MCTSSettings, search, select_action


class TableModel:
    """A known deterministic model over 5 states (the latent is the state's number).

    From state 0, action 0 earns 1 now and leads to state 1, where nothing more is earned; action 1
    earns 0 now and leads to state 2, where action 1 earns 3 (state 4) and action 0 nothing
    (state 3). The policy is uniform and every value 0, so only the search can tell that action 1
    is worth 3 and action 0 only 1."""

    next_state = {(0, 0): 1, (0, 1): 2, (2, 0): 3, (2, 1): 4}
    reward = {(0, 0): 1.0, (2, 1): 3.0}

    def __init__(self, logits=(0.0, 0.0)):
        self.logits = np.array(logits)
        self.calls = 0

    def initial_inference(self, obs):
        return 0, self.logits, 0.0

    def recurrent_inference(self, state, action):
        self.calls += 1
        nxt = self.next_state.get((state, action), state if state in (1, 3, 4) else 3)
        return nxt, self.reward.get((state, action), 0.0), self.logits, 0.0


def test_the_search_finds_the_delayed_reward_a_greedy_choice_misses():
    model = TableModel()
    result = search(model, np.zeros(1), MCTSSettings(simulations=60), discount=1.0)
    assert select_action(result.visits, 0.0, None) == 1
    assert result.visits.sum() == 60 and model.calls == 60  # one model call per simulation
    # the unvisited action 1 first looks worst (Q = 0, normalised to the bottom of [0, 1]); the
    # exploration term brings the search back to it until it finds the reward of 3 behind it
    np.testing.assert_array_equal(result.visits, [27, 33])
    best = result.root.children[1].children[1]
    assert best.reward == 3.0 and best.visits > 0
    # the mean return of the visits to action 1 approaches 3 (its subtree's only reward)
    child = result.root.children[1]
    assert child.value() == pytest.approx(3.0 * best.visits / child.visits)


def test_the_first_simulation_follows_the_larger_prior_and_the_search_is_deterministic_without_rng():
    model = TableModel(logits=(0.0, np.log(4.0)))  # priors 0.2 and 0.8
    one = search(model, np.zeros(1), MCTSSettings(simulations=1), discount=1.0)
    np.testing.assert_array_equal(one.visits, [0.0, 1.0])
    np.testing.assert_allclose([c.prior for c in one.root.children.values()], [0.2, 0.8], rtol=1e-12)
    a = search(TableModel(), np.zeros(1), MCTSSettings(simulations=20), discount=0.9)
    b = search(TableModel(), np.zeros(1), MCTSSettings(simulations=20), discount=0.9)
    np.testing.assert_array_equal(a.visits, b.visits)


def test_dirichlet_noise_changes_the_root_priors_only():
    model = TableModel(logits=(0.3, -0.2))
    settings = MCTSSettings(simulations=40, noise_fraction=0.25, dirichlet_alpha=0.25)
    result = search(model, np.zeros(1), settings, discount=1.0, rng=np.random.default_rng(0))
    priors = torch.softmax(torch.tensor([0.3, -0.2], dtype=torch.float64), 0).numpy()
    root = [c.prior for c in result.root.children.values()]
    assert not np.allclose(root, priors) and sum(root) == pytest.approx(1.0)
    noise = (np.array(root) - 0.75 * priors) / 0.25  # what was mixed in: a point of the simplex
    assert np.all(noise >= 0) and noise.sum() == pytest.approx(1.0)
    inner, stack = 0, [c for c in result.root.children.values()]
    while stack:
        node = stack.pop()
        for action, child in node.children.items():
            assert child.prior == node.priors[action]  # exactly the policy's, untouched
            inner += 1
            stack.append(child)
    assert inner >= 4


def test_select_action_follows_the_temperature():
    visits = np.array([1.0, 3.0, 6.0])
    assert select_action(visits, 0.0, np.random.default_rng(0)) == 2
    rng = np.random.default_rng(1)
    draws = np.bincount([select_action(visits, 1.0, rng) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(draws, visits / visits.sum(), atol=0.03)
    rng = np.random.default_rng(1)
    cold = np.bincount([select_action(visits, 0.25, rng) for _ in range(4000)], minlength=3) / 4000
    expected = visits ** 4 / (visits ** 4).sum()
    np.testing.assert_allclose(cold, expected, atol=0.02)


# ---------------------------------------------------------------------- targets
REWARDS, VALUES = np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0, 50.0])  # v(o_0 .. o_4)
TERMINATED_TARGETS = [1 + 0.5 * 2 + 0.25 * 30, 2 + 0.5 * 3 + 0.25 * 40, 3 + 0.5 * 4, 4.0, 0.0, 0.0]
TRUNCATED_TARGETS = [9.5, 13.5, 3 + 0.5 * 4 + 0.25 * 50, 4 + 0.5 * 50, None, None]


@pytest.mark.parametrize("terminated", [True, False])
def test_n_step_value_targets_of_a_hand_made_episode(terminated):
    positions = np.arange(6)[None]
    partial, index, scale, mask = n_step_targets(np.concatenate([REWARDS, np.zeros(4)])[None], np.array([4]),
                                                 np.array([terminated]), positions, td_steps=2, gamma=0.5)
    targets = partial + scale * VALUES[index]
    expected = TERMINATED_TARGETS if terminated else TRUNCATED_TARGETS
    known = [e is not None for e in expected]
    np.testing.assert_allclose(targets[0][known], [e for e in expected if e is not None], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mask[0], known)


@pytest.mark.parametrize("terminated", [True, False])
def test_the_replay_unrolls_positions_with_their_targets(terminated):
    buffer = TrajectoryBuffer(obs_dim=1, num_actions=2)
    policies = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    buffer.add_episode(np.arange(5.0)[:, None], np.array([1, 0, 1, 1]), REWARDS, policies, terminated)
    sample = buffer.sample(64, unroll=2, td_steps=2, gamma=0.5, rng=np.random.default_rng(0))
    starts = sample.obs[:, 0].astype(int)
    assert set(starts) == {0, 1, 2, 3}
    targets = sample.value_targets(10.0 * (sample.bootstrap_obs[..., 0] + 1))  # v(o_j) = 10 (j + 1)
    expected = TERMINATED_TARGETS if terminated else TRUNCATED_TARGETS
    for row, t in enumerate(starts):
        for k in range(3):
            want = expected[t + k]
            assert sample.value_mask[row, k] == (want is not None)
            if want is not None:
                assert targets[row, k] == pytest.approx(want, abs=1e-5)
            assert sample.policy_mask[row, k] == (t + k < 4)
            if t + k < 4:
                np.testing.assert_allclose(sample.policies[row, k], policies[t + k])
        for k in range(2):
            inside = t + k < 4
            assert sample.reward_mask[row, k] == (inside or terminated)
            assert sample.rewards[row, k] == (REWARDS[t + k] if inside else 0.0)
            if inside:
                assert sample.actions[row, k] == [1, 0, 1, 1][t + k]


def test_the_replay_saves_loads_and_drops_its_oldest_episodes(tmp_path):
    buffer = TrajectoryBuffer(obs_dim=2, num_actions=3, capacity=5)
    for steps in (3, 2, 2):
        buffer.add_episode(np.ones((steps + 1, 2)), np.zeros(steps), np.ones(steps), np.full((steps, 3), 1 / 3), True)
    assert buffer.steps == 4 and len(buffer) == 2  # the first episode left once 7 > 5 steps were stored
    buffer.save(tmp_path / "b.npz")
    loaded = TrajectoryBuffer.load(tmp_path / "b.npz", capacity=5)
    assert loaded.steps == 4 and all(np.array_equal(a[k], b[k]) for a, b in zip(buffer.episodes, loaded.episodes)
                                     for k in a)
    with pytest.raises(ValueError, match=r"episode policies has shape \(2, 2\), expected \(2, 3\)"):
        buffer.add_episode(np.ones((3, 2)), np.zeros(2), np.ones(2), np.ones((2, 2)), True)


# ---------------------------------------------------------------------- networks
def test_the_value_transform_is_inverted_exactly_and_latents_are_scaled_to_the_unit_interval():
    x = torch.tensor([-1000.0, -3.5, -1.0, 0.0, 0.25, 7.0, 500.0], dtype=torch.float64)
    torch.testing.assert_close(unscale_value(scale_value(x)), x, rtol=1e-9, atol=1e-9)
    assert scale_value(torch.tensor(3.0)).item() == pytest.approx(1.0 + 3e-3)  # sqrt(4) - 1 + eps * 3
    latent = min_max_scale(torch.tensor([[2.0, 4.0, 3.0], [1.0, 1.0, 1.0]]))
    torch.testing.assert_close(latent, torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]))


def test_the_frozen_copy_the_search_calls_computes_what_the_network_computes():
    g = torch.Generator().manual_seed(3)
    net = MuZeroNet(4, 3, g, latent_dim=8, hidden_size=16)
    frozen = FrozenMuZero(net)
    obs = torch.randn(4, generator=g) * 3
    latent, logits, value = net.initial_inference(obs[None])
    f_latent, f_logits, f_value = frozen.initial_inference(obs.double().numpy())
    np.testing.assert_allclose(f_latent, latent[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(f_logits, logits[0].numpy(), atol=1e-5)
    assert f_value == pytest.approx(value.item(), abs=1e-4)
    for action in range(3):
        nxt, reward, logits, value = net.recurrent_inference(latent, torch.tensor([action]))
        f_nxt, f_reward, f_logits, f_value = frozen.recurrent_inference(f_latent, action)
        np.testing.assert_allclose(f_nxt, nxt[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(f_logits, logits[0].numpy(), atol=1e-5)
        assert (f_reward, f_value) == pytest.approx((reward.item(), value.item()), abs=1e-4)


def test_the_unrolled_loss_fits_a_fixed_batch():
    g = torch.Generator().manual_seed(0)
    net = MuZeroNet(3, 2, g, latent_dim=8, hidden_size=32)
    obs, actions = torch.randn(16, 3, generator=g), torch.randint(0, 2, (16, 2), generator=g)
    values, rewards = torch.rand(16, 3, generator=g) * 10, torch.rand(16, 2, generator=g)
    policies = torch.softmax(torch.randn(16, 3, 2, generator=g), -1)
    ones = lambda *s: torch.ones(*s)  # noqa: E731
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss, parts = unroll_loss(net, obs, actions, values, ones(16, 3), rewards, ones(16, 2), policies, ones(16, 3))
        first = first or parts
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert parts["value"] < 0.05 * first["value"] and parts["reward"] < 0.05 * first["reward"]
    entropy = -(policies * policies.log()).sum(-1).mean(0).sum().item()  # the cross-entropy's floor
    assert parts["policy"] < first["policy"] and parts["policy"] >= entropy - 1e-4
    masked, _ = unroll_loss(net, obs, actions, values * 0, torch.zeros(16, 3), rewards * 0, torch.zeros(16, 2),
                            policies, torch.zeros(16, 3))
    assert masked.item() == 0.0  # nothing masked out reaches the loss


# ---------------------------------------------------------------------- the agent
def test_muzero_learns_cartpole_far_beyond_random_in_2000_steps():
    config = MuZeroConfig(search=MCTSSettings(simulations=10))
    agent = MuZero(gym.make("CartPole-v1"), config, seed=0)
    agent.learn(steps=2000)
    assert 2000 <= agent.env_steps < 2500 and agent.updates == (agent.env_steps - 500) // 2
    env, seeds = gym.make("CartPole-v1"), [101, 102, 103]
    env.action_space.seed(0)
    random_mean = np.mean(episode_returns(env, random_policy(env.action_space), seeds))
    learned = episode_returns(env, agent.act, seeds)
    assert random_mean < 30 and np.mean(learned) > 50  # measured with seed 0: 124, 93, 60 (random: 23, 22, 12)


def test_muzero_refuses_box_actions_and_bad_settings(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"MuZero needs a Discrete action space, got Box\(-2.0, 2.0, \(1,\)"):
        AGENTS["muzero"](gym.make("Pendulum-v1"))
    out = tmp_path / "pendulum"
    assert main(["run", "muzero", "--env", "Pendulum-v1", "--steps", "10", "--out", str(out)]) == 2
    assert "MuZero needs a Discrete action space" in capsys.readouterr().err and not out.exists()
    for override, message in (("agent.temperature=[[100, 1.0]]", "agent.temperature must be"),
                              ("agent.search.simulations=0", "agent.search.simulations must be an integer >= 1"),
                              ("agent.discount=1.5", r"agent.discount must be in \(0, 1\], got 1.5")):
        with pytest.raises(ConfigError, match=message):
            load_config(run_config_class("muzero"), None, [override])
        assert main(["run", "muzero", "--steps", "10", "--out", str(out), override]) == 2
        assert not out.exists()


def test_the_temperature_follows_its_schedule_in_real_steps():
    agent = MuZero(gym.make("CartPole-v1"), MuZeroConfig(temperature=[[0, 1.0], [10, 0.5], [30, 0.0]]))
    temperatures = {}
    for steps in (0, 9, 10, 29, 30, 10_000):
        agent._env_steps = steps
        temperatures[steps] = agent.temperature()
    assert temperatures == {0: 1.0, 9: 1.0, 10: 0.5, 29: 0.5, 30: 0.0, 10_000: 0.0}


def test_a_cartpole_run_films_only_where_pygame_can_draw_it():
    import importlib.util

    from forethought.experiments.run import make_env

    config = load_config(run_config_class("muzero"), None, ["env=CartPole-v1"])
    env = make_env("muzero", config, render=True)
    assert env.render_mode == ("rgb_array" if importlib.util.find_spec("pygame") else None)
