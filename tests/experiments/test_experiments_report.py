"""forethought report: run directories read back, grouped over seeds, written as Markdown and HTML."""

import csv
import json

import pytest
import yaml

from forethought.experiments.report import build_report, find_run_dirs, load_run


def fake_policy_run(path, algo: str, seed: int, returns: list[float]) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"env": "Pendulum-v1", "seed": seed, "agent": {}}))
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["env_steps", "eval_return", "train_return", "episodes", "wall_s"])
        writer.writeheader()
        for i, value in enumerate(returns):
            writer.writerow({"env_steps": 500 * (i + 1), "eval_return": value, "train_return": "", "episodes": i,
                             "wall_s": 1.0})
    (path / "summary.json").write_text(json.dumps({"algo": algo, "env": "Pendulum-v1"}))
    (path / "plots").mkdir()
    (path / "plots" / "learning_curve.png").write_bytes(b"png")


def test_runs_are_grouped_over_seeds_with_iqm_and_interval(tmp_path):
    for seed, final in enumerate([-150.0, -180.0, -400.0]):
        fake_policy_run(tmp_path / f"sac-{seed}", "sac", seed, [-1200.0, -600.0, final])
    fake_policy_run(tmp_path / "mbpo-0", "mbpo", 0, [-900.0, -140.0])
    report = build_report([tmp_path / f"sac-{s}" for s in range(3)] + [tmp_path / "mbpo-0"], tmp_path / "out")
    assert {key: len(runs) for key, runs in report.groups.items()} == {("Pendulum-v1", "sac"): 3, ("Pendulum-v1", "mbpo"): 1}
    text = report.markdown_path.read_text()
    # with three seeds the interquartile mean trims nothing (scipy trims int(0.25 * 3) = 0 per end): the mean
    assert "| Pendulum-v1 | sac | 3 | 1500 | -243.3 [" in text and "| Pendulum-v1 | mbpo | 1 | 1000 | -140 | -140 |" in text
    assert "![Pendulum-v1](plots/curves_Pendulum-v1.png)" in text and (tmp_path / "out/plots/curves_Pendulum-v1.png").is_file()
    assert "[plots/learning_curve.png](../sac-0/plots/learning_curve.png)" in text
    html = report.html_path.read_text()
    assert "<table>" in html and "<img" in html


def test_fit_model_runs_report_their_diagnostics(tmp_path):
    from forethought.cli import main

    out = tmp_path / "fit"
    assert main(["fit-model", "--env", "linear", "--model", "linear", "--steps", "300", "--out", str(out), "--quiet"]) == 0
    record = load_run(out)
    assert record.kind == "fit-model" and record.algo == "fit-model (linear)" and not record.returns
    text = build_report([out], tmp_path / "report").markdown_path.read_text()
    assert "one-step MSE" in text and "open-loop MSE at 1 /" in text and "coverage 1sigma" in text


def test_cli_expands_a_compare_folder_and_rejects_non_runs(tmp_path, capsys):
    from forethought.cli import main

    fake_policy_run(tmp_path / "cmp" / "runs" / "sac-seed0", "sac", 0, [-300.0])
    fake_policy_run(tmp_path / "cmp" / "runs" / "sac-seed1", "sac", 1, [-200.0])
    assert main(["report", str(tmp_path / "cmp"), "--out", str(tmp_path / "rep")]) == 0
    assert "2 runs in 1 groups" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "rep2")]) == 2
    assert "not a run directory: config.yaml and metrics.csv missing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one"):
        build_report([], tmp_path / "x")


def fake_pets_run(path, seed: int, returns: list[float]) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"env": "Pendulum-v1", "seed": seed, "trials": len(returns)}))
    (path / "run.json").write_text(json.dumps({"command": "run pets", "version": "0.1.0"}))
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["trial", "env_steps", "return", "wall_s"])
        writer.writeheader()
        for i, value in enumerate(returns):
            writer.writerow({"trial": i + 1, "env_steps": 200 * (i + 1), "return": value, "wall_s": 1.0})
    (path / "summary.json").write_text(json.dumps({"env": "Pendulum-v1", "trials": len(returns)}))


def fake_compare_folder(path) -> None:
    """What ``forethought compare`` writes: a run directory of its own (its metrics one row per
    run, which no single run has) with its tables, and one run directory per algorithm and seed."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"env": "Pendulum-v1", "algos": ["pets", "sac"], "seeds": 2}))
    (path / "run.json").write_text(json.dumps({"command": "compare", "version": "0.1.0"}))
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["algo", "seed", "final_return"])
        writer.writeheader()
        writer.writerow({"algo": "sac", "seed": 0, "final_return": -300.0})
    (path / "summary.json").write_text(json.dumps({"env": "Pendulum-v1", "algos": {}}))
    (path / "compare.md").write_text("| algorithm |\n")
    (path / "curves.csv").write_text("algo,seed,env_steps,return\n")
    (path / "plots").mkdir()
    (path / "plots" / "compare.png").write_bytes(b"png")
    for seed in range(2):
        fake_policy_run(path / "runs" / f"sac-seed{seed}", "sac", seed, [-900.0, -300.0 + seed])
        fake_pets_run(path / "runs" / f"pets-seed{seed}", seed, [-1000.0, -200.0 - seed])


def test_a_compare_folder_stands_for_its_runs(tmp_path):
    fake_compare_folder(tmp_path / "cmp")
    assert find_run_dirs(tmp_path / "cmp") == [tmp_path / "cmp" / "runs" / name
                                               for name in ("pets-seed0", "pets-seed1", "sac-seed0", "sac-seed1")]
    report = build_report([tmp_path / "cmp"], tmp_path / "rep")
    assert len(report.runs) == 4
    assert {key: len(runs) for key, runs in report.groups.items()} == {("Pendulum-v1", "pets"): 2,
                                                                       ("Pendulum-v1", "sac"): 2}
    text = report.markdown_path.read_text()
    assert "Study [" in text and "4 run(s) · [compare.md](../cmp/compare.md) · [curves.csv](../cmp/curves.csv)" in text
    # a run directory named beside its study is read once
    assert len(build_report([tmp_path / "cmp", tmp_path / "cmp" / "runs" / "sac-seed0"], tmp_path / "rep2").runs) == 4


def test_a_folder_of_run_directories_and_a_sweep_folder(tmp_path):
    fake_policy_run(tmp_path / "mine" / "sac-a", "sac", 0, [-300.0])
    fake_pets_run(tmp_path / "mine" / "pets-a", 0, [-250.0])
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    assert [p.name for p in find_run_dirs(tmp_path / "mine")] == ["pets-a", "sac-a"]
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.yaml").write_text("command: sac\n")
    (tmp_path / "sweep" / "runs.csv").write_text("name\n")
    fake_policy_run(tmp_path / "sweep" / "runs" / "lr=0.001-seed0", "sac", 0, [-300.0])
    report = build_report([tmp_path / "sweep"], tmp_path / "rep")
    assert [r.path.name for r in report.runs] == ["lr=0.001-seed0"] and "[runs.csv]" in report.markdown_path.read_text()
    assert find_run_dirs(tmp_path / "mine" / "sac-a") == [tmp_path / "mine" / "sac-a"]


def test_a_study_without_runs_is_refused(tmp_path):
    (tmp_path / "cmp" / "runs").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"cmp holds no run directories"):
        build_report([tmp_path / "cmp"], tmp_path / "rep")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a run directory: config.yaml and metrics.csv missing"):
        build_report([tmp_path / "plain"], tmp_path / "rep")
