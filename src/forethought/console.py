"""The console the commands print to: rich on a terminal, plain one-line-per-record text otherwise.

    console = make_console()
    console.print(f"trial {k}: return {value:.1f}")
"""

from __future__ import annotations

from typing import IO

from rich.console import Console

# Wide enough that a table of many columns is laid out whole; plain text is never wrapped.
FILE_WIDTH = 10_000


def make_console(file: IO[str] | None = None) -> Console:
    """A rich Console writing to ``file`` (stdout when None).

    On a terminal it is rich's usual console. Written to a file or a pipe (one that rich does not
    treat as a terminal: ``FORCE_COLOR`` and ``TTY_COMPATIBLE`` make it one), it emits no colour
    or style codes and wraps no line, so each trial or evaluation stays one line a log reader
    or ``grep`` can take whole.
    """
    console = Console(file=file)
    if console.is_terminal:
        return console
    return Console(file=file, width=FILE_WIDTH, soft_wrap=True, color_system=None, force_terminal=False,
                   force_interactive=False, highlight=False, emoji=False)
