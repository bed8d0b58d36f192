"""``hookbus worker MODULE:BUS``: run the application's handlers until SIGTERM or Ctrl+C."""

from __future__ import annotations

import asyncio
import logging
import os

import click

from .._bus import EventBus
from .._exceptions import HookbusError
from ._app import apply_url, load_bus
from ._errors import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, CliError
from ._options import app_option, url_option
from ._signals import stop_signal

__all__ = ["run_worker", "worker"]

logger = logging.getLogger("hookbus")


async def run_worker(bus: EventBus, stop_timeout: float | None = None) -> None:
    """Run ``bus`` until SIGTERM/SIGINT, then stop it gracefully."""
    stop = stop_signal()
    await bus.start()
    logger.info(
        "hookbus worker running: mode=%s, %d subscription(s), pid %d",
        bus.mode,
        len(bus.subscriptions),
        os.getpid(),
    )
    try:
        await stop.wait()
        logger.info("hookbus worker stopping")
    finally:
        await bus.stop(stop_timeout)
    logger.info("hookbus worker stopped")


@click.command(
    epilog="""\b
Examples:
  hookbus worker myapp.events:bus
  HOOKBUS_STOP_TIMEOUT=30 hookbus worker myapp.events:bus
  hookbus worker myapp.events:bus --url redis://redis:6379/0

\b
Exit codes: 0 after a graceful stop, 1 when the bus fails (the server
unreachable included), 2 when MODULE:BUS cannot be loaded."""
)
@click.argument("target", metavar="MODULE:BUS", required=False)
@app_option
@url_option
@click.option(
    "--stop-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Seconds granted to in-flight handlers on stop (default HOOKBUS_STOP_TIMEOUT).",
)
def worker(
    target: str | None, app_target: str | None, url: str | None, stop_timeout: float | None
) -> int:
    """Run the handlers of MODULE:BUS until SIGTERM or Ctrl+C, then stop gracefully.

    In-flight handlers finish within the stop timeout and are acknowledged; what
    the worker still held goes back to the other workers at once. Several
    workers, and the web processes, share the work in redis and rabbitmq modes.
    """
    target = target or app_target
    if target is None:
        raise CliError("worker needs MODULE:BUS (or --app / HOOKBUS_APP)", EXIT_USAGE)
    apply_url(url)
    bus = load_bus(target)
    try:
        asyncio.run(run_worker(bus, stop_timeout))
    except HookbusError as exc:  # whatever it is, the worker failed: 1
        raise CliError(str(exc), EXIT_ATTENTION) from exc
    return EXIT_OK
