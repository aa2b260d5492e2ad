"""How many transitions does a physics prior save? Residual vs from-scratch models on cart-pole.

The prior is the cart-pole simulator with a deliberately wrong pole length (default 30 % too
long). For growing numbers of random-action training transitions, both a model from scratch and
a residual model over the wrong simulator (same learned-model settings) are fitted and scored on
the same held-out episodes. Prints held-out one-step MSE per size and how many transitions each
needs to reach a target error.

    python benchmarks/residual_sample_efficiency.py [--sizes 50,100,...] [--length-error 0.3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from forethought import envs
from forethought.data import collect
from forethought.envs import CartPoleParams, cartpole_step
from forethought.evaluation import one_step_error
from forethought.models import DeterministicEnsemble, ResidualModel


def wrong_simulator(length_error: float, dt: float, substeps: int):
    """Cart-pole step whose pole is ``1 + length_error`` times the true length."""
    params = dataclasses.replace(CartPoleParams(), pole_length=CartPoleParams().pole_length * (1.0 + length_error))
    return lambda obs, action: cartpole_step(obs, action, params, dt, substeps)


def learned(seed: int, max_epochs: int):
    return DeterministicEnsemble(5, 1, ensemble_size=3, hidden_size=64, hidden_layers=2, max_epochs=max_epochs)


def held_out_mse(n: int, length_error: float, seed: int, held_out, max_epochs: int) -> tuple[float, float, float]:
    """(prior alone, from scratch, residual) held-out one-step MSE after ``n`` training transitions."""
    env = envs.make("cartpole-swingup")
    simulator = wrong_simulator(length_error, env.unwrapped.dt, env.unwrapped.substeps)
    train = collect(env, n, seed=seed)
    scratch = learned(seed, max_epochs)
    scratch.fit(train, generator=torch.Generator().manual_seed(seed))
    residual = ResidualModel(simulator, learned(seed, max_epochs))
    residual.fit(train, generator=torch.Generator().manual_seed(seed))
    data = held_out.all()
    with torch.no_grad():
        prior = float(((simulator(data.obs, data.action) - data.next_obs) ** 2).mean())
        return prior, one_step_error(scratch, held_out)["mse"], one_step_error(residual, held_out)["mse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,100,200,400,800,1600,3200")
    parser.add_argument("--length-error", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes = [int(s) for s in args.sizes.split(",")]
    held_out = collect(envs.make("cartpole-swingup"), 2000, seed=args.seed + 999)
    print(f"cart-pole swing-up, prior pole length off by {args.length_error:+.0%}, "
          f"held-out one-step MSE on {len(held_out)} transitions")
    print(f"{'transitions':>11} {'prior alone':>12} {'from scratch':>13} {'residual':>10} {'ratio':>7} {'s':>6}")
    rows = []
    for n in sizes:
        start = time.perf_counter()
        prior, scratch, residual = held_out_mse(n, args.length_error, args.seed, held_out, args.max_epochs)
        rows.append((n, scratch, residual))
        print(f"{n:>11} {prior:>12.3e} {scratch:>13.3e} {residual:>10.3e} {scratch / residual:>7.1f} "
              f"{time.perf_counter() - start:>6.1f}")
    target = rows[-1][1]
    residual_n = next((n for n, _, r in rows if r <= target), None)
    print(f"\nfrom scratch with {rows[-1][0]} transitions: MSE {target:.3e}; the residual model reaches that "
          f"with {residual_n} transitions" + (f" ({rows[-1][0] / residual_n:.0f}x fewer)" if residual_n else ""))


if __name__ == "__main__":
    main()
