"""Exit codes of the ``hookbus`` command, and the one-line error that goes with them.

====  ================================================================
0     done; ``status``: healthy
1     ``status``: needs attention (problems); an operation failed (a dead
      letter not found, the bus failed while running); ``worker``: any failure,
      the server being unreachable included
2     usage or configuration error: bad option, ``module:bus`` that cannot
      be loaded, unknown subscriber or event type, a destructive action
      refused without ``--yes``, a command local mode cannot serve
3     the server (Redis, RabbitMQ) is unreachable
====  ================================================================
"""

from __future__ import annotations

import sys

from .._exceptions import (
    BusUnavailableError,
    ConfigurationError,
    DeadLetterNotFoundError,
    HookbusError,
    UnknownEventError,
    UnsupportedError,
)

__all__ = [
    "EXIT_ATTENTION",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "exit_code_of",
    "say_error",
]

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CliError(Exception):
    """An error the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_ATTENTION) -> None:
        super().__init__(message)
        self.code = code


def exit_code_of(exc: BaseException) -> int:
    """The exit code an error of the library means."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, BusUnavailableError):
        return EXIT_UNREACHABLE
    if isinstance(exc, ConfigurationError | UnknownEventError | UnsupportedError):
        return EXIT_USAGE
    if isinstance(exc, DeadLetterNotFoundError | HookbusError):
        return EXIT_ATTENTION
    return EXIT_ATTENTION


def say_error(message: str) -> None:
    """Print ``hookbus: <message>`` on one line of stderr."""
    print("hookbus: " + " ".join(message.split()), file=sys.stderr)
