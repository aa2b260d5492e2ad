import math

import pytest
import torch

from forethought import envs
from forethought.data import collect
from forethought.envs import pendulum_step
from forethought.envs.cartpole_swingup import CartPoleParams
from forethought.envs.coordinates import env_coordinates, parse_layout
from forethought.models import DynamicsModel
from forethought.models.lagrangian import LagrangianDynamics
from forethought.models.lagrangian_net import euler_lagrange

PENDULUM = "cos0,sin0,dq0"
CARTPOLE = "q0,dq0,cos1,sin1,dq1"


def known_pendulum(substeps: int = 1, dt: float = 0.05) -> LagrangianDynamics:
    """A one-member Lagrangian model with no hidden layer set to Pendulum-v1's mechanics: mass
    m l^2 / 3 = 1/3, potential m g l / 2 cos(theta) = 5 cos(theta) (theta = 0 upright), the torque
    entering directly, no damping, unit scales."""
    model = LagrangianDynamics(3, 1, PENDULUM, ensemble_size=1, hidden_layers=0, substeps=substeps, dt=dt)
    net = model.network
    with torch.no_grad():
        weight, bias = net.body.weights[0], net.body.biases[0]  # features (cos, sin) -> (L entry, V, B)
        weight.zero_()
        weight[0, 0, 1] = 5.0  # V = 5 cos(theta)
        chol = math.sqrt(1.0 / 3.0) - 1e-3  # softplus(raw) + MIN_DIAGONAL = sqrt(M)
        bias[0, 0] = torch.tensor([math.log(math.expm1(chol)), 0.0, 1.0])
        net.damping.fill_(-200.0)
        net.dt.fill_(dt)
    model.fitted = True
    return model


def test_a_known_pendulum_is_the_environment_step():
    """With Pendulum-v1's mass and potential, one semi-implicit Euler substep is exactly the
    environment's update (below its speed limit of 8 rad/s)."""
    gen = torch.Generator().manual_seed(0)
    theta = (torch.rand(500, generator=gen) * 2 - 1) * math.pi
    obs = torch.stack([theta.cos(), theta.sin(), (torch.rand(500, generator=gen) * 2 - 1) * 4.0], dim=-1)
    action = (torch.rand(500, 1, generator=gen) * 2 - 1) * 2.0
    predicted = known_pendulum().predict(obs, action).mean
    assert torch.allclose(predicted, pendulum_step(obs, action), atol=2e-5, rtol=0)


def unforced_swing(model: LagrangianDynamics, steps: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles and speeds ``[steps + 1]`` (float64) of an unforced rollout released at rest 2 rad from hanging."""
    start = math.pi - 2.0
    states = [torch.tensor([[math.cos(start), math.sin(start), 0.0]])]
    with torch.no_grad():
        for _ in range(steps):
            states.append(model.predict(states[-1], torch.zeros(1, 1)).mean)
    path = torch.cat(states).double()
    return torch.atan2(path[:, 1], path[:, 0]), path[:, 2]


def test_a_known_pendulum_conserves_energy_to_the_integrators_bound():
    """Unforced and undamped for 2,000 steps (100 s). Semi-implicit Euler with step h conserves
    the modified energy H~ = H - h/2 (dH/dp)(dH/dq) + O(h^2) = E - h/2 theta' V'(theta): H~
    varies by O(h^2) (measured 0.032 at h = 0.05 s, 0.0079 at h/2: a quarter) and the true
    energy E stays within h/2 max|theta' V'| + that of its start (measured 0.597 against
    0.607 + 0.032), with no drift. The model's own energy is the pendulum's."""
    bands = []
    for substeps in (1, 2):
        model, h = known_pendulum(substeps), 0.05 / substeps
        theta, speed = unforced_swing(model)
        energy = speed.pow(2) / 6.0 + 5.0 * theta.cos()  # (m l^2 / 3) theta'^2 / 2 + m g l / 2 cos(theta)
        slope = -5.0 * theta.sin()  # V'(theta)
        modified = energy - 0.5 * h * speed * slope
        bands.append(float((modified - modified[0]).abs().max()))
        assert float((energy - energy[0]).abs().max()) <= 0.5 * h * float((speed * slope).abs().max()) + bands[-1]
        first, last = (float((part - modified[0]).abs().max()) for part in (modified[:500], modified[-500:]))
        assert last <= 1.5 * first  # no drift: the last 25 s stay in the band of the first 25 s
    assert bands[0] < 0.04 and 3.5 < bands[0] / bands[1] < 4.5
    theta, speed = unforced_swing(known_pendulum(), steps=100)
    obs = torch.stack([theta.cos(), theta.sin(), speed], -1).float()
    own = known_pendulum().energy(obs)[0].double()
    assert torch.allclose(own, speed.pow(2) / 6.0 + 5.0 * theta.cos(), atol=2e-5)


def test_euler_lagrange_gives_the_cartpole_accelerations():
    """The cart-pole's own mass matrix and potential through :func:`euler_lagrange` (Coriolis
    terms from dM/dq) give the accelerations of its equations of motion."""
    p = CartPoleParams()
    m, l, total = p.pole_mass, p.pole_length, p.cart_mass + p.pole_mass
    gen = torch.Generator().manual_seed(1)
    theta = ((torch.rand(64, generator=gen) * 2 - 1) * math.pi).double()
    velocity = (torch.randn(64, 2, generator=gen) * 2.0).double()
    force = (torch.rand(64, generator=gen) * 2 - 1).double() * p.max_force

    def cholesky(angle: torch.Tensor) -> torch.Tensor:
        coupling = 0.5 * m * l * angle.cos()  # M = [[M + m, m l/2 cos], [m l/2 cos, m l^2/3]]
        return torch.linalg.cholesky(torch.stack([torch.stack([total + 0 * angle, coupling], -1),
                                                  torch.stack([coupling, m * l * l / 3 + 0 * angle], -1)], -2))

    chol = cholesky(theta)
    chol_grad = torch.zeros(64, 2, 2, 2, dtype=torch.float64)
    chol_grad[:, 1] = torch.func.vmap(torch.func.jacfwd(lambda a: cholesky(a[None])[0]))(theta)
    generalised = torch.stack([force - p.friction * velocity[:, 0], 0.5 * m * p.gravity * l * theta.sin()], -1)
    acc = euler_lagrange(chol, chol_grad, generalised, velocity)  # -dV/dtheta = m g l/2 sin(theta)
    sin, cos, dtheta = theta.sin(), theta.cos(), velocity[:, 1]
    cart = (4.0 * (force - p.friction * velocity[:, 0]) + 2.0 * m * l * dtheta**2 * sin - 3.0 * m * p.gravity * sin * cos) \
        / (4.0 * total - 3.0 * m * cos**2)
    pole = 3.0 * (p.gravity * sin - cos * cart) / (2.0 * l)
    assert torch.allclose(acc, torch.stack([cart, pole], -1), atol=1e-10)


def test_layouts_round_trip_angles_through_cos_and_sin():
    layout = parse_layout(CARTPOLE)
    assert layout.coordinates == 2 and layout.angles == (False, True) and layout.velocity_index == (1, 4)
    obs = torch.tensor([[0.3, -1.0, math.cos(3.0), math.sin(3.0), 2.5], [-2.0, 0.5, math.cos(-0.4), math.sin(-0.4), 0.0]])
    q, dq = layout.split(obs)
    assert torch.allclose(q, torch.tensor([[0.3, 3.0], [-2.0, -0.4]]), atol=1e-6)
    assert torch.equal(dq, obs[:, [1, 4]])
    assert torch.allclose(layout.join(q, dq), obs, atol=1e-6)
    q_wrapped = q + torch.tensor([0.0, 2 * math.pi])  # a whole turn more is the same observation
    assert torch.allclose(layout.join(q_wrapped, dq), obs, atol=1e-5)
    assert env_coordinates(envs.make("pendulum-swingup")) == PENDULUM
    assert env_coordinates(envs.make("cartpole-swingup")) == CARTPOLE and env_coordinates("Pendulum-v1") == PENDULUM
    assert env_coordinates(envs.make("linear")) is None


@pytest.mark.parametrize("layout, message", [
    ("cos0,sin0", "has no velocity dq0"),
    ("cos0,dq0", "needs both cos0 and sin0"),
    ("q0,dq0,q2,dq2", "without gaps"),
    ("q0,v0", "'v0', not a role"),
    ("q0,dq0,dq0", "'dq0' appears twice"),
    ("q0,cos0,sin0,dq0", "both as q0 and as an angle"),
    ("dq0,dq1,q1", "has a velocity but no position"),
])
def test_bad_layouts_are_named(layout, message):
    with pytest.raises(ValueError, match="model.coordinates") as err:
        parse_layout(layout)
    assert message in str(err.value)


def test_a_layout_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"names 3 observation entries, but the observation has 5"):
        LagrangianDynamics(5, 1, PENDULUM)


@pytest.fixture(scope="module")
def pendulum_data():
    env = envs.make("pendulum-swingup")
    return collect(env, 1000, seed=0), collect(env, 400, seed=1)


@pytest.fixture(scope="module")
def fitted(pendulum_data):
    train, _ = pendulum_data
    model = LagrangianDynamics(3, 1, PENDULUM, ensemble_size=2, hidden_size=64, hidden_layers=2, max_epochs=40,
                               min_epoch_batches=10)
    return model, model.fit(train, generator=torch.Generator().manual_seed(0))


def test_fitting_a_pendulum_beats_predicting_no_change(pendulum_data, fitted):
    """1,000 random-action transitions, seed 0: held-out MSE under 2 % of predicting no change
    (measured: 0.53 %), the step read from the data within 1 % of 0.05 s."""
    _, held_out = pendulum_data
    model, report = fitted
    data = held_out.all()
    obs, action, next_obs = (torch.as_tensor(x) for x in (data.obs, data.action, data.next_obs))
    with torch.no_grad():
        mse = float((model.predict(obs, action).mean - next_obs).pow(2).mean())
    still = float((obs - next_obs).pow(2).mean())
    assert report.produced_model and not report.nonfinite and "estimated" in report.message
    assert mse < 0.02 * still
    assert abs(float(model.network.dt) - 0.05) < 0.0005
    predicted = model.predict(obs[:5], action[:5]).mean
    assert torch.allclose(predicted[:, 0] ** 2 + predicted[:, 1] ** 2, torch.ones(5), atol=1e-5)  # on the circle


def test_rollouts_far_from_the_data_stay_finite(fitted):
    """Accelerations are bounded by 10x the largest in the data, so a planner's rollout from a
    state the model never saw (spinning at 100 rad/s) stays finite over 60 steps."""
    model, _ = fitted
    limit = model.network.acc_limit
    assert limit.shape == (1,) and 10.0 < float(limit[0]) / float(model.network.acc_scale[0])
    obs = torch.tensor([[1.0, 0.0, 100.0], [0.0, 1.0, -100.0]])
    with torch.no_grad():
        for _ in range(60):
            speed = obs[:, 2]
            obs = model.predict(obs, torch.full((2, 1), 2.0)).mean
            assert torch.isfinite(obs).all()
            assert ((obs[:, 2] - speed).abs() <= 0.0502 * float(limit[0]) + 1e-3).all()


def test_save_and_load_give_identical_predictions(fitted, pendulum_data, tmp_path):
    model, _ = fitted
    obs = torch.as_tensor(pendulum_data[1].all().obs[:50])
    action = torch.as_tensor(pendulum_data[1].all().action[:50])
    model.save(tmp_path / "lagrangian")
    loaded = DynamicsModel.load(tmp_path / "lagrangian")
    assert isinstance(loaded, LagrangianDynamics) and loaded.layout.text() == PENDULUM
    assert torch.equal(loaded.predict(obs, action).mean, model.predict(obs, action).mean)
    assert torch.equal(loaded.energy(obs), model.energy(obs))
    means, _ = loaded.predict_members(obs, action)
    assert means.shape == (2, 50, 3)


def test_the_elites_predict_for_planners_as_the_model_does(pendulum_data):
    train, held_out = pendulum_data
    model = LagrangianDynamics(3, 1, PENDULUM, ensemble_size=3, elite_count=2, hidden_size=16, hidden_layers=1,
                               max_epochs=2)
    model.fit(train, generator=torch.Generator().manual_seed(0))
    obs = torch.as_tensor(held_out.all().obs[:8])
    action = torch.as_tensor(held_out.all().action[:8])
    members, _ = model.predict_members(obs, action)
    for predictor in (model.member_predictor(), model.frozen_member_predictor()):
        means, stds = predictor(obs.expand(2, -1, -1), action.expand(2, -1, -1))
        assert stds is None and torch.allclose(means, members[model.elites], atol=1e-6)


def test_pets_on_our_pendulum_needs_no_layout_and_plans():
    from forethought.agents import PETS, PETSConfig
    from forethought.models import ModelConfig, TrainConfig
    from forethought.planning.config import PlannerConfig

    env = envs.make("pendulum-swingup")
    config = PETSConfig(model=ModelConfig(kind="lagrangian", ensemble_size=2, hidden_size=16, hidden_layers=1),
                        train=TrainConfig(max_epochs=2), planner=PlannerConfig(horizon=5, settings={"population": 20}))
    agent = PETS(env, config, seed=0)
    assert isinstance(agent.model, LagrangianDynamics) and agent.model.layout.text() == PENDULUM
    agent.buffer = collect(env, 100, seed=0)
    agent.model.fit(agent.buffer)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    assert action.shape == (1,) and abs(float(action[0])) <= 2.0


def test_a_lagrangian_model_on_an_observation_without_a_layout_is_refused():
    from forethought.agents import PETS, PETSConfig
    from forethought.models import ModelConfig

    with pytest.raises(ValueError, match="model.coordinates"):
        PETS(envs.make("linear"), PETSConfig(model=ModelConfig(kind="lagrangian")))


@pytest.mark.parametrize("env, settings, message", [
    ("linear", [], "no layout is known for this environment's"),
    ("pendulum-swingup", ["agent.model.coordinates=q0,dq0"], "names 2 observation entries, but the observation has 3"),
    ("pendulum-swingup", ["agent.model.coordinates=cos0,sin0,q1"], "coordinate 0 has no velocity dq0"),
    ("pendulum-swingup", ["agent.model.substeps=0"], "model.substeps must be an integer >= 1"),
    ("pendulum-swingup", ["agent.model.dt=-0.1"], "model.dt must be None"),
])
def test_the_cli_refuses_what_a_lagrangian_model_cannot_read_before_writing_anything(tmp_path, capsys, env, settings,
                                                                                     message):
    from forethought.cli import main

    out = tmp_path / "run"
    assert main(["run", "pets", "--env", env, "--out", str(out), "agent.model.kind=lagrangian", *settings]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_mbpo_rolls_out_a_lagrangian_model_of_gymnasiums_pendulum():
    import gymnasium as gym

    from forethought.agents.mbpo import MBPO, MBPOConfig
    from forethought.agents.sac import SACConfig
    from forethought.models import ModelConfig, TrainConfig

    agent = MBPO(gym.make("Pendulum-v1"), MBPOConfig(
        sac=SACConfig(hidden_size=16), rollout_starts=50, min_rollout_length=3, max_rollout_length=3,
        model=ModelConfig(kind="lagrangian", ensemble_size=2, hidden_size=16, hidden_layers=1),
        train=TrainConfig(max_epochs=2)))
    assert isinstance(agent.model, LagrangianDynamics) and agent.model.layout.text() == PENDULUM
    agent.sac.learn(steps=60)
    agent.model.fit(agent.sac.buffer)
    agent._rollouts(agent.sac.env_steps)
    assert agent.log[-1]["rows"] == 150 and agent.log[-1]["non_finite_rows"] == 0
