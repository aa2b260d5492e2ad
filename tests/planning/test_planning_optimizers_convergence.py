"""Trajectory optimisers against problems with known optima, and the behaviour particular to each
(CEM early stopping, iCEM's noise, population and kept elites, MPPI's weights, gradients).

The reference problem: the 1-D system ``s' = 0.5 s + a`` from ``s_0 = 1``, minimising
``sum_{t=1..H} (s_t - 0.5)^2 + 0.1 a_{t-1}^2`` over ``H = 5`` actions in ``[-2, 2]``. Its optimum is
interior and has a closed form (linear least squares), so each optimiser is held to a tolerance
on the actions and on the return. The tolerances reflect each method: CEM and the gradient
optimiser converge to float32 precision; iCEM (coloured, time-correlated noise and few samples)
and MPPI (a weighted average of noisy samples with a fixed noise std) stop short of it.
"""

import math

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box

from forethought.planning import CEM, ICEM, MPPI, GradientOptimizer, colored_noise, lqr, softmax_weights

HORIZON, START, TARGET, ACTION_COST = 5, 1.0, 0.5, 0.1
SPACE = Box(-2.0, 2.0, (1,))


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def cost(sequences):
    """``[P]`` cost of ``[P, H, 1]`` action sequences on the reference problem."""
    state = torch.full(sequences.shape[:1], START, dtype=sequences.dtype)
    total = torch.zeros_like(state)
    for t in range(sequences.shape[1]):
        action = sequences[:, t, 0]
        state = 0.5 * state + action
        total = total + (state - TARGET) ** 2 + ACTION_COST * action ** 2
    return total


def objective(sequences):
    return -cost(sequences)


def optimum():
    """The exact minimiser ``[H]`` (float64): states are ``s = F a + g`` with ``F`` lower
    triangular, so the cost ``|F a + g - target|^2 + r |a|^2`` is linear least squares."""
    steps = torch.arange(HORIZON, dtype=torch.float64)
    lag = steps[:, None] - steps[None, :]
    F = torch.where(lag >= 0, 0.5 ** lag.clamp(min=0), torch.zeros(()))
    g = START * 0.5 ** (steps + 1) - TARGET
    return -torch.linalg.solve(F.T @ F + ACTION_COST * torch.eye(HORIZON, dtype=torch.float64), F.T @ g)


def assert_near_optimum(sequence, action_tol, relative_cost_tol):
    best = optimum()
    assert float((sequence[:, 0].double() - best).abs().max()) < action_tol
    best_cost = float(cost(best.reshape(1, HORIZON, 1))[0])
    assert (float(cost(sequence.double()[None])[0]) - best_cost) / best_cost < relative_cost_tol


def test_the_reference_optimum_agrees_with_lqr():
    # The same problem as an LQR in the state x = s - target with the drift 0.5 * target - target.
    solution = lqr(0.5, 1.0, 1.0, ACTION_COST, HORIZON, c=0.0, x_target=TARGET, N=0.0)
    # lqr charges the state before each action and the final state; the reference charges the states
    # after each action: the same sum except the constant (s_0 - target)^2.
    state, actions = torch.tensor([START], dtype=torch.float64), []
    for t in range(HORIZON):
        actions.append(solution.action(state, t))
        state = 0.5 * state + actions[-1]
    torch.testing.assert_close(torch.cat(actions), optimum(), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------- known optimum
def test_cem_finds_the_optimum_to_float32_precision():
    sequence = CEM(SPACE, HORIZON, iterations=30, generator=seeded()).optimize(objective)
    assert_near_optimum(sequence, action_tol=1e-3, relative_cost_tol=1e-5)


def test_cem_with_the_pets_defaults_gets_close_in_five_iterations():
    cem = CEM(SPACE, HORIZON, generator=seeded())
    assert_near_optimum(cem.optimize(objective), action_tol=0.1, relative_cost_tol=0.1)
    assert cem.last_info["iterations"] == 5 and cem.last_info["evaluations"] == 5 * 350


def test_cem_on_a_two_dimensional_system_matches_lqr():
    A = torch.tensor([[0.9, 0.2], [0.0, 0.8]])
    B = torch.tensor([[1.0, 0.0], [0.3, 0.5]])
    Q, R, x0 = torch.eye(2), 0.1 * torch.eye(2), torch.tensor([1.0, -1.0])

    def two_d_objective(sequences):
        state, total = x0.expand(sequences.shape[0], 2), torch.zeros(sequences.shape[0])
        for t in range(sequences.shape[1]):
            total = total + (state ** 2).sum(-1) + 0.1 * (sequences[:, t] ** 2).sum(-1)
            state = state @ A.T + sequences[:, t] @ B.T
        return -(total + (state ** 2).sum(-1))

    solution = lqr(A, B, Q, R, 4)
    state, expected = x0.double(), []
    for t in range(4):
        expected.append(solution.action(state, t))
        state = A.double() @ state + B.double() @ expected[-1]
    sequence = CEM(Box(-2.0, 2.0, (2,)), 4, iterations=40, generator=seeded()).optimize(two_d_objective)
    torch.testing.assert_close(sequence.double(), torch.stack(expected), atol=2e-3, rtol=0)


def test_icem_finds_the_optimum_within_its_looser_tolerance():
    icem = ICEM(SPACE, HORIZON, iterations=20, elites=20, min_population=60, beta=1.0, generator=seeded())
    assert_near_optimum(icem.optimize(objective), action_tol=5e-3, relative_cost_tol=1e-3)


def test_mppi_finds_the_optimum_within_its_looser_tolerance():
    mppi = MPPI(SPACE, HORIZON, iterations=20, noise_std=0.05, temperature=0.01, generator=seeded())
    assert_near_optimum(mppi.optimize(objective), action_tol=2e-2, relative_cost_tol=1e-2)


def test_gradient_optimizer_finds_the_optimum_to_float32_precision():
    optimizer = GradientOptimizer(SPACE, HORIZON, iterations=300, learning_rate=0.02, generator=seeded())
    assert_near_optimum(optimizer.optimize(objective), action_tol=1e-3, relative_cost_tol=1e-5)


def test_gradient_optimizer_works_inside_no_grad():
    optimizer = GradientOptimizer(SPACE, HORIZON, iterations=100, learning_rate=0.05, generator=seeded())
    with torch.no_grad():
        sequence = optimizer.optimize(objective)
    assert_near_optimum(sequence, action_tol=0.05, relative_cost_tol=0.05)


# ---------------------------------------------------------------------- CEM
def test_cem_stops_early_once_the_std_has_collapsed():
    cem = CEM(SPACE, HORIZON, iterations=200, stop_std=2e-3, generator=seeded())
    sequence = cem.optimize(objective)
    info = cem.last_info
    assert info["converged"] is True and info["iterations"] < 200 and info["final_std"] < 2e-3
    assert info["evaluations"] == info["iterations"] * 350
    assert_near_optimum(sequence, action_tol=1e-2, relative_cost_tol=1e-3)
    without = CEM(SPACE, HORIZON, iterations=60, generator=seeded())
    without.optimize(objective)
    assert without.last_info["iterations"] == 60 and without.last_info["converged"] is False


def test_cem_std_never_falls_below_min_std():
    cem = CEM(SPACE, HORIZON, iterations=40, min_std=0.05, generator=seeded())
    cem.optimize(objective)
    assert cem.last_info["final_std"] == pytest.approx(0.05)


def flat(sequences):
    """``-sum (a - 0.4)^2``: the optimum (0.4 at every step) is shift-invariant, so a shifted plan
    is still good on all but its new last step."""
    return -((sequences - 0.4) ** 2).sum(dim=(1, 2))


def carried_loss(make, calls=20, reset=False):
    """Mean over the last 10 of ``calls`` plan() calls of the squared error of the first three steps
    (the ones a warm start carries over)."""
    optimizer, losses = make(), []
    for _ in range(calls):
        if reset:
            optimizer.reset()
        losses.append(float(((optimizer.plan(flat)[:3] - 0.4) ** 2).sum()))
    return float(np.mean(losses[-10:]))


def test_cem_plan_warm_start_beats_starting_afresh_on_a_fixed_objective():
    make = lambda: CEM(SPACE, HORIZON, population=50, elites=5, iterations=3, generator=seeded())  # noqa: E731
    assert carried_loss(make) < 0.6 * carried_loss(make, reset=True)


# ---------------------------------------------------------------------- iCEM
def test_colored_noise_has_unit_variance_and_the_requested_correlation():
    white = colored_noise(4000, 16, 2, 0.0, seeded())
    smooth = colored_noise(4000, 16, 2, 2.0, seeded())
    assert white.shape == smooth.shape == (4000, 16, 2)
    for noise in (white, smooth):
        assert float((noise.var(dim=0) - 1.0).abs().max()) < 0.1  # every step and dimension
    lag_one = lambda x: float((x[:, 1:] * x[:, :-1]).mean() / x.var())  # noqa: E731
    assert abs(lag_one(white)) < 0.05 and lag_one(smooth) > 0.6
    # Independent across action dimensions.
    assert abs(float((smooth[..., 0] * smooth[..., 1]).mean())) < 0.05
    one_step = colored_noise(4000, 1, 1, 2.0, seeded())  # a Gaussian, not +-1
    assert abs(float(one_step.var()) - 1.0) < 0.1 and float(one_step.abs().min()) < 0.05


def test_icem_population_shrinks_and_keeps_elites_and_scores_the_mean_last():
    icem = ICEM(SPACE, HORIZON, population=100, elites=10, iterations=4, decay=2.0, min_population=20,
                keep_fraction=0.3, generator=seeded())
    assert [icem.population_size(i) for i in range(4)] == [100, 50, 25, 20]
    icem.optimize(objective)
    # Fresh samples, plus 3 kept elites from the second iteration on, plus the mean in the last.
    assert icem.last_info["population_sizes"] == [100, 53, 28, 24]
    assert icem.last_info["evaluations"] == 100 + 53 + 28 + 24


def test_icem_plan_carries_the_previous_elites_shifted_one_step():
    calls = []

    def recording(sequences):
        calls.append(sequences.clone())
        return objective(sequences)

    icem = ICEM(SPACE, HORIZON, population=30, elites=5, iterations=1, keep_fraction=0.4, generator=seeded())
    icem.plan(recording)
    first, first_scores = calls[0], objective(calls[0])
    elites = first[torch.topk(first_scores, 5).indices][:2]  # keep_fraction 0.4 of 5 elites
    icem.plan(recording)
    second = calls[1]
    assert second.shape[0] == 30 + 2 + 1  # fresh, carried elites, mean
    carried = second[30:32]
    assert torch.equal(carried[:, :-1], elites[:, 1:]) and bool((carried[:, -1] == 0.0).all())
    icem.reset()
    icem.plan(recording)
    assert calls[2].shape[0] == 30 + 1  # nothing carried after reset


# ---------------------------------------------------------------------- MPPI
def test_softmax_weights_are_stable_for_huge_scores_and_tiny_temperatures():
    scores = torch.tensor([1e6, 1e6 - 1.0, 1e6 - 2.0, -math.inf], dtype=torch.float32)
    for temperature in (1e-12, 1e-3, 1.0, 1e9):
        weights = softmax_weights(scores, temperature)
        assert bool(torch.isfinite(weights).all()) and float(weights.sum()) == pytest.approx(1.0)
        assert float(weights[3]) == 0.0 and float(weights[0]) >= float(weights[1]) >= float(weights[2])
    assert torch.equal(softmax_weights(scores, 1e-12)[:3], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(softmax_weights(scores[:3], 1e9), torch.full((3,), 1 / 3, dtype=torch.float64))
    all_vetoed = softmax_weights(torch.full((4,), -math.inf), 1.0)
    torch.testing.assert_close(all_vetoed, torch.full((4,), 0.25, dtype=torch.float64))


def test_mppi_stays_finite_with_scores_around_1e6_and_a_tiny_temperature():
    mppi = MPPI(SPACE, HORIZON, iterations=5, temperature=1e-9, generator=seeded())
    sequence = mppi.optimize(lambda sequences: 1e6 + objective(sequences))
    assert bool(torch.isfinite(sequence).all()) and bool((sequence.abs() <= 2.0).all())
    assert mppi.last_info["effective_samples"] == pytest.approx(1.0)
    assert float(cost(sequence[None])[0]) < float(cost(torch.zeros(1, HORIZON, 1))[0])


def test_mppi_temperature_trades_greed_for_averaging():
    greedy = MPPI(SPACE, HORIZON, temperature=1e-4, generator=seeded())
    greedy.optimize(objective)
    even = MPPI(SPACE, HORIZON, temperature=1e4, generator=seeded())
    plan = even.optimize(objective)
    assert greedy.last_info["effective_samples"] < 5 and even.last_info["effective_samples"] > 450
    # An even average of noise around the centre stays near the centre.
    assert float(plan.abs().max()) < 0.15


def test_mppi_plan_refines_the_nominal_from_call_to_call():
    make = lambda: MPPI(SPACE, HORIZON, population=100, temperature=0.05, noise_std=0.2,  # noqa: E731
                        generator=seeded())
    assert carried_loss(make) < 0.1 * carried_loss(make, reset=True)


# ---------------------------------------------------------------------- gradient
def test_gradient_optimizer_needs_a_differentiable_objective():
    optimizer = GradientOptimizer(SPACE, HORIZON, iterations=3)
    with pytest.raises(TypeError, match="objective's output does not require grad"):
        optimizer.optimize(lambda sequences: objective(sequences).detach())
    with pytest.raises(TypeError, match="objective's output does not require grad"):
        optimizer.optimize(lambda sequences: torch.as_tensor(objective(sequences).detach().numpy()))


def test_gradient_optimizer_restarts_keep_the_best_and_tolerance_stops_early():
    # Two optima: a ~ -1 everywhere scores 1, a ~ +1 scores 2; restarts that start low end at -1.
    def two_wells(sequences):
        a = sequences[..., 0]
        return (2.0 * torch.exp(-8 * (a - 1) ** 2) + torch.exp(-8 * (a + 1) ** 2)).sum(dim=1)

    optimizer = GradientOptimizer(Box(-2.0, 2.0, (1,)), 3, population=16, iterations=300, learning_rate=0.05,
                                  tolerance=1e-5, generator=seeded(1))
    sequence = optimizer.optimize(two_wells)
    torch.testing.assert_close(sequence, torch.ones(3, 1), atol=1e-3, rtol=0)
    assert optimizer.last_info["converged"] is True and optimizer.last_info["iterations"] < 300
    single = GradientOptimizer(Box(-2.0, 2.0, (1,)), 3, population=1, iterations=300, learning_rate=0.05)
    low_start = single.optimize(two_wells, initial=torch.full((3, 1), -1.2))
    torch.testing.assert_close(low_start, -torch.ones(3, 1), atol=1e-3, rtol=0)


@pytest.mark.parametrize("learning_rate", [0.05, 0.2])
def test_gradient_optimizer_actions_stay_in_bounds_at_every_step(learning_rate):
    seen = []

    def pushing_out(sequences):
        seen.append(sequences.detach().clone())
        return (3.0 * sequences[..., 0]).sum(dim=1)  # pushes every action up, past the bound

    space = Box(np.float32(-0.3), np.float32(0.7), (1,))
    sequence = GradientOptimizer(space, 4, iterations=40, learning_rate=learning_rate,
                                 generator=seeded()).optimize(pushing_out)
    assert all(bool(((s >= np.float32(-0.3)) & (s <= np.float32(0.7))).all()) for s in seen)
    assert bool((sequence == np.float32(0.7)).all())
