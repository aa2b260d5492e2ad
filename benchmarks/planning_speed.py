"""Planning speed: milliseconds per action of the MPC agent, achieved GFLOP/s of the ensemble
forward passes against the machine's measured matrix-multiply peaks (``torch.mm``, and in
float32 also oneDNN's linear, which the planner's fused float32 layers call), and what the bfloat16
compute option costs in accuracy.

Configurations:
- ``pets-paper``: 7-member 4x200 probabilistic ensemble (5 elites), CEM population 350,
  35 elites, 5 iterations, horizon 15, 20 particles, TS1 (the configuration mbrl-lib's PETS
  example uses; ``benchmarks/mbrl_lib_reference.py`` times mbrl-lib's planner on it).
- ``icem-350``: the same model, particles and population, searched by iCEM in three iterations
  of a decaying population (350, 280, 224): about half the candidates of the paper's CEM, at the
  same closed-loop return (``benchmarks/planning_return.py``).
- ``default``: forethought's PETS defaults: 5-member 3x200 ensemble, iCEM (population 100
  decaying, 10 elites, 3 iterations), 5 particles, TS-infinity: under 100 ms per action, and it
  still swings the cart-pole up (``benchmarks/pets_learning.py``); its plan quality is reported
  next to the others.

Each configuration runs with the ensemble computing in float32 and in bfloat16
(``TrajectoryEvaluator.compute_dtype``). ``--quality`` adds, on a model trained longer:
the bfloat16 one-step prediction error against float32 on held-out cart-pole transitions, the
agreement of the returns the evaluator assigns to 350 random candidates (same random draws),
and the quality of the plans each configuration returns from 12 start states, all scored by one
float32 evaluator with 100 particles.

    python benchmarks/planning_speed.py [--actions 15] [--threads 2] [--quality]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Callable

import torch

from forethought import envs
from forethought.agents import MPCAgent, PETSConfig
from forethought.data import collect
from forethought.envs import env_task_functions
from forethought.models import ProbabilisticEnsemble
from forethought.models.frozen import fused_linear_available
from forethought.planning import PlannerConfig, TrajectoryEvaluator, make_optimizer

PETS_PAPER = dict(members=7, layers=4, hidden=200)
CONFIGS = {
    "pets-paper": dict(**PETS_PAPER,
                       planner=PlannerConfig(optimizer="cem", horizon=15, particles=20, propagation="ts1",
                                             settings={"population": 350, "elites": 35, "iterations": 5})),
    "icem-350": dict(**PETS_PAPER,
                     planner=PlannerConfig(optimizer="icem", horizon=15, particles=20, propagation="ts1",
                                           settings={"population": 350, "elites": 35, "iterations": 3})),
    "default": dict(members=PETSConfig().model.ensemble_size, layers=PETSConfig().model.hidden_layers,
                    hidden=PETSConfig().model.hidden_size, planner=PETSConfig().planner),
}
DTYPES = ("float32", "bfloat16")


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10,
                       product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.mm) -> float:
    """Best throughput of ``product`` (default ``torch.mm``) of two ``size`` x ``size`` matrices in
    ``dtype`` over ``repeats`` runs."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    product(a, b)
    best = min(_timed(lambda: product(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def onednn_peak_gflops() -> float | None:
    """Float32 peak of oneDNN's linear (the kernel the fused planning path calls), often well
    above ``torch.mm``'s; None where this build lacks it."""
    if not fused_linear_available():
        return None
    linear = torch.ops.mkldnn._linear_pointwise
    return matmul_peak_gflops(torch.float32, product=lambda a, b: linear(a, b, None, "none", [], ""))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_flops_per_row(obs_dim: int, act_dim: int, hidden: int, layers: int) -> float:
    """Multiply-add FLOPs of one row through one member (mean and log-std heads)."""
    return 2 * ((obs_dim + act_dim) * hidden + (layers - 1) * hidden * hidden + hidden * 2 * obs_dim)


def fitted_model(spec: dict, data, epochs: int) -> ProbabilisticEnsemble:
    model = ProbabilisticEnsemble(5, 1, ensemble_size=spec["members"], hidden_size=spec["hidden"],
                                  hidden_layers=spec["layers"], max_epochs=epochs)
    model.fit(data, generator=torch.Generator().manual_seed(0))
    return model


def agent_for(model, spec: dict, env, dtype: str) -> MPCAgent:
    planner = dataclasses.replace(spec["planner"], compute_dtype=dtype)
    return MPCAgent(model, env_task_functions(env), env.action_space, planner, torch.Generator().manual_seed(0))


def time_config(spec: dict, model, env, actions: int, dtype: str) -> dict:
    """Median ms per action over ``actions`` MPC steps from the env's seed-0 start, and the FLOPs
    of the forward passes per action (candidates actually scored x particles x horizon; all
    members' rows in all-members mode)."""
    agent = agent_for(model, spec, env, dtype)
    candidates, evaluate = [], agent.evaluator.evaluate

    def counting(obs, sequences, *rest, **options):
        candidates.append(sequences.shape[0])
        return evaluate(obs, sequences, *rest, **options)

    agent.evaluator.evaluate = counting
    obs, _ = env.reset(seed=0)
    agent.reset()
    agent.act(obs)  # warm-up
    candidates.clear()
    for _ in range(actions):
        obs, *_ = env.step(agent.act(obs))
    ms = statistics.median(agent.plan_ms[1:])
    planner = spec["planner"]
    rows = sum(candidates) / actions * planner.particles * planner.horizon
    rows *= len(model.elites) if planner.propagation == "all-members" else 1
    flops = rows * forward_flops_per_row(5, 1, spec["hidden"], spec["layers"])
    return {"ms": ms, "gflop": flops / 1e9, "gflops": flops / (ms / 1000) / 1e9}


# ---------------------------------------------------------------- accuracy of the bfloat16 option
def prediction_error(model, test) -> None:
    """bfloat16 vs float32 next-state means and stds of the elites on held-out transitions."""
    obs = test.obs.expand(len(model.elites), -1, -1)
    action = test.action.expand(len(model.elites), -1, -1)
    (mean32, std32), (mean16, std16) = (model.frozen_member_predictor(dtype)(obs, action) for dtype in DTYPES)
    scale = model.delta_scale()
    mean_gap, std_gap = (mean16 - mean32).abs() / scale, (std16 - std32).abs() / std32
    model_error = ((mean32 - test.next_obs).abs() / scale).mean()
    print(f"  next-state means, |bf16 - fp32| in units of the one-step-change std: mean {mean_gap.mean():.2e}, "
          f"max {mean_gap.max():.2e} (the model's own error on these transitions: mean {model_error:.2e})")
    print(f"  predicted stds, |bf16 - fp32| / fp32: mean {std_gap.mean():.2e}, max {std_gap.max():.2e}")


def return_agreement(model, task, obs: torch.Tensor) -> None:
    """Returns of 350 random candidates scored in float32 and bfloat16 with the same draws."""
    actions = torch.rand(350, 15, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1
    returns = {}
    for dtype in DTYPES:
        evaluator = TrajectoryEvaluator(model, task.reward, task.termination, particles=20, propagation="ts1",
                                        generator=torch.Generator().manual_seed(2), compute_dtype=dtype)
        returns[dtype] = evaluator.evaluate(obs, actions).mean_return
    r32, r16 = returns["float32"], returns["bfloat16"]
    ranks = [r.argsort().argsort().float() for r in (r32, r16)]
    spearman = torch.corrcoef(torch.stack(ranks))[0, 1]
    top32, top16 = set(r32.topk(35).indices.tolist()), set(r16.topk(35).indices.tolist())
    print(f"  returns of 350 candidates: rank correlation {spearman:.4f}, |bf16 - fp32| max {(r16 - r32).abs().max():.3f} "
          f"(spread of returns: std {r32.std():.2f}), top-35 overlap {len(top32 & top16)}/35")


def planned(model, task, env, planner: PlannerConfig, dtype: str, obs: torch.Tensor, seed: int) -> torch.Tensor:
    """The action sequence ``[H, a]`` ``planner`` returns from ``obs`` (a fresh optimiser and evaluator)."""
    generator = torch.Generator().manual_seed(seed)
    evaluator = TrajectoryEvaluator(model, task.reward, task.termination, particles=planner.particles,
                                    propagation=planner.propagation, generator=generator, compute_dtype=dtype)
    optimizer = make_optimizer(planner.optimizer, env.action_space, planner.horizon, generator=generator,
                               settings=planner.optimizer_settings())
    return optimizer.plan(evaluator.objective(obs))


def plan_quality(model, env, starts: torch.Tensor) -> None:
    """Each configuration's plan from each start, scored by one float32 100-particle evaluator; the
    float32 planner with another seed shows how much plans differ by chance alone."""
    task = env_task_functions(env)
    for name, dtype, seed in (("pets-paper", "float32", 0), ("pets-paper", "float32", 1), ("pets-paper", "bfloat16", 0),
                              ("default", "float32", 0), ("default", "bfloat16", 0)):
        values = []
        judge = TrajectoryEvaluator(model, task.reward, task.termination, particles=100, propagation="ts1",
                                    generator=torch.Generator().manual_seed(3))  # the same draws for every row
        for obs in starts:
            plan = planned(model, task, env, CONFIGS[name]["planner"], dtype, obs, seed)
            values.append(float(judge.evaluate(obs, plan[None]).mean_return))
        print(f"  {name:10s} {dtype:8s} seed {seed}: plan value {statistics.mean(values):8.3f} (mean over {len(starts)} starts; "
              f"per start {', '.join(f'{v:.2f}' for v in values)})")


def quality(env, data) -> None:
    model = fitted_model(CONFIGS["pets-paper"], data, epochs=50)
    test = collect(env, 500, seed=1).all()
    print("bfloat16 accuracy (pets-paper model, 50 epochs on 1000 random transitions):")
    prediction_error(model, test)
    return_agreement(model, env_task_functions(env), test.obs[0])
    plan_quality(model, env, test.obs[::40][:12])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--quality", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    env = envs.make("cartpole-swingup")
    data = collect(env, 1000, seed=0)
    probe = {dtype: matmul_peak_gflops(getattr(torch, dtype), size=256, repeats=3) for dtype in DTYPES}
    # an emulated bfloat16 mm (no AVX512-BF16 or AMX) is too slow to time at full size
    peaks = {dtype: matmul_peak_gflops(getattr(torch, dtype)) if probe[dtype] >= probe["float32"] / 4 else probe[dtype]
             for dtype in DTYPES}
    print(", ".join(f"{dtype} torch.mm 2048x2048 peak: {peak:.1f} GFLOP/s" for dtype, peak in peaks.items()))
    onednn = onednn_peak_gflops()
    if onednn is not None:
        print(f"float32 oneDNN linear 2048x2048 peak: {onednn:.1f} GFLOP/s")
    dtypes = [d for d in DTYPES if peaks[d] >= peaks["float32"] / 2]  # no bfloat16 kernels: it is emulated, hours
    if len(dtypes) < len(DTYPES):
        print("bfloat16 skipped: this CPU has no fast bfloat16 matrix multiply")
    for name in args.configs.split(","):
        spec = CONFIGS[name]
        model = fitted_model(spec, data, epochs=3)
        for dtype in dtypes:
            r = time_config(spec, model, env, args.actions, dtype)
            print(f"{name:11s} {dtype:8s}: {r['ms']:8.1f} ms per action (median of {args.actions}), forward passes "
                  f"{r['gflop']:.1f} GFLOP per action -> {r['gflops']:.1f} GFLOP/s = "
                  f"{100 * r['gflops'] / peaks[dtype]:.0f} % of the {dtype} matmul peak"
                  + (f", {100 * r['gflops'] / onednn:.0f} % of oneDNN's" if dtype == "float32" and onednn else ""))
    print("mbrl-lib 0.2.0, pets-paper configuration, same kind of machine: 1570 ms per action (reported figure)")
    if args.quality:
        quality(env, data)


if __name__ == "__main__":
    main()
