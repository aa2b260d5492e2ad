"""Batched ensemble versus a Python loop over separate networks, on a cart-pole-sized problem.

A 5-member probabilistic ensemble with 4 x 200 SiLU layers (the PETS model) maps obs (5) + action
(1) to a Gaussian over the 5-D change of state. Both contenders use the library's own training
step (Adam, per-member gradient clipping, Gaussian NLL):

* batched: one EnsembleDynamicsNetwork with K members ([K, in, out] weights, torch.baddbmm);
* loop:    K single-member networks, each with its own optimiser, called one after another.

Printed: training throughput (member-transitions per second: one member updated on one
transition), prediction throughput (model steps per second: one row predicted by every member),
their batched / loop ratios, and the batched forward pass's GFLOP/s against the machine's measured
float32 matrix-multiply rate. Every figure is the median of ``--repeats`` timed repeats.

    python benchmarks/ensemble_throughput.py [--threads N] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

from forethought.models.ensemble_mlp import EnsembleDynamicsNetwork
from forethought.models.config import TrainConfig
from forethought.models.training import GaussianLoss, train_step

OBS_DIM, ACT_DIM = 5, 1


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int, calls: int = 1) -> dict[str, float]:
    """Median wall time of one call of each function. The functions are timed in turn within each
    repeat (interleaved, so a change in machine load affects all of them alike); each timing
    covers ``calls`` back-to-back calls, after one untimed warm-up call."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_peak_gflops(size: int, repeats: int) -> float:
    """Measured float32 GFLOP/s of a square ``torch.mm`` of side ``size``."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    seconds = median_seconds({"mm": lambda: torch.mm(a, b)}, repeats)["mm"]
    return 2 * size ** 3 / seconds / 1e9


def forward_flops(network: EnsembleDynamicsNetwork, rows: int) -> int:
    """Multiply-add FLOPs of one forward pass over ``rows`` rows per member (activations ignored)."""
    k = network.ensemble_size
    return sum(2 * k * rows * w.shape[1] * w.shape[2] for w in network.body.weights)


def build(members: int, hidden: int, layers: int,
          seed: int) -> tuple[EnsembleDynamicsNetwork, list[EnsembleDynamicsNetwork]]:
    """The batched K-member network and K independent single-member networks."""
    def network(k: int, s: int) -> EnsembleDynamicsNetwork:
        return EnsembleDynamicsNetwork(OBS_DIM + ACT_DIM, OBS_DIM, True, k, hidden, layers,
                                       generator=torch.Generator().manual_seed(s))

    return network(members, seed), [network(1, seed + 1 + k) for k in range(members)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--train-batch", type=int, default=256, help="rows per member per training step")
    parser.add_argument("--train-steps", type=int, default=20, help="training steps per timed repeat")
    parser.add_argument("--predict-batch", type=int, default=10000, help="rows per prediction call")
    parser.add_argument("--small-batch", type=int, default=100, help="rows per call in the small-batch case")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: usable CPU cores)")
    args = parser.parse_args()

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    k, b, steps = args.members, args.train_batch, args.train_steps
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (usable cores {len(os.sched_getaffinity(0))})")
    print(f"ensemble: {k} members, {args.layers} x {args.hidden} SiLU, probabilistic; obs {OBS_DIM}, act {ACT_DIM}")

    # synthetic cart-pole-sized data, already "normalised": inputs [steps, K, B, 6], targets [steps, K, B, 5]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps, k, b, OBS_DIM + ACT_DIM, generator=g)
    y = torch.randn(steps, k, b, OBS_DIM, generator=g)
    train, loss = TrainConfig(), GaussianLoss(TrainConfig().bound_penalty)
    batched, singles = build(k, args.hidden, args.layers, seed=0)
    for net in (batched, *singles):
        net.requires_grad_(True)
    batched_opt = torch.optim.Adam(batched.parameters(), lr=1e-4)
    single_opts = [torch.optim.Adam(net.parameters(), lr=1e-4) for net in singles]

    def train_batched():
        for s in range(steps):
            train_step(batched, batched_opt, x[s], y[s], loss, train.grad_clip)

    def train_loop():
        for s in range(steps):
            for m, (net, opt) in enumerate(zip(singles, single_opts)):
                train_step(net, opt, x[s, m:m + 1], y[s, m:m + 1], loss, train.grad_clip)

    updates = steps * k * b
    train = median_seconds({"batched": train_batched, "loop": train_loop}, args.repeats)
    train_batched_s, train_loop_s = train["batched"], train["loop"]

    for net in (batched, *singles):
        net.requires_grad_(False)
    prediction = {}
    for rows in (args.predict_batch, args.small_batch):
        queries = torch.randn(rows, OBS_DIM + ACT_DIM, generator=g)
        calls = max(1, args.predict_batch // rows)  # similar time per timing for every batch size
        timed = median_seconds({"batched": lambda: batched(queries),
                                "loop": lambda: [net(queries) for net in singles]}, args.repeats, calls)
        prediction[rows] = (timed["batched"], timed["loop"])
    peak = matmul_peak_gflops(args.matmul_size, args.repeats)
    achieved = forward_flops(batched, args.predict_batch) / prediction[args.predict_batch][0] / 1e9

    print(f"\ntraining (batch {b} per member, {steps} steps per repeat, median of {args.repeats})")
    print(f"  batched : {updates / train_batched_s:12,.0f} member-transitions/s")
    print(f"  loop    : {updates / train_loop_s:12,.0f} member-transitions/s")
    print(f"  ratio batched/loop: {train_loop_s / train_batched_s:.2f}x")
    for rows, (batched_s, loop_s) in prediction.items():
        print(f"\nprediction ({rows} rows per call, every member predicts every row, no grad)")
        print(f"  batched : {rows / batched_s:12,.0f} model steps/s")
        print(f"  loop    : {rows / loop_s:12,.0f} model steps/s")
        print(f"  ratio batched/loop: {loop_s / batched_s:.2f}x")
    print(f"\nbatched forward ({args.predict_batch} rows): {achieved:.1f} GFLOP/s; "
          f"float32 torch.mm {args.matmul_size}^2: {peak:.1f} GFLOP/s ({100 * achieved / peak:.0f}% of that peak)")


if __name__ == "__main__":
    main()
