"""``forethought evaluate``: a saved agent played from the run's own evaluation starts, more
episodes than the run played, nothing written; bad input refused with a clear message."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from forethought.cli import main
from forethought.experiments import evaluate as evaluate_module
from forethought.experiments.evaluate import evaluate_run
from forethought.seeding import derive_seed
from forethought.serialization import CheckpointError

RUN_ARGS = ["run", "pets", "--env", "linear", "--trials", "3", "--seed", "4", "oracle_episodes=0", "video=false",
            "eval_every=50", "eval_episodes=2", "agent.model.ensemble_size=2", "agent.model.hidden_size=16",
            "agent.train.max_epochs=30", "agent.planner.horizon=5", "agent.planner.particles=2",
            "agent.planner.settings={population: 40, elites: 5, iterations: 2}"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evaluate") / "run"
    assert main([*RUN_ARGS, "--out", str(out)]) == 0
    return out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_plays_the_saved_agent_from_the_runs_evaluation_starts_and_writes_nothing(run_dir, monkeypatch):
    before = digests(run_dir)
    seeds = []
    played = evaluate_module.episode_returns

    def recording(env, policy, episode_seeds, **kwargs):
        seeds.extend(episode_seeds)
        return played(env, policy, episode_seeds, **kwargs)

    monkeypatch.setattr(evaluate_module, "episode_returns", recording)
    heard = []
    result = evaluate_run(run_dir, 4, on_episode=lambda k, r: heard.append((k, r)))
    assert seeds == [derive_seed(4, "eval", k) for k in range(4)]  # the run's own evaluation starts, then more
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["env_steps"] == summary["env_steps"] == 150 and result["algo"] == "pets" and result["seed"] == 4
    assert len(result["returns"]) == 4 and heard == list(enumerate(result["returns"]))
    assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    assert result["std_return"] == pytest.approx(np.std(result["returns"]))
    # the saved agent plans: a tenth of the cost of the random agent the run evaluated after its first trial
    with (run_dir / "metrics.csv").open() as handle:
        random_eval = float(next(csv.DictReader(handle))["eval_return"])
    assert random_eval < -10 and result["mean_return"] > random_eval / 10
    assert digests(run_dir) == before


def test_the_same_checkpoint_plays_the_same_returns(run_dir):
    assert evaluate_run(run_dir, 2)["returns"] == evaluate_run(run_dir, 2)["returns"]


def test_cli_prints_each_episode_and_the_mean(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "episode 2: return" in out and "mean return" in out and "over 3 episodes" in out
    assert "pets on linear after 150 environment steps" in out


def test_bad_input_is_refused_with_a_clear_message(run_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="episodes must be an integer >= 1, got 0"):
        evaluate_run(run_dir, 0)
    assert main(["evaluate", str(tmp_path), "--episodes", "2"]) == 2
    assert "forethought evaluate: error:" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir), "agent.planner.horizon=3"]) == 2
    assert "evaluate takes no config overrides" in capsys.readouterr().err


def test_a_run_without_a_checkpoint_is_refused(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "run.json"):
        (bare / name).write_bytes((run_dir / name).read_bytes())
    with pytest.raises(CheckpointError, match="no usable agent checkpoint"):
        evaluate_run(bare, 1)


def test_a_module_id_read_back_is_imported_only_when_named_again(run_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "run.json"):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["env"] = "some_module:Thing-v0"
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="pass --env some_module:Thing-v0"):
        evaluate_run(copy, 1)
