"""``hookbus status [MODULE:BUS]``: what waits, what is held, who consumes, what died."""

from __future__ import annotations

import asyncio
import json

import click

from .._bus import EventBus
from .._status import BusStatus
from .._subscription import Subscription
from ._app import admin_bus, apply_url, load_bus, settings_of
from ._console import console
from ._errors import EXIT_ATTENTION, EXIT_OK
from ._options import app_option, json_option, url_option
from ._signals import stop_signal
from ._status_view import render_status
from ._where import server_of

__all__ = ["status"]


@click.command(
    epilog="""\b
Columns: lag (stored, not delivered yet), pending (delivered, not
acknowledged; "?" where the broker cannot tell), oldest pending (its age),
consumers (live processes), dead letters. Problems: a subscriber without
live consumer, dead letters, a lag or outbox backlog growing (--watch).

\b
Exit codes: 0 healthy, 1 needs attention, 2 usage or configuration
error, 3 server unreachable: usable as a health check.

\b
Examples:
  hookbus status myapp.events:bus
  hookbus status myapp.events:bus --json | jq '.subscribers[] | {subscriber, lag}'
  hookbus status myapp.events:bus --watch          # every 2 seconds, Ctrl+C to stop
  hookbus status myapp.events:bus --watch 10 --url redis://redis:6379/0"""
)
@click.argument("target", metavar="[MODULE:BUS]", required=False)
@app_option
@url_option
@json_option
@click.option(
    "--watch",
    type=float,
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (default 2) until Ctrl+C, showing what grows.",
)
def status(
    target: str | None,
    app_target: str | None,
    url: str | None,
    as_json: bool,
    watch: float | None,
) -> int:
    """Show the bus's state per event type and subscriber, and its problems.

    MODULE:BUS (or --app) gives the subscribers to report on; without it, only the
    consumer groups found in Redis are listed (none in rabbitmq mode).
    """
    apply_url(url)
    target = target or app_target
    app = load_bus(target) if target is not None else None
    admin = admin_bus(settings_of(app))
    subscriptions = app.subscriptions if app is not None else ()
    where = server_of(admin.settings)
    return asyncio.run(_status(admin, subscriptions, where, as_json, watch))


async def _status(
    admin: EventBus,
    subscriptions: tuple[Subscription, ...],
    where: str,
    as_json: bool,
    watch: float | None,
) -> int:
    out = console()
    previous: BusStatus | None = None
    stop = stop_signal()
    async with admin:
        while True:
            current = await admin.status(previous, subscriptions=subscriptions)
            if as_json:
                print(json.dumps(current.to_dict()), flush=True)
            else:
                if watch is not None and out.is_terminal:
                    out.clear()
                out.print(render_status(current, where))
            previous = current
            if watch is None:
                break
            try:
                await asyncio.wait_for(stop.wait(), watch)
                break
            except TimeoutError:
                continue
    assert previous is not None
    return EXIT_OK if previous.healthy else EXIT_ATTENTION
