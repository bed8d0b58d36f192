"""``hookbus replay SUBSCRIBER --since ID|TIME``: deliver a subscriber's events again.

The subscriber's group (redis) is set back, or its events re-published from the
history stream to its queue (rabbitmq), then the command follows the
subscriber's lag down to zero with a progress bar (``--no-wait``: it does not).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._bus import EventBus
from .._status import BusStatus
from .._subscription import Subscription
from ._app import admin_bus, apply_url, load_bus
from ._console import error_console
from ._durations import parse_since
from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._options import app_option, url_option
from ._signals import stop_signal

__all__ = ["replay"]

_POLL = 0.5


@click.command(
    epilog="""\b
Examples:
  hookbus replay accounting --since 2h --app myapp.events:bus
  hookbus replay accounting --since 2025-11-03T14:00 --type sale_closed --app myapp.events:bus
  hookbus replay accounting --since 0192f1c4-7a3e-7c4d-8e21-5b0c6a9d1f00 --no-wait

\b
--since takes an event id (that event and every later one), a time
(ISO 8601, local time unless it says otherwise) or a duration ago
(30s, 10m, 2h, 7d). Only what the broker kept can be replayed."""
)
@click.argument("subscriber")
@click.option("--since", required=True, metavar="ID|TIME", help="Event id, time or duration ago.")
@click.option("--type", "event_type", default=None, metavar="TYPE", help="Only this event type.")
@click.option("--no-wait", is_flag=True, help="Do not follow the replay to its end.")
@app_option
@url_option
def replay(
    *,
    subscriber: str,
    since: str,
    event_type: str | None,
    no_wait: bool,
    app_target: str | None,
    url: str | None,
) -> int:
    """Deliver SUBSCRIBER's events again from --since on (to that subscriber only;
    make it idempotent), then follow its lag down with a progress bar.

    --app MODULE:BUS declares the subscriber.
    """
    apply_url(url)
    if app_target is None:
        raise CliError("replay needs the application's subscribers: --app MODULE:BUS", EXIT_USAGE)
    app = load_bus(app_target)
    subs = tuple(
        s
        for s in app.subscriptions
        if s.id == subscriber and s.durable and event_type in (None, s.event_name)
    )
    if not subs:
        known = sorted({s.id for s in app.subscriptions if s.durable})
        of = "" if event_type is None else f" of {event_type!r}"
        raise CliError(
            f"unknown subscriber {subscriber!r}{of} in {app_target} "
            f"(durable subscribers: {', '.join(known) or 'none'})",
            EXIT_USAGE,
        )
    admin = admin_bus(app.settings, subscriptions=subs)
    return asyncio.run(_replay(admin, subs, parse_since(since), event_type, no_wait))


async def _replay(
    admin: EventBus,
    subs: tuple[Subscription, ...],
    since: str | datetime,
    event_type: str | None,
    no_wait: bool,
) -> int:
    notes = error_console()
    subscriber = subs[0].id
    stop = stop_signal()
    async with admin:
        await admin.replay(subscriber, since=since, event_type=event_type)
        status = await admin.status(subscriptions=subs)
        left = _left(status)
        print(f"replaying to {subscriber}: {_count(left)} event(s) to deliver", flush=True)
        if no_wait or left == 0:
            return EXIT_OK
        if not all(row.consumers for row in status.subscribers):
            notes.print(
                f"no live consumer of {subscriber}: the events wait for a worker "
                "(hookbus worker MODULE:BUS)"
            )
            return EXIT_OK
        await _follow(admin, subs, left, stop)
    return EXIT_OK


async def _follow(
    admin: EventBus,
    subs: tuple[Subscription, ...],
    total: int | None,
    stop: asyncio.Event,
) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=error_console(), transient=False) as progress:
        task = progress.add_task(subs[0].id, total=total)
        while True:
            left = _left(await admin.status(subscriptions=subs))
            if left is not None:
                if total is None or left > total:
                    total = left
                    progress.update(task, total=total)
                progress.update(task, completed=total - left)
            if left == 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), _POLL)
                break  # Ctrl+C: the replay goes on without us
            except TimeoutError:
                continue


def _left(status: BusStatus) -> int | None:
    """Events the subscriber still has to finish: lag plus pending (``None``: unknown)."""
    left = 0
    for row in status.subscribers:
        if row.lag is None:
            return None
        left += row.lag + (row.pending or 0)
    return left


def _count(value: int | None) -> str:
    return "an unknown number of" if value is None else str(value)
