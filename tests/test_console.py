"""make_console: one unwrapped, uncoloured line per record into a file or pipe; rich as usual on a terminal."""

import io

import pytest
from rich.table import Table

from forethought.console import make_console


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_forced_terminal(monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


LINE = "[bold]trial 12[/bold]: return -123.4, model loss 0.0213, " + "planner " * 30 + "path /runs/pets/checkpoints"


def test_a_file_gets_one_plain_line_per_print():
    out = io.StringIO()
    console = make_console(out)
    console.print(LINE)
    console.print("[red]evaluation 3[/red]: 5.0")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and len(lines[0]) > 200
    assert "\x1b[" not in out.getvalue() and lines[0].startswith("trial 12: return -123.4")
    table = Table("algorithm", *(f"column {i}" for i in range(20)))
    table.add_row("pets", *(f"{i:.3f}" for i in range(20)))
    console.print(table)
    assert all(len(line) < 400 for line in out.getvalue().splitlines()[2:])  # laid out whole, not padded


def test_stdout_is_used_when_no_file_is_given(capsys):
    make_console().print(LINE)
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_a_terminal_behaves_as_usual():
    out = FakeTerminal()
    console = make_console(out)
    assert console.is_terminal and console.width == 80
    console.print(LINE)
    text = out.getvalue()
    assert "\x1b[" in text and len(text.splitlines()) > 1  # styled and wrapped at the terminal's width
