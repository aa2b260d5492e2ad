"""Trajectory optimisers: the shared interface, input checks, random shooting, Discrete spaces,
bounds, vetoes and warm starts."""

import math

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete, MultiDiscrete

from forethought.planning import CEM, ICEM, MPPI, GradientOptimizer, RandomShooting, make_optimizer

NAMES = ["random", "cem", "icem", "mppi", "gradient"]
BOX = Box(-1.0, 1.0, (1,))
# Small settings so every optimiser runs in milliseconds.
FAST = {"random": {"population": 64}, "cem": {"population": 32, "elites": 4, "iterations": 3},
        "icem": {"population": 32, "elites": 4, "iterations": 3}, "mppi": {"population": 32, "iterations": 3},
        "gradient": {"population": 4, "iterations": 5}}


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def build(name, space=BOX, horizon=4, seed=0, **settings):
    return make_optimizer(name, space, horizon, generator=seeded(seed), **{**FAST[name], **settings})


def quadratic(target):
    """Objective ``-sum (a - target)^2`` for sequences ``[P, H, a]``; ``target [a]``."""
    target = torch.as_tensor(target, dtype=torch.float32)
    return lambda seqs: -((seqs - target) ** 2).sum(dim=(1, 2))


class Recorder:
    """Wraps an objective and keeps every population it was called with."""

    def __init__(self, objective):
        self.objective, self.calls = objective, []

    def __call__(self, seqs):
        self.calls.append(seqs.clone())
        return self.objective(seqs)


# ---------------------------------------------------------------------- interface
@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_returns_a_float32_sequence_and_fills_last_info(name):
    recorder = Recorder(quadratic([0.2]))
    optimizer = build(name)
    sequence = optimizer.optimize(recorder)
    assert sequence.shape == (4, 1) and sequence.dtype == torch.float32
    assert all(c.dtype == torch.float32 and c.ndim == 3 and c.shape[1:] == (4, 1) for c in recorder.calls)
    info = optimizer.last_info
    assert info["optimizer"] == name and info["iterations"] >= 1 and info["converged"] in (True, False)
    assert info["evaluations"] == sum(c.shape[0] for c in recorder.calls)
    assert math.isfinite(info["best_score"]) and info["all_vetoed"] is False
    # One objective call per iteration (the gradient optimiser scores its final point once more).
    assert len(recorder.calls) == info["iterations"] + (1 if name == "gradient" else 0)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_plan(name):
    first = build(name, seed=3).optimize(quadratic([0.2]))
    second = build(name, seed=3).optimize(quadratic([0.2]))
    assert torch.equal(first, second)


def test_factory_builds_each_class_and_passes_settings():
    classes = {"random": RandomShooting, "cem": CEM, "icem": ICEM, "mppi": MPPI, "gradient": GradientOptimizer}
    for name, cls in classes.items():
        assert type(build(name)) is cls
    assert make_optimizer("cem", BOX, 3, population=40, elites=8).elites == 8
    assert CEM(BOX, 3).population == 350 and CEM(BOX, 3).elites == 35 and CEM(BOX, 3).iterations == 5
    assert CEM(BOX, 3).momentum == 0.1 and RandomShooting(BOX, 3).population == 1000


def test_default_generator_is_seeded():
    assert torch.equal(CEM(BOX, 3, population=20, elites=2).optimize(quadratic([0.3])),
                       CEM(BOX, 3, population=20, elites=2).optimize(quadratic([0.3])))


# ---------------------------------------------------------------------- bad settings and inputs
def test_unknown_optimizer_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown optimizer 'annealing'.*'cem'.*'gradient'.*'icem'.*'ilqr'.*'lqr'"
                                         ".*'mppi'.*'random'"):
        make_optimizer("annealing", BOX, 5)


def test_unknown_settings_are_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['elite'\] for optimizer 'cem'.*'elites'"):
        make_optimizer("cem", BOX, 5, elite=3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("horizon", [0, -3, 2.5])
def test_horizon_must_be_a_positive_integer(name, horizon):
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        make_optimizer(name, BOX, horizon)


@pytest.mark.parametrize("name", NAMES)
def test_population_below_one_is_rejected(name):
    with pytest.raises(ValueError, match="population must be an integer >= 1, got 0"):
        make_optimizer(name, BOX, 3, population=0)


@pytest.mark.parametrize("name", ["cem", "icem"])
def test_elites_must_lie_between_one_and_population(name):
    with pytest.raises(ValueError, match=r"elites must be between 1 and population \(10\), got 11"):
        make_optimizer(name, BOX, 3, population=10, elites=11)
    with pytest.raises(ValueError, match="elites must be an integer >= 1, got 0"):
        make_optimizer(name, BOX, 3, population=10, elites=0)


@pytest.mark.parametrize("name", ["cem", "icem", "mppi", "gradient"])
def test_iterations_below_one_is_rejected(name):
    with pytest.raises(ValueError, match="iterations must be an integer >= 1, got 0"):
        make_optimizer(name, BOX, 3, iterations=0)


@pytest.mark.parametrize("setting, value", [("temperature", 0.0), ("temperature", -1.0), ("noise_std", 0.0),
                                            ("noise_std", [0.1, 0.2])])
def test_mppi_temperature_and_noise_std_must_be_positive(setting, value):
    with pytest.raises(ValueError, match=setting):
        MPPI(BOX, 3, **{setting: value})


@pytest.mark.parametrize("setting, value", [("init_std", 0.0), ("init_std", -0.5), ("min_std", -1e-3),
                                            ("momentum", 1.0), ("momentum", -0.1), ("stop_std", 0.0)])
def test_cem_std_and_momentum_settings_are_checked(setting, value):
    with pytest.raises(ValueError, match=setting):
        CEM(BOX, 3, **{setting: value})


@pytest.mark.parametrize("setting, value", [("beta", -1.0), ("decay", 0.5), ("keep_fraction", 1.5),
                                            ("min_population", 2)])
def test_icem_settings_are_checked(setting, value):
    with pytest.raises(ValueError, match=setting):
        ICEM(BOX, 3, population=20, elites=4, **{setting: value})


def test_gradient_learning_rate_must_be_positive():
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        GradientOptimizer(BOX, 3, learning_rate=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_action_spaces_are_rejected(name):
    with pytest.raises(TypeError, match="unsupported action space"):
        make_optimizer(name, MultiDiscrete([2, 3]), 3)
    with pytest.raises(TypeError, match=r"1-D Box"):
        make_optimizer(name, Box(-1.0, 1.0, (2, 2)), 3)
    with pytest.raises(ValueError, match="must be finite"):
        make_optimizer(name, Box(-np.inf, np.inf, (1,)), 3)


@pytest.mark.parametrize("name", ["icem", "mppi", "gradient"])
def test_box_only_optimizers_reject_discrete_spaces(name):
    with pytest.raises(TypeError, match="supports Box action spaces only"):
        make_optimizer(name, Discrete(3), 3)


@pytest.mark.parametrize("name", NAMES)
def test_objective_output_of_the_wrong_shape_is_rejected(name):
    with pytest.raises(ValueError, match=r"objective returned scores of shape \(\d+, 1\).*expected \(\d+,\)"):
        build(name).optimize(lambda seqs: -(seqs ** 2).sum(dim=1))
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        build(name).optimize(lambda seqs: [0.0] * seqs.shape[0])


@pytest.mark.parametrize("name", NAMES)
def test_nan_scores_are_an_error_that_names_the_objective(name):
    def objective(seqs):
        scores = -(seqs ** 2).sum(dim=(1, 2))
        return torch.where(seqs[:, 0, 0] > 0.0, torch.full_like(scores, float("nan")), scores)

    with pytest.raises(ValueError, match="objective's output holds .* NaN or \\+inf"):
        build(name).optimize(objective)


@pytest.mark.parametrize("name", NAMES)
def test_initial_of_the_wrong_shape_is_rejected(name):
    with pytest.raises(ValueError, match=r"initial has shape \(3, 1\), expected \(horizon, act_dim\) = \(4, 1\)"):
        build(name).optimize(quadratic([0.0]), initial=torch.zeros(3, 1))


# ---------------------------------------------------------------------- vetoes
@pytest.mark.parametrize("name", NAMES)
def test_vetoed_sequences_are_never_returned(name):
    # Sequences whose first action is above 0.1 are vetoed; the unconstrained optimum (0.5) is among them.
    def objective(seqs):
        scores = -((seqs - 0.5) ** 2).sum(dim=(1, 2))
        return torch.where(seqs[:, 0, 0] > 0.1, torch.full_like(scores, -math.inf), scores)

    optimizer = build(name)
    sequence = optimizer.optimize(objective)
    assert float(sequence[0, 0]) <= 0.1 + 1e-6
    assert optimizer.last_info["all_vetoed"] is False and math.isfinite(optimizer.last_info["best_score"])


@pytest.mark.parametrize("name", ["random", "cem", "icem", "mppi"])
def test_all_vetoed_returns_a_valid_sequence_and_says_so(name):
    optimizer = build(name)
    sequence = optimizer.optimize(lambda seqs: torch.full((seqs.shape[0],), -math.inf))
    assert sequence.shape == (4, 1) and bool(((sequence >= -1.0) & (sequence <= 1.0)).all())
    assert optimizer.last_info["all_vetoed"] is True and optimizer.last_info["best_score"] == -math.inf


# ---------------------------------------------------------------------- bounds
@pytest.mark.parametrize("name", NAMES)
def test_plans_never_leave_the_bounds_and_reach_a_bound_when_the_optimum_is_beyond_it(name):
    space = Box(np.array([-1.0, 0.0], dtype=np.float32), np.array([1.0, 3.0], dtype=np.float32))
    recorder = Recorder(quadratic([0.3, 5.0]))  # the second coordinate's optimum lies beyond its bound
    settings = {"random": {}, "cem": {}, "icem": {"iterations": 5}, "mppi": {"iterations": 10},
                "gradient": {"iterations": 100, "learning_rate": 0.1}}[name]  # the defaults, mostly
    sequence = make_optimizer(name, space, 3, generator=seeded(), **settings).optimize(recorder)
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    for population in recorder.calls:
        assert bool(((population >= low) & (population <= high)).all())
    assert bool(((sequence >= low) & (sequence <= high)).all())
    if name in ("cem", "icem", "gradient"):  # samples are clipped (or projected): the bound is hit exactly
        assert bool((sequence[:, 1] == 3.0).all())
    else:  # near the bound: well above the middle of the range
        assert float(sequence[:, 1].mean()) > 2.5


def test_float64_bounds_are_rounded_inwards_so_float32_plans_stay_inside():
    space = Box(np.array([-0.3]), np.array([0.7]), dtype=np.float64)  # neither is a float32 number
    plan = CEM(space, 3, generator=seeded()).optimize(lambda seqs: -seqs.sum(dim=(1, 2)))
    assert bool((plan == plan.new_tensor(-0.3).nextafter(plan.new_tensor(0.0))).all())
    assert all(space.contains(step.double().numpy()) for step in plan)


# ---------------------------------------------------------------------- random shooting
def test_random_shooting_improves_with_population():
    objective = quadratic([0.4])
    means = {}
    for population in (10, 100, 1000):
        scores = [float(objective(RandomShooting(BOX, 4, population=population, generator=seeded(s))
                                  .optimize(objective)[None])[0]) for s in range(10)]
        means[population] = np.mean(scores)
    assert means[10] < means[100] < means[1000]


def test_random_shooting_keeps_the_initial_sequence_as_a_candidate():
    best = torch.full((4, 1), 0.4)
    optimizer = RandomShooting(BOX, 4, population=5, generator=seeded())
    assert torch.equal(optimizer.optimize(quadratic([0.4]), initial=best), best)


# ---------------------------------------------------------------------- Discrete spaces
TARGET_INDICES = torch.tensor([2.0, 0.0, 3.0, 1.0, 2.0, 0.0])


def discrete_objective(seqs):
    """Best sequence: TARGET_INDICES; each step scores -|index - target|."""
    return -(seqs[..., 0] - TARGET_INDICES).abs().sum(dim=1)


def test_discrete_sequences_are_integer_indices_inside_the_space():
    recorder = Recorder(discrete_objective)
    for name in ("random", "cem"):
        sequence = build(name, space=Discrete(4), horizon=6).optimize(recorder)
        assert sequence.shape == (6, 1) and sequence.dtype == torch.float32
        for values in [sequence] + recorder.calls:
            assert bool((values == values.round()).all() and (values >= 0).all() and (values <= 3).all())


def test_random_shooting_finds_the_best_sequence_of_a_small_discrete_problem():
    sequence = RandomShooting(Discrete(3), 4, population=1000, generator=seeded()).optimize(
        lambda seqs: -(seqs[..., 0] - TARGET_INDICES[:4].clamp(max=2)).abs().sum(dim=1))
    assert torch.equal(sequence[:, 0], TARGET_INDICES[:4].clamp(max=2))


def test_discrete_cem_finds_the_best_sequence_where_random_shooting_with_the_same_budget_does_not():
    cem = CEM(Discrete(4), 6, population=50, elites=5, iterations=10, generator=seeded())
    assert torch.equal(cem.optimize(discrete_objective)[:, 0], TARGET_INDICES)
    assert cem.last_info["evaluations"] == 500
    shooting = RandomShooting(Discrete(4), 6, population=500, generator=seeded()).optimize(discrete_objective)
    assert not torch.equal(shooting[:, 0], TARGET_INDICES)  # 4^6 = 4096 sequences, 500 draws


def test_discrete_cem_stops_once_the_categorical_distributions_have_collapsed():
    cem = CEM(Discrete(4), 6, population=50, elites=5, iterations=50, momentum=0.0, stop_std=1e-3,
              generator=seeded())
    cem.optimize(discrete_objective)
    assert cem.last_info["converged"] is True and cem.last_info["iterations"] < 50
    assert cem.last_info["final_std"] < 1e-3


# ---------------------------------------------------------------------- warm starts
def constant(seqs):
    """A differentiable objective that prefers nothing: no optimiser moves away from its start."""
    return 0.0 * seqs.sum(dim=(1, 2))


@pytest.mark.parametrize("name", ["random", "cem", "mppi", "gradient"])
def test_plan_starts_from_the_previous_solution_shifted_one_step(name):
    settings = {"random": {"population": 1}, "cem": {"population": 1, "elites": 1, "iterations": 1},
                "mppi": {"population": 1, "iterations": 1}, "gradient": {"population": 1, "iterations": 1}}[name]
    space = Box(np.array([-1.0, 0.0], dtype=np.float32), np.array([1.0, 2.0], dtype=np.float32))
    optimizer = make_optimizer(name, space, 4, generator=seeded(), **settings)
    first = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]])
    assert torch.equal(optimizer.optimize(constant, initial=first), first)
    recorder = Recorder(constant)
    second = optimizer.plan(recorder)
    start = recorder.calls[0][0]
    assert torch.equal(start[:3], first[1:])
    if name == "random":  # the appended step is drawn at random inside the bounds
        assert bool(((start[3] >= torch.tensor([-1.0, 0.0])) & (start[3] <= torch.tensor([1.0, 2.0]))).all())
    else:  # the appended step is the centre of the range
        assert torch.equal(start[3], torch.tensor([0.0, 1.0]))
    assert torch.equal(second, start)
    optimizer.reset()
    recorder = Recorder(constant)
    optimizer.plan(recorder)
    if name in ("cem", "mppi"):  # after reset the start is the centre again
        assert torch.equal(recorder.calls[0][0], torch.tensor([[0.0, 1.0]] * 4))
    else:  # no start after reset: the first candidate is a random draw, not the old plan
        assert not torch.equal(recorder.calls[0][0][:3], second[1:])


def test_discrete_cem_plan_shifts_the_probability_vectors():
    cem = CEM(Discrete(3), 4, population=40, elites=4, iterations=5, momentum=0.0, generator=seeded())
    target = torch.tensor([2.0, 1.0, 0.0, 2.0])
    objective = lambda seqs: -(seqs[..., 0] - target).abs().sum(dim=1)  # noqa: E731
    assert torch.equal(cem.optimize(objective)[:, 0], target)
    recorder = Recorder(lambda seqs: torch.zeros(seqs.shape[0]))
    cem.plan(recorder)
    # The most likely sequence is always scored first: the old plan shifted, then the
    # uniform fresh step's most likely index (0).
    assert torch.equal(recorder.calls[0][0, :, 0], torch.tensor([1.0, 0.0, 2.0, 0.0]))


def test_optimize_ignores_the_warm_start_and_plan_after_reset_forgets_it():
    optimizer = CEM(BOX, 3, population=1, elites=1, iterations=1, generator=seeded())
    optimizer.optimize(constant, initial=torch.full((3, 1), 0.5))
    recorder = Recorder(constant)
    optimizer.optimize(recorder)
    assert torch.equal(recorder.calls[0][0], torch.zeros(3, 1))


# ---------------------------------------------------------------- proposals (e.g. a learned policy's plans)
@pytest.mark.parametrize("name", ["random", "cem", "icem"])
def test_a_proposal_at_the_optimum_joins_the_population_and_is_returned(name):
    space = Box(-1.0, 1.0, shape=(2,))
    target = torch.tensor([0.31, -0.47])
    objective = lambda actions: -((actions - target) ** 2).sum(dim=(1, 2))
    settings = {"population": 8, "iterations": 1} if name != "random" else {"population": 8}
    if name != "random":
        settings["elites"] = 2
    optimizer = make_optimizer(name, space, horizon=4, generator=torch.Generator().manual_seed(0), **settings)
    decoy = torch.full((1, 4, 2), 0.9)
    plan = optimizer.plan(objective, proposals=torch.cat([decoy, target.expand(1, 4, 2)]))
    assert torch.equal(plan, target.expand(4, 2))
    assert optimizer.last_info["evaluations"] == 8 + 2 + (1 if name == "icem" else 0)  # iCEM adds its mean
    # without the proposal, 8 random candidates do not find it
    assert not torch.allclose(optimizer.plan(objective), target.expand(4, 2), atol=1e-3)


def test_mppi_moves_its_nominal_towards_a_good_proposal():
    space = Box(-1.0, 1.0, shape=(1,))
    objective = lambda actions: -((actions - 0.8) ** 2).sum(dim=(1, 2))
    plain = make_optimizer("mppi", space, horizon=3, generator=torch.Generator().manual_seed(0), population=16,
                           iterations=1, temperature=0.01)
    seeded = make_optimizer("mppi", space, horizon=3, generator=torch.Generator().manual_seed(0), population=16,
                            iterations=1, temperature=0.01)
    far = (plain.plan(objective) - 0.8).abs().max()
    near = (seeded.plan(objective, proposals=torch.full((1, 3, 1), 0.8)) - 0.8).abs().max()
    assert near < 0.5 * far


def test_bad_proposals_are_rejected():
    space = Box(-1.0, 1.0, shape=(2,))
    cem = make_optimizer("cem", space, horizon=4)
    objective = lambda actions: -actions.pow(2).sum(dim=(1, 2))
    with pytest.raises(ValueError, match=r"proposals have shape \(4, 2\), expected \(N, horizon, act_dim\)"):
        cem.plan(objective, proposals=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="finite"):
        cem.plan(objective, proposals=torch.full((1, 4, 2), float("nan")))
    discrete = make_optimizer("cem", Discrete(3), horizon=4)
    with pytest.raises(TypeError, match="Box action spaces only"):
        discrete.plan(lambda a: -a.sum(dim=(1, 2)), proposals=torch.zeros(1, 4, 1))
