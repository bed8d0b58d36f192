"""The rich consoles of the commands: colours only on a terminal (and never with
``NO_COLOR``), wide lines when the output goes to a file or a pipe."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["console", "error_console"]

_PIPE_WIDTH = 200


def console() -> Console:
    """A console on stdout."""
    terminal = sys.stdout.isatty()
    return Console(highlight=False, width=None if terminal else _PIPE_WIDTH)


def error_console() -> Console:
    """A console on stderr (progress, notes)."""
    return Console(stderr=True, highlight=False)
