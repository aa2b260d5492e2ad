"""What the ``forethought`` command prints: one line per metrics row, the closing summary line,
and the fit-model table."""

from __future__ import annotations

from typing import Any

from rich.table import Table

SHOWN_FIRST = ("episode", "env_steps", "return", "eval_return")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e5 else f"{value:.2f}"


def row_line(row: dict[str, Any]) -> str:
    """One metrics row as one line: the shared columns first, then every figure it has."""
    parts = []
    if row.get("episode") is not None:
        parts.append(f"episode {row['episode']:4d}")
    else:
        parts.append("final evaluation")
    parts.append(f"env steps {row['env_steps']:7d}")
    for key in ("return", "eval_return"):
        if row.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {row[key]:9.2f}")
    for key, value in row.items():
        if key not in SHOWN_FIRST and key != "wall_s" and value is not None:
            parts.append(f"{key} {_number(value)}")
    parts.append(f"elapsed {row['wall_s']:7.1f} s")
    return "  ".join(parts)


def summary_line(summary: dict[str, Any]) -> str:
    """What ``forethought run`` prints when the run ends."""
    curve = "eval return" if summary["learning_curve"] == "eval_return" else "return"
    line = f"best {curve} {summary['best_return']:.2f}, final {summary['final_return']:.2f}"
    if summary["oracle_return"] is not None:
        line += f", oracle planner {summary['oracle_return']:.2f}"
    if summary["target_return"] is not None:
        reached = summary["steps_to_target"]
        source = summary["target_source"] or "target"
        line += (f"; target {summary['target_return']:.2f} ({source}) "
                 + ("not reached" if reached is None else f"reached after {reached} env steps"))
    return line + f"; {summary['s_per_1000_env_steps']:.1f} s per 1000 env steps"


def fit_summary_table(summary: dict, config: Any) -> Table:
    """The held-out figures of a fitted model beside the constant-delta baseline's."""
    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    table = Table(title=f"{summary['model']} model of {summary['env']}: "
                        f"{summary['train_transitions']} training / {summary['held_out_transitions']} held-out transitions")
    table.add_column("held-out figure")
    table.add_column("model", justify="right")
    table.add_column("constant-delta baseline", justify="right")
    h = config.horizon
    table.add_row("one-step MSE", fmt(summary["one_step_mse"]), fmt(summary["baseline_one_step_mse"]))
    table.add_row(f"{h}-step open-loop MSE", fmt(summary[f"{h}_step_mse"]), fmt(summary[f"baseline_{h}_step_mse"]))
    table.add_row("one-step NLL", fmt(summary["one_step_nll"]), "")
    table.add_row("inside 1-sigma (ideal 0.683)", fmt(summary["coverage_1sigma"]), "")
    table.add_row("inside 2-sigma (ideal 0.954)", fmt(summary["coverage_2sigma"]), "")
    table.add_row("rank corr. disagreement vs error", fmt(summary["disagreement_error_spearman"]), "")
    return table
