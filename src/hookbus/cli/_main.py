"""The ``hookbus`` command group, and its entry point: every error ends as one line on
stderr and an exit code (see :mod:`._errors`), never a traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import click

from .._exceptions import HookbusError
from ._errors import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, CliError, exit_code_of, say_error
from .dead_letters import dead_letters
from .events import events
from .replay import replay
from .status import status
from .tail import tail
from .worker import worker

__all__ = ["main"]

EPILOG = """\b
Exit codes: 0 done (status: healthy), 1 needs attention or an operation failed,
2 usage or configuration error, 3 server unreachable (worker: 1).

\b
Examples:
  hookbus worker myapp.events:bus
  hookbus status myapp.events:bus
  hookbus status myapp.events:bus --watch 5
  hookbus dead-letters list --app myapp.events:bus --subscriber accounting
  hookbus tail sale_closed --app myapp.events:bus --json
  hookbus replay accounting --since 2h --app myapp.events:bus
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default=None,
    envvar="HOOKBUS_LOG_LEVEL",
    metavar="LEVEL",
    help="Logging level (default: INFO for worker, ERROR for the others).",
)
@click.version_option(package_name="hookbus", prog_name="hookbus")
@click.pass_context
def hookbus(context: click.Context, log_level: str | None) -> None:
    """Run an application's event handlers, look at the bus, and repair it.

    The connection comes from the environment (EVENT_BUS_MODE, HOOKBUS_REDIS_URL,
    HOOKBUS_AMQP_URL, HOOKBUS_REDIS_PREFIX ...) or from --url; MODULE:BUS names the
    application's EventBus, for its event types and subscribers.
    """
    worker = context.invoked_subcommand == "worker"
    level = (log_level or ("INFO" if worker else "ERROR")).upper()
    if level not in logging.getLevelNamesMapping():
        raise CliError(f"unknown log level {log_level!r}", EXIT_USAGE)
    # The other commands report errors themselves, on one line: by default only
    # hookbus's own errors are logged, not the broker clients' connection attempts.
    root = level if worker or log_level else "CRITICAL"
    logging.basicConfig(level=root, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hookbus").setLevel(level)


for command in (worker, status, tail, dead_letters, replay, events):
    hookbus.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookbus`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = hookbus.main(args, prog_name="hookbus", standalone_mode=False)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help())  # `hookbus` alone, or a group without its command
            return EXIT_USAGE
        where = exc.ctx.command_path if exc.ctx is not None else "hookbus"
        say_error(f"{exc.format_message()} (see {where} --help)")
        return EXIT_USAGE
    except click.Abort:
        say_error("aborted")
        return EXIT_ATTENTION
    except click.ClickException as exc:
        say_error(exc.format_message())
        return exc.exit_code
    except (CliError, HookbusError) as exc:
        say_error(str(exc))
        return exit_code_of(exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("HOOKBUS_DEBUG"):
            raise
        say_error(f"unexpected error: {type(exc).__name__}: {exc}")
        return EXIT_ATTENTION
    if isinstance(result, int):
        return result
    return EXIT_OK
