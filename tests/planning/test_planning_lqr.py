"""LQR (finite and infinite horizon, affine terms, targets), the controller built from a fitted
linear model, and iLQR."""

import math

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete

from forethought.envs import task_functions
from forethought.models import LinearGaussian
from forethought.planning import ILQR, LQRController, infinite_horizon_lqr, lqr, lqr_from_model

F64 = torch.float64
UNBOUNDED = Box(-np.inf, np.inf, (1,))
GOLDEN = (1.0 + math.sqrt(5.0)) / 2.0


def rollout_cost(A, B, Q, R, Qf, x0, U, N=None, c=None, x_target=None):
    """Total cost of actions ``U [H, a]`` from ``x0`` (float64, differentiable in ``U``)."""
    N = torch.zeros(B.shape, dtype=F64) if N is None else N
    c = torch.zeros(A.shape[0], dtype=F64) if c is None else c
    target = torch.zeros(A.shape[0], dtype=F64) if x_target is None else x_target
    x, total = x0, torch.zeros((), dtype=F64)
    for u in U:
        d = x - target
        total = total + d @ Q @ d + u @ R @ u + 2 * d @ N @ u
        x = A @ x + B @ u + c
    return total + (x - target) @ Qf @ (x - target)


def lqr_actions(solution, A, B, x0, c=None):
    """``[H, a]`` actions of the LQR policy applied from ``x0``."""
    c = torch.zeros(A.shape[0], dtype=F64) if c is None else c
    x, actions = x0, []
    for t in range(solution.K.shape[0]):
        actions.append(solution.action(x, t))
        x = A @ x + B @ actions[-1] + c
    return torch.stack(actions)


def random_system(seed, o=3, a=2):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(o, o, generator=g, dtype=F64) * 0.6
    B = torch.randn(o, a, generator=g, dtype=F64)
    L = torch.randn(o, o, generator=g, dtype=F64)
    Q = L @ L.T / o + 0.1 * torch.eye(o, dtype=F64)
    R = 0.5 * torch.eye(a, dtype=F64)
    N = 0.05 * torch.randn(o, a, generator=g, dtype=F64)  # small enough that [[Q, N], [N^T, R]] > 0
    return A, B, Q, R, N


# ---------------------------------------------------------------------- LQR
def test_scalar_lqr_matches_the_hand_computed_riccati_recursion():
    # A = B = Q = R = Qf = 1: P_2 = 1; K_1 = -1/2, P_1 = 3/2; K_0 = -3/5, P_0 = 8/5.
    solution = lqr(1.0, 1.0, 1.0, 1.0, 2)
    torch.testing.assert_close(solution.K[:, 0, 0], torch.tensor([-0.6, -0.5], dtype=F64), atol=1e-15, rtol=0)
    torch.testing.assert_close(solution.P[:, 0, 0], torch.tensor([1.6, 1.5, 1.0], dtype=F64), atol=1e-15, rtol=0)
    assert solution.K.shape == (2, 1, 1) and solution.k.shape == (2, 1) and solution.P.shape == (3, 1, 1)
    # Infinite horizon: P = 1 + P - P^2 / (1 + P), so P is the golden ratio and K = -P / (1 + P).
    K, P = infinite_horizon_lqr(1.0, 1.0, 1.0, 1.0)
    assert abs(float(P) - GOLDEN) < 1e-12 and abs(float(K) + GOLDEN / (1 + GOLDEN)) < 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_infinite_horizon_lqr_matches_scipy_solve_discrete_are(seed):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    A, B, Q, R, N = random_system(seed)
    for cross in (None, N):
        K, P = infinite_horizon_lqr(A, B, Q, R, cross)
        kwargs = {} if cross is None else {"s": cross.numpy()}
        P_ref = torch.as_tensor(scipy_linalg.solve_discrete_are(A.numpy(), B.numpy(), Q.numpy(), R.numpy(),
                                                                **kwargs))
        N_ref = torch.zeros(3, 2, dtype=F64) if cross is None else cross
        K_ref = -torch.linalg.solve(R + B.T @ P_ref @ B, B.T @ P_ref @ A + N_ref.T)
        torch.testing.assert_close(P, P_ref, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(K, K_ref, atol=1e-9, rtol=1e-9)
        # A long finite horizon converges to the same solution.
        finite = lqr(A, B, Q, R, 300, N=cross)
        torch.testing.assert_close(finite.P[0], P, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(finite.K[0], K, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("affine", [False, True])
def test_finite_horizon_lqr_is_optimal_and_its_value_is_the_realised_cost(affine):
    A, B, Q, R, N = random_system(2)
    Qf, x0 = 2.0 * Q, torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    c = torch.tensor([0.3, -0.1, 0.2], dtype=F64) if affine else None
    target = torch.tensor([1.0, 0.5, -1.0], dtype=F64) if affine else None
    solution = lqr(A, B, Q, R, 6, Qf=Qf, N=N, c=c, x_target=target)
    U = lqr_actions(solution, A, B, x0, c).requires_grad_(True)
    total = rollout_cost(A, B, Q, R, Qf, x0, U, N=N, c=c, x_target=target)
    (gradient,) = torch.autograd.grad(total, U)
    assert float(gradient.abs().max()) < 1e-10  # stationary point of a convex quadratic: the optimum
    total = float(total.detach())
    assert abs(float(solution.cost_to_go(x0)) - total) < 1e-10 * (1 + total)
    if not affine:
        assert float(solution.k.abs().max()) == 0.0 and float(solution.p.abs().max()) == 0.0


def test_lqr_regulates_a_drifting_system_to_a_target():
    # s' = s + a + 0.5: holding s at 2 needs a = -0.5 every step.
    solution = lqr(1.0, 1.0, 1.0, 1e-4, 40, c=0.5, x_target=2.0)
    x, actions = torch.tensor([0.0], dtype=F64), []
    for t in range(30):
        actions.append(float(solution.action(x, t)[0]))
        x = x + solution.action(x, t) + 0.5
    assert abs(float(x[0]) - 2.0) < 1e-3 and abs(actions[-1] + 0.5) < 1e-3


def test_lqr_input_errors_name_the_offending_argument():
    with pytest.raises(ValueError, match="A must be square"):
        lqr(np.ones((2, 3)), np.ones((2, 1)), np.eye(2), np.eye(1), 5)
    with pytest.raises(ValueError, match=r"B must have shape \(2, m\)"):
        lqr(np.eye(2), np.ones((3, 1)), np.eye(2), np.eye(1), 5)
    with pytest.raises(ValueError, match=r"R must have shape \(1, 1\)"):
        lqr(np.eye(2), np.ones((2, 1)), np.eye(2), np.eye(2), 5)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        lqr(1.0, 1.0, 1.0, 1.0, 0)
    with pytest.raises(ValueError, match="R must be positive definite"):
        lqr(1.0, 1.0, 1.0, -1.0, 5)
    with pytest.raises(ValueError, match="x_target must be a finite vector of length 2"):
        lqr(np.eye(2), np.ones((2, 1)), np.eye(2), np.eye(1), 5, x_target=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="stabilisable"):
        infinite_horizon_lqr(2.0, 0.0, 1.0, 1.0)  # an unstable mode no action reaches


# ---------------------------------------------------------------------- controller from a fitted model
def fitted_model(A, B, c, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, A.shape[0], generator=g, dtype=F64)
    actions = torch.randn(n, B.shape[1], generator=g, dtype=F64)
    model = LinearGaussian(A.shape[0], B.shape[1])
    model.fit(obs, actions, obs @ A.T + actions @ B.T + c)
    return model


def test_controller_from_a_fitted_linear_model_holds_the_target():
    A = torch.tensor([[1.0, 0.1], [0.0, 0.9]], dtype=F64)
    B = torch.tensor([[0.0], [0.1]], dtype=F64)
    c = torch.tensor([0.0, 0.05], dtype=F64)
    model = fitted_model(A, B, c)
    target = torch.tensor([1.0, 0.0])  # an equilibrium: at rest, u* = -0.5 cancels the drift 0.05
    for horizon in (None, 200):
        controller = LQRController.from_linear_model(model, np.eye(2), [[0.01]], horizon=horizon, x_target=target)
        x = torch.tensor([-1.0, 0.0], dtype=F64)
        for _ in range(300):
            x = A @ x + B @ controller(x).double() + c
        torch.testing.assert_close(x.float(), target, atol=2e-3, rtol=0)
        torch.testing.assert_close(controller(target), torch.tensor([-0.5]), atol=2e-3, rtol=0)
    solution = lqr_from_model(model, np.eye(2), [[0.01]], 10, x_target=target)
    reference = lqr(model.A, model.B, np.eye(2), [[0.01]], 10, c=model.c, x_target=target)
    torch.testing.assert_close(solution.K, reference.K)
    torch.testing.assert_close(solution.k, reference.k)


def test_controller_clips_to_the_action_space_and_refuses_unreachable_targets():
    A, B = torch.tensor([[1.0, 0.1], [0.0, 1.0]], dtype=F64), torch.tensor([[0.0], [0.1]], dtype=F64)
    model = fitted_model(A, B, torch.zeros(2, dtype=F64))
    controller = LQRController.from_linear_model(model, np.eye(2), [[0.01]], action_space=Box(-0.5, 0.5, (1,)))
    actions = controller(torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 10)
    assert actions.shape == (50, 1) and float(actions.abs().max()) == 0.5
    with pytest.raises(ValueError, match="not an equilibrium"):
        LQRController.from_linear_model(model, np.eye(2), [[0.01]], x_target=[0.0, 1.0])  # moving, not held
    with pytest.raises(RuntimeError, match="has not been fitted"):
        lqr_from_model(LinearGaussian(2, 1), np.eye(2), [[0.01]], 5)


# ---------------------------------------------------------------------- iLQR
def linear_problem(dtype):
    A = torch.tensor([[1.0, 0.1], [0.0, 1.0]], dtype=F64)
    B = torch.tensor([[0.005], [0.1]], dtype=F64)
    Q, R = torch.diag(torch.tensor([1.0, 0.1], dtype=F64)), torch.tensor([[0.01]], dtype=F64)
    dynamics = lambda x, u: x @ A.T.to(dtype) + u @ B.T.to(dtype)  # noqa: E731
    cost = lambda x, u: (torch.einsum("bi,ij,bj->b", x, Q.to(dtype), x)  # noqa: E731
                         + torch.einsum("bi,ij,bj->b", u, R.to(dtype), u))
    terminal = lambda x: 10.0 * torch.einsum("bi,ij,bj->b", x, Q.to(dtype), x)  # noqa: E731
    return A, B, Q, R, dynamics, cost, terminal


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_ilqr_first_iterate_on_a_linear_quadratic_problem_is_the_lqr_solution(dtype, tolerance):
    A, B, Q, R, dynamics, cost, terminal = linear_problem(dtype)
    x0 = torch.tensor([1.0, -0.5], dtype=F64)
    expected = lqr_actions(lqr(A, B, Q, R, 20, Qf=10.0 * Q), A, B, x0)
    ilqr = ILQR(dynamics, cost, 20, UNBOUNDED, terminal_cost=terminal, iterations=1, regularization=0.0, dtype=dtype)
    U = ilqr.optimize(x0, torch.full((20, 1), 0.3))
    assert U.dtype == dtype and U.shape == (20, 1)
    assert float((U.double() - expected).abs().max()) < tolerance
    assert float((ilqr.gains.double() - lqr(A, B, Q, R, 20, Qf=10.0 * Q).K).abs().max()) < tolerance
    info = ilqr.last_info
    assert info["iterations"] == 1 and info["accepted_steps"] == 1 and info["cost"] < info["initial_cost"]
    # Run to convergence, it stops at once: the next step predicts no improvement.
    ilqr = ILQR(dynamics, cost, 20, UNBOUNDED, terminal_cost=terminal, dtype=dtype)
    ilqr.optimize(x0)
    assert ilqr.last_info["converged"] is True and ilqr.last_info["iterations"] == 2


def test_ilqr_from_reward_matches_lqr_with_the_equivalent_cross_term():
    # The linear env's reward -(s'^T s' + 0.1 a^T a), with s' = A s + B a, is the LQR stage cost
    # s^T (A^T A) s + a^T (0.1 + B^T B) a + 2 s^T (A^T B) a with no terminal cost.
    A, B = torch.tensor([[0.5]], dtype=F64), torch.tensor([[1.0]], dtype=F64)
    dynamics = lambda x, u: 0.5 * x + u  # noqa: E731
    ilqr = ILQR.from_reward(dynamics, task_functions("linear").reward, 8, UNBOUNDED, iterations=1,
                            regularization=0.0, dtype=F64)
    x0 = torch.tensor([1.5], dtype=F64)
    solution = lqr(A, B, A.T @ A, 0.1 + B.T @ B, 8, Qf=torch.zeros(1, 1), N=A.T @ B)
    torch.testing.assert_close(ilqr.optimize(x0), lqr_actions(solution, A, B, x0), atol=1e-10, rtol=0)


def pendulum(x, u):
    """Undamped pendulum, semi-implicit Euler steps of 0.05 s; angle 0 is hanging down."""
    velocity = x[:, 1] + 0.05 * (-9.81 * torch.sin(x[:, 0]) + u[:, 0])
    return torch.stack([x[:, 0] + 0.05 * velocity, velocity], dim=-1)


def swing_up_cost(x, u):
    return (1.0 - torch.cos(x[:, 0] - math.pi)) + 0.1 * x[:, 1] ** 2 + 0.01 * u[:, 0] ** 2


def total_cost(x0, U):
    x, total = x0[None], torch.zeros((), dtype=U.dtype)
    for t in range(U.shape[0]):
        total = total + swing_up_cost(x, U[t:t + 1])[0]
        x = pendulum(x, U[t:t + 1])
    return total


def test_ilqr_converges_to_a_stationary_plan_on_a_nonlinear_system():
    x0 = torch.tensor([2.0, 0.0], dtype=F64)
    ilqr = ILQR(pendulum, swing_up_cost, 40, UNBOUNDED, dtype=F64)
    U = ilqr.optimize(x0)
    info = ilqr.last_info
    assert info["converged"] is True and info["cost"] < 0.8 * info["initial_cost"]
    U = U.clone().requires_grad_(True)
    cost = total_cost(x0, U)
    (gradient,) = torch.autograd.grad(cost, U)
    assert abs(float(cost.detach()) - info["cost"]) < 1e-9 and float(gradient.abs().max()) < 1e-3
    torch.testing.assert_close(ilqr.states[0], x0)


def test_ilqr_respects_action_bounds_by_clamping():
    x0 = torch.tensor([2.0, 0.0])
    ilqr = ILQR(pendulum, swing_up_cost, 40, Box(-1.5, 1.5, (1,)), iterations=30)
    U = ilqr.optimize(x0, torch.full((40, 1), 5.0))  # the start is clamped too
    assert float(U.abs().max()) <= 1.5 and float(U.abs().max()) == 1.5
    assert ilqr.last_info["cost"] < ilqr.last_info["initial_cost"]


def test_ilqr_plan_warm_starts_from_the_shifted_previous_plan():
    first_calls = []

    def recording(x, u):
        if x.shape[0] == 1 and not x.requires_grad:  # the rollout of the start plan
            first_calls.append(u[0].clone())
        return pendulum(x, u)

    ilqr = ILQR(recording, swing_up_cost, 10, Box(-3.0, 3.0, (1,)), iterations=3, dtype=F64)
    previous = ilqr.plan(torch.tensor([2.0, 0.0], dtype=F64))
    first_calls.clear()
    ilqr.plan(ilqr.states[1])
    start = torch.stack(first_calls[:10])
    torch.testing.assert_close(start[:9], previous[1:])
    assert float(start[9, 0]) == 0.0
    ilqr.reset()
    first_calls.clear()
    ilqr.plan(torch.tensor([2.0, 0.0], dtype=F64))
    assert float(torch.stack(first_calls[:10]).abs().max()) == 0.0


def test_ilqr_input_errors():
    with pytest.raises(TypeError, match="Box action space"):
        ILQR(pendulum, swing_up_cost, 10, Discrete(3))
    ilqr = ILQR(pendulum, swing_up_cost, 10, UNBOUNDED)
    with pytest.raises(ValueError, match=r"U0 has shape \(9, 1\), expected \(horizon, act_dim\) = \(10, 1\)"):
        ilqr.optimize(torch.zeros(2), torch.zeros(9, 1))
    with pytest.raises(ValueError, match="dynamics must return next states of shape"):
        ILQR(lambda x, u: x[:, :1], swing_up_cost, 10, UNBOUNDED).optimize(torch.zeros(2))
    with pytest.raises(ValueError, match=r"cost must return shape \(10,\)"):
        ILQR(pendulum, lambda x, u: x, 10, UNBOUNDED).optimize(torch.zeros(2))
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        ILQR(pendulum, swing_up_cost, 10, UNBOUNDED, iterations=0)
