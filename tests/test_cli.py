import csv
import json

import numpy as np
import pytest
import yaml

from forethought.cli import main
from forethought.cli.printing import row_line, summary_line
from forethought.models import DynamicsModel


def test_fit_model_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fit-model", "--env", "pendulum-swingup", "--model", "de", "--steps", "600", "--out", str(out),
                 "--quiet", "eval_steps=200", "model.ensemble_size=3", "model.hidden_size=32",
                 "model.hidden_layers=2", "train.max_epochs=15", "horizon=5"])
    assert code == 0
    for name in ("config.yaml", "metrics.csv", "summary.json", "data.npz", "checkpoints/model.safetensors",
                 "checkpoints/model.json", "plots/compounding_error.png", "plots/predicted_trajectories.png"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["kind"] == "de" and config["model"]["ensemble_size"] == 3 and config["horizon"] == 5
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) >= 1 and set(rows[0]) == {"epoch", "train_loss", "val_loss"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_transitions"] == 600 and summary["held_out_transitions"] == 200
    assert len(summary["rollout_mse_by_horizon"]) == 5
    assert summary["one_step_mse"] < summary["baseline_one_step_mse"]
    model = DynamicsModel.load(out / "checkpoints" / "model")
    assert model.obs_dim == 3 and model.act_dim == 1
    assert "one-step MSE" in capsys.readouterr().out


def test_fit_model_from_logged_data(tmp_path):
    first = tmp_path / "first"
    assert main(["fit-model", "--env", "linear", "--model", "linear", "--steps", "300", "--out", str(first),
                 "--quiet"]) == 0
    second = tmp_path / "second"
    assert main(["fit-model", "--data", str(first / "data.npz"), "--model", "linear", "--out", str(second),
                 "--quiet"]) == 0
    summary = json.loads((second / "summary.json").read_text())
    assert summary["train_transitions"] + summary["held_out_transitions"] == 300


def test_fit_model_collects_from_copies_of_the_environment(tmp_path):
    out = tmp_path / "vector"
    assert main(["fit-model", "--env", "pendulum-swingup", "--model", "linear", "--steps", "300", "--out", str(out),
                 "--quiet", "num_envs=3", "eval_steps=90"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["held_out_transitions"] == 90 and summary["one_step_mse"] < summary["baseline_one_step_mse"]
    data = np.load(out / "data.npz")
    assert len(data["obs"]) == 300 and data["truncated"][[99, 199, 299]].all()  # each copy's rows end its episode


@pytest.mark.parametrize("args, message", [
    (["model.kind=xyz"], "model.kind must be one of"),
    (["train.lr=fast"], "train.lr must be a number"),
    (["colour=blue"], "unknown config key colour"),
    (["--data", "does-not-exist.npz"], "does not exist"),
])
def test_fit_model_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    assert main(["fit-model", "--out", str(tmp_path / "x"), "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


def test_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["fit-model", "--env", "linear", "--model", "linear", "--steps", "100", "eval_steps=50",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "fit-model" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fit-model", "--help"])
    text = capsys.readouterr().out
    assert "key.sub=value" in text and "--steps" in text


def test_compare_models_scores_every_kind_on_the_same_data(tmp_path):
    out = tmp_path / "compare"
    assert main(["compare-models", "--env", "linear", "--models", "linear,d", "--steps", "400", "--out", str(out),
                 "--quiet", "eval_steps=200", "model.hidden_size=16", "model.hidden_layers=1",
                 "train.max_epochs=5", "horizon=5"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["model"] for row in rows] == ["linear", "d", "constant"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"linear", "d", "constant"}
    # the linear system is learned almost exactly by the linear model, far better than the baseline
    assert summary["models"]["linear"]["one_step_mse"] * 100 < summary["models"]["constant"]["one_step_mse"]
    assert "| linear |" in (out / "comparison.md").read_text()
    for name in ("linear", "d", "constant"):
        assert (out / "checkpoints" / f"{name}.safetensors").is_file()
    assert (out / "plots" / "compounding_error.png").is_file()


def test_compare_models_rejects_unknown_kinds(tmp_path, capsys):
    assert main(["compare-models", "--models", "linear,xyz", "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "models must be a non-empty list drawn from" in capsys.readouterr().err


SMALL_PETS = ["agent.model.ensemble_size=3", "agent.model.hidden_size=32", "agent.model.hidden_layers=2",
              "agent.planner.horizon=6", "agent.planner.particles=4",
              "agent.planner.settings={population: 60, elites: 6, iterations: 3}"]


def test_run_pets_prints_a_line_per_trial_and_writes_the_run(tmp_path, capsys):
    out = tmp_path / "pets"
    assert main(["run", "pets", "--env", "linear", "--trials", "2", "--out", str(out), *SMALL_PETS]) == 0
    printed = capsys.readouterr().out
    assert printed.count("episode ") >= 2 and "plan_ms_per_step" in printed
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["episode"]) for r in rows] == [0, 1]
    assert list(rows[0])[:5] == ["episode", "env_steps", "return", "eval_return", "wall_s"]
    assert {"model_val_loss", "model_diverged", "plan_ms_per_step"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["learning_curve"] == "return" and summary["target_source"] == "0.9 of the oracle's return"
    assert summary["best_return"] == max(float(r["return"]) for r in rows)
    assert (out / "plots" / "learning_curve.png").is_file()
    assert (out / "checkpoints" / "agent" / "state.json").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["episodes"] == 2 and config["agent"]["planner"]["horizon"] == 6


def test_run_pets_films_the_last_trial(tmp_path):
    out = tmp_path / "pets"
    assert main(["run", "pets", "--env", "pendulum-swingup", "--trials", "1", "--out", str(out),
                 "oracle_episodes=0"]) == 0
    import imageio.v3 as iio

    frames = iio.imread(out / "videos" / "last_episode.gif")
    assert frames.shape[0] == 201 and frames.shape[-1] == 3  # reset frame + 200 steps
    assert json.loads((out / "summary.json").read_text())["oracle_return"] is None


@pytest.mark.parametrize("setting, message", [
    ("agent.planner.propagation=sideways", "propagation"),
    ("agent.planner.horizon=0", "planner.horizon must be"),
    ("agent.planner.exploration_bonus=-1", "planner.exploration_bonus must be a finite number >= 0"),
    ("agent.planner.exploration_anneal_steps=0", "planner.exploration_anneal_steps must be None"),
    ("agent.planner.horizon_threshold=0", "planner.horizon_threshold must be a finite number > 0"),
    ("agent.planner.horizon_bounds=[9,3]", "planner.horizon_bounds must be [low, high]"),
    ("agent.planner.disagreement_dims=[5]", "agent.planner.disagreement_dims must be None"),
    ("agent.planner.particles=0", "particles"),
    ("seed=-1", "seed must be an integer >= 0"),
    ("episodes=0", "episodes must be >= 1"),
    ("eval_episodes=0", "eval_episodes must be >= 1"),
    ("agent.state_cost={7: 1.0}", "state_cost"),
    ("env_kwargs={colour: red}", "colour"),
])
def test_run_bad_settings_are_named_and_nothing_is_written(tmp_path, capsys, setting, message):
    out = tmp_path / "p"
    assert main(["run", "pets", "--env", "linear", "--out", str(out), setting]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_run_seed_flag_is_checked_before_anything_is_written(tmp_path, capsys):
    assert main(["run", "sac", "--seed", "-1", "--out", str(tmp_path / "s")]) == 2
    assert "seed must be an integer >= 0" in capsys.readouterr().err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("algo", ["sac", "mbpo"])
def test_run_policy_learner_writes_the_run(tmp_path, capsys, algo):
    out = tmp_path / algo
    small = ["agent.hidden_size=16", "agent.learning_starts=40"] if algo == "sac" else [
        "agent.sac.hidden_size=16", "agent.sac.learning_starts=40", "agent.model.ensemble_size=2",
        "agent.model.hidden_size=16", "agent.model.hidden_layers=1", "agent.train.max_epochs=2",
        "agent.rollout_starts=20", "agent.policy_updates=1"]
    assert main(["run", algo, "--env", "Pendulum-v1", "--steps", "300", "--out", str(out), "eval_every=150",
                 "eval_episodes=1", "target=-100000", *small]) == 0
    printed = capsys.readouterr().out
    assert "reached after 200 env steps" in printed and "final evaluation" in printed
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    # one row per 200-step episode (evaluated: it crossed 150), then the final evaluation at 300
    assert [(r["episode"], int(r["env_steps"])) for r in rows] == [("0", 200), ("", 300)]
    assert all(r["eval_return"] != "" for r in rows)
    assert ("model_val_loss" in rows[0]) == (algo == "mbpo")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_to_target"] == 200 and summary["best_return"] == max(float(r["eval_return"]) for r in rows)
    assert summary["learning_curve"] == "eval_return" and summary["env_steps"] == 300
    assert (out / "plots" / "learning_curve.png").is_file()
    assert (out / "checkpoints" / "agent" / "state.json").is_file()


def test_ablate_runs_the_grid_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "ablate"
    assert main(["ablate", "--env", "linear", "--models", "d,pe", "--propagation", "tsinf,expectation",
                 "--seeds", "2", "--trials", "2", "--out", str(out), "backend=sequential", *SMALL_PETS]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2 * 2 * 2 * 2  # variants x seeds x trials
    assert {r["variant"] for r in rows} == {"d-tsinf", "d-expectation", "pe-tsinf", "pe-expectation"}
    table = (out / "ablation.md").read_text()
    assert "| pe-tsinf |" in table and "±" in table
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"d-tsinf", "d-expectation", "pe-tsinf", "pe-expectation"}
    assert (out / "plots" / "return_vs_trial.png").is_file()
    assert "pe-expectation" in capsys.readouterr().out
    run = out / "runs" / "pe-tsinf-seed1"  # every run is a run pets directory of its own
    assert json.loads((run / "summary.json").read_text())["episodes"] == 2 and (run / "checkpoints" / "agent").is_dir()


def test_ablate_rejects_unknown_variants(tmp_path, capsys):
    assert main(["ablate", "--models", "d,q", "--out", str(tmp_path / "a")]) == 2
    assert "models must be a non-empty list drawn from" in capsys.readouterr().err
    assert main(["ablate", "--propagation", "ts2", "--out", str(tmp_path / "b")]) == 2
    assert "propagations must be a non-empty list drawn from" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["planet", "dreamer"])
def test_run_latent_agent_from_pixels_writes_the_run(tmp_path, capsys, algo):
    out = tmp_path / algo
    code = main(["run", algo, "--pixels", "--env", "pendulum-swingup", "--steps", "60", "--out", str(out),
                 "agent.model.image_size=16", "action_repeat=2", "env_kwargs={max_episode_steps: 20}",
                 "eval_every=40", "oracle_episodes=0", "open_loop_context=3", "open_loop_length=8",
                 "agent.model.depth=4", "agent.model.deter_size=16", "agent.model.stoch=4",
                 "agent.model.hidden_size=16", "agent.seed_episodes=1", "agent.train_steps=2", "agent.batch_size=2",
                 "agent.sequence_length=5",
                 "agent.settings={population: 16, elites: 4, iterations: 2}" if algo == "planet"
                 else "agent.imagination_horizon=3"])
    assert code == 0
    for name in ("config.yaml", "metrics.csv", "summary.json", "plots/learning_curve.png", "plots/open_loop.png",
                 "plots/reward_error.png", "videos/open_loop.gif", "videos/last_episode.gif",
                 "checkpoints/agent/world_model.safetensors", "checkpoints/agent/buffer.npz"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["env_steps"]) for r in rows] == [20, 40, 60]
    assert [r["eval_return"] != "" for r in rows] == [False, True, True]  # at 40 and at the end
    assert rows[0]["reconstruction"] != ""  # one seed episode, trained on at once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 60 and summary["world_model_updates"] == 6
    assert len(summary["held_out_reward_abs_error_by_horizon"]) == 5 and summary["imagined_steps_per_s"] > 0
    assert "episode    2" in capsys.readouterr().out


def test_pixels_is_only_for_the_latent_agents(tmp_path, capsys):
    assert main(["run", "sac", "--pixels", "--out", str(tmp_path / "x")]) == 2
    assert "--pixels is for planet and dreamer" in capsys.readouterr().err


def test_resume_refuses_an_edited_config_and_a_module_env_id(tmp_path, capsys):
    out = tmp_path / "pets"
    assert main(["run", "pets", "--env", "linear", "--trials", "1", "--out", str(out), *SMALL_PETS]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["agent"]["planner"]["horizon"] = 9
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["resume", str(out)]) == 2
    assert "agent.planner.horizon: 6 -> 9" in capsys.readouterr().err
    config["agent"]["planner"]["horizon"], config["episodes"] = 6, 2  # a bigger budget is a safe edit
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["resume", str(out)]) == 0
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 2
    config["env"] = "os:linear"
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["resume", str(out)]) == 2
    assert "pass --env os:linear explicitly" in capsys.readouterr().err


def test_output_to_a_pipe_keeps_one_line_per_episode(tmp_path, capsys):
    row = {"episode": 3, "env_steps": 1000, "return": 12.5, "eval_return": None, "wall_s": 3.0,
           **{f"figure_{i}": 0.123 for i in range(12)}}
    line = row_line(row)
    assert "\n" not in line and len(line) > 80 and line.startswith("episode    3")
    from forethought.console import make_console
    import io
    stream = io.StringIO()
    make_console(stream).print(line)
    assert stream.getvalue() == line + "\n"


def test_summary_lines_say_when_a_target_was_not_reached():
    summary = {"learning_curve": "eval_return", "best_return": -150.0, "final_return": -160.0, "oracle_return": None,
               "target_return": -100.0, "target_source": "target", "steps_to_target": None,
               "s_per_1000_env_steps": 12.2}
    assert "target -100.00 (target) not reached" in summary_line(summary) and "None" not in summary_line(summary)
    reached = {**summary, "steps_to_target": 4000, "oracle_return": -90.0, "target_source": "0.9 of the oracle's return"}
    assert "reached after 4000 env steps" in summary_line(reached) and "oracle planner -90.00" in summary_line(reached)


def test_a_run_whose_model_never_trained_stops_with_an_error(tmp_path, capsys):
    out = tmp_path / "pets"
    args = ["run", "pets", "--env", "linear", "--trials", "3", *SMALL_PETS, "agent.train.lr=1e30"]
    assert main([*args, "--out", str(out)]) == 2
    assert "model training diverged (non-finite loss)" in capsys.readouterr().err
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows[-1]["model_diverged"] == "True"  # the metrics row records it
    assert main([*args, "--out", str(tmp_path / "on"), "continue_untrained=true"]) == 0
    assert "warning: model training diverged" in capsys.readouterr().out
