"""forethought compare: algorithms x seeds on one budget, curves, statistics, report."""

import csv
import json

import pytest

from forethought.cli import main
from forethought.experiments.compare import CompareConfig, RunResult, compare, summarize

TINY = ["eval_every=100", "eval_episodes=1", "sac.hidden_size=32", "sac.learning_starts=50", "sac.batch_size=32",
        "pets.model.kind=linear", "pets.planner.horizon=5", "pets.planner.particles=2",
        "pets.planner.settings={population: 40, elites: 4, iterations: 2}"]


def test_compare_writes_curves_report_plot_and_one_run_directory_per_run(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--env", "linear", "--algos", "pets,sac", "--seeds", "2", "--steps", "200",
                 "--target", "-5", "--out", str(out), *TINY])
    assert code == 0
    for name in ("config.yaml", "metrics.csv", "curves.csv", "compare.md", "summary.json", "plots/compare.png"):
        assert (out / name).is_file(), name
    for run in ("pets-seed0", "pets-seed1", "sac-seed0", "sac-seed1"):
        assert (out / "runs" / run / "summary.json").is_file()
    curves = list(csv.DictReader((out / "curves.csv").open()))
    sac_points = [r for r in curves if r["algo"] == "sac" and r["seed"] == "0"]
    assert [int(r["env_steps"]) for r in sac_points] == [100, 200]  # one evaluation per eval_every
    pets_points = [r for r in curves if r["algo"] == "pets" and r["seed"] == "1"]
    assert [int(r["env_steps"]) for r in pets_points] == [50, 100, 150, 200]  # four 50-step trials
    summary = json.loads((out / "summary.json").read_text())
    pets = summary["algos"]["pets"]
    assert pets["seeds"] == 2 and len(pets["steps_to_target"]) == 2
    assert pets["final_low"] <= pets["final_iqm"] <= pets["final_high"]
    best = summary["most_efficient"]
    assert summary["algos"][best]["steps_ratio_to_best"]["point"] == 1.0
    report = (out / "compare.md").read_text()
    assert "| pets |" in report and "| sac |" in report and "steps vs" in report
    assert "final return" in capsys.readouterr().out


def test_summary_counts_runs_that_never_reach_the_target_as_their_budget():
    config = CompareConfig(algos=["pets", "sac"], seeds=2, steps=1000, target=0.0)
    results = [RunResult("pets", 0, [100, 200], [-1.0, 1.0], 1.0, ""),
               RunResult("pets", 1, [100, 300], [-1.0, 2.0], 1.0, ""),
               RunResult("sac", 0, [500, 1000], [-3.0, 0.5], 1.0, ""),
               RunResult("sac", 1, [500, 1000], [-3.0, -1.0], 1.0, "")]
    table = summarize(results, config)["algos"]
    assert table["pets"]["steps_to_target"] == [200, 300]
    assert table["sac"]["steps_to_target"] == [1000, None]
    assert table["sac"]["steps_to_target_bounded"] == [1000, 1000]
    assert table["sac"]["steps_ratio_to_best"]["point"] == pytest.approx(1000 / 250)


def test_bad_compare_settings_are_rejected():
    with pytest.raises(ValueError, match="algos"):
        CompareConfig(algos=["pets", "ppo"])
    with pytest.raises(ValueError, match="algos"):
        CompareConfig(algos=["sac", "sac"])
    with pytest.raises(ValueError, match="workers"):
        CompareConfig(workers=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        CompareConfig(backend="slurm")


def test_parallel_workers_give_every_run(tmp_path):
    config = CompareConfig(env="linear", algos=["pets"], seeds=2, steps=100, workers=2, out=str(tmp_path / "p"))
    config.pets.model.kind = "linear"
    config.pets.planner.settings = {"population": 20, "elites": 4, "iterations": 1}
    summary = compare(config)
    assert summary["algos"]["pets"]["seeds"] == 2
    assert sorted(p.name for p in (tmp_path / "p" / "runs").iterdir()) == ["pets-seed0", "pets-seed1"]


def test_compare_pushes_every_final_agent_and_reports_recovery(tmp_path):
    config = CompareConfig(env="linear", algos=["pets", "sac"], seeds=1, steps=100, eval_every=100, eval_episodes=1,
                           push_at=20, push_velocity=[1.0], push_episodes=2, out=str(tmp_path / "push"))
    config.pets.model.kind = "linear"
    config.pets.planner.settings = {"population": 30, "elites": 4, "iterations": 2}
    config.pets.planner.particles = 2
    config.sac.hidden_size, config.sac.learning_starts, config.sac.batch_size = 16, 50, 16
    summary = compare(config)
    for algo in ("pets", "sac"):
        row = summary["algos"][algo]
        assert row["pushes"] == 2 and row["pushes_survived"] == 2  # the linear system never terminates
    # PETS with the learned linear model cancels the push within a few steps
    assert summary["algos"]["pets"]["pushes_recovered"] == 2 and summary["algos"]["pets"]["median_recovery_steps"] <= 5
    assert "median steps to recover" in (tmp_path / "push" / "compare.md").read_text()
    with pytest.raises(ValueError, match="push_at and push_velocity go together"):
        CompareConfig(push_at=10)


def test_runs_on_ray_give_the_curves_of_runs_in_this_process(tmp_path):
    pytest.importorskip("ray")
    curves = {}
    for backend in ("sequential", "ray"):
        config = CompareConfig(env="linear", algos=["pets"], seeds=2, steps=100, backend=backend, workers=2,
                               out=str(tmp_path / backend))
        config.pets.model.kind = "linear"
        config.pets.planner.settings = {"population": 20, "elites": 4, "iterations": 1}
        compare(config)
        curves[backend] = (tmp_path / backend / "curves.csv").read_text()
    assert curves["ray"] == curves["sequential"] and curves["ray"].count("\n") == 1 + 2 * 2  # two 50-step trials each
