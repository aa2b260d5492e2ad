"""Transfer between variants of a system: a model of the cart-pole with one pole length, fine-tuned
on a few transitions of a cart-pole with another, against a model trained on those transitions
from scratch. Prints held-out one-step MSE (on the new variant) per number of new transitions and
mode, and writes the curves to ``OUT/transfer.png``.

    python benchmarks/transfer.py [--source-length 0.6] [--target-length 0.9] [--out runs/transfer]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from forethought import envs
from forethought.data import collect
from forethought.envs import CartPoleParams
from forethought.evaluation import one_step_error
from forethought.evaluation.plots import save_figure
from forethought.models import ProbabilisticEnsemble
from forethought.models.transfer import FINE_TUNE_MODES, fine_tune

MODEL = dict(ensemble_size=5, hidden_size=200, hidden_layers=3)
SMALL_DATA_TRAINING = dict(max_epochs=300, patience=30, batch_size=32, min_epoch_batches=10)


def variant(pole_length: float):
    return envs.make("cartpole-swingup", params=CartPoleParams(pole_length=pole_length))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-length", type=float, default=0.6)
    parser.add_argument("--target-length", type=float, default=0.9)
    parser.add_argument("--source-steps", type=int, default=3000)
    parser.add_argument("--sizes", default="25,50,100,200,400")
    parser.add_argument("--out", default="runs/transfer")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = ProbabilisticEnsemble(5, 1, **MODEL, max_epochs=100, patience=10)
    source.fit(collect(variant(args.source_length), args.source_steps, seed=0), generator=torch.Generator().manual_seed(0))
    target_env = variant(args.target_length)
    held_out = collect(target_env, 1000, seed=99)
    pool = collect(target_env, max(int(s) for s in args.sizes.split(",")), seed=1).all()
    print(f"source model: pole {args.source_length} m, {args.source_steps} random transitions; target pole "
          f"{args.target_length} m; held-out one-step MSE on 1000 target transitions")
    print(f"  source model as it is: {one_step_error(source, held_out)['mse']:.4g}")
    sizes = [int(s) for s in args.sizes.split(",")]
    curves: dict[str, list[float]] = {name: [] for name in ("scratch", *FINE_TUNE_MODES)}
    for n in sizes:
        few = pool[torch.arange(n)]
        scratch = ProbabilisticEnsemble(5, 1, **MODEL, **SMALL_DATA_TRAINING)
        scratch.fit(few, generator=torch.Generator().manual_seed(0))
        curves["scratch"].append(one_step_error(scratch, held_out)["mse"])
        for mode in FINE_TUNE_MODES:
            model = copy.deepcopy(source)
            fine_tune(model, few, mode=mode, frozen_layers=2, **({} if mode == "normalizer" else SMALL_DATA_TRAINING))
            curves[mode].append(one_step_error(model, held_out)["mse"])
        print(f"  {n:4d} new transitions: " + ", ".join(f"{name} {values[-1]:.4g}" for name, values in curves.items()),
              flush=True)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(sizes, values, marker="o", label=name, linestyle="--" if name == "scratch" else "-")
    ax.axhline(one_step_error(source, held_out)["mse"], color="k", linewidth=1, label="source model, unchanged")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("transitions of the new cart-pole")
    ax.set_ylabel("held-out one-step MSE")
    ax.set_title(f"pole {args.source_length} m -> {args.target_length} m")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = save_figure(fig, Path(args.out) / "transfer.png", dpi=100)
    ratios = np.asarray(curves["scratch"]) / np.minimum.reduce([np.asarray(curves[m]) for m in FINE_TUNE_MODES])
    print(f"scratch error / best fine-tuned error: {', '.join(f'{r:.1f}x' for r in ratios)} at {sizes}; plot {path}")


if __name__ == "__main__":
    main()
