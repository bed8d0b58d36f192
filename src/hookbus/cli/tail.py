"""``hookbus tail [TYPE]...``: print events as they are emitted, until Ctrl+C."""

from __future__ import annotations

import asyncio
import json
import sys

import click
from rich.text import Text

from .._bus import EventBus
from .._envelope import Envelope
from .._exceptions import ListenerOverflowError
from ._app import admin_bus, apply_url, load_bus, settings_of
from ._console import console, error_console
from ._errors import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, CliError
from ._options import app_option, json_option, url_option
from ._signals import stop_signal

__all__ = ["tail"]


@click.command(
    epilog="""\b
Examples:
  hookbus tail --app myapp.events:bus                      # every event type
  hookbus tail sale_closed member_joined --app myapp.events:bus
  hookbus tail sale_closed --app myapp.events:bus --json | jq .data.total"""
)
@click.argument("types", metavar="[TYPE]...", nargs=-1)
@app_option
@url_option
@json_option
def tail(types: tuple[str, ...], app_target: str | None, url: str | None, as_json: bool) -> int:
    """Print the events emitted from now on (of these types; all declared ones if none),
    durable and ephemeral, until Ctrl+C. One line per event: its time, type, id and
    data; with --json, its CloudEvents envelope.

    --app MODULE:BUS declares the event types (needed to decode them).
    """
    apply_url(url)
    if app_target is None:
        raise CliError("tail needs the application's event types: --app MODULE:BUS", EXIT_USAGE)
    app = load_bus(app_target)
    admin = admin_bus(settings_of(app))
    for sub in app.subscriptions:  # the app's types, for a listener of every type
        admin.register(sub.event_type)
    return asyncio.run(_tail(admin, types, as_json))


async def _tail(admin: EventBus, types: tuple[str, ...], as_json: bool) -> int:
    stop = stop_signal()
    out = console()
    async with admin, admin.listen(*types) as feed:
        what = ", ".join(types) if types else "every event type"
        error_console().print(f"hookbus: listening to {what} (Ctrl+C to stop)")
        sys.stderr.flush()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                following = asyncio.ensure_future(anext(feed))
                await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    return EXIT_OK
                try:
                    envelope = following.result()
                except StopAsyncIteration:
                    return EXIT_OK
                except ListenerOverflowError as exc:
                    raise CliError(f"tail fell behind: {exc}", EXIT_ATTENTION) from exc
                if as_json:
                    print(envelope.encode().decode(), flush=True)
                else:
                    out.print(_line(envelope), soft_wrap=True)
                    sys.stdout.flush()
        finally:
            stopping.cancel()


def _line(envelope: Envelope) -> Text:
    data = envelope.event.model_dump(mode="json")
    line = Text()
    line.append(envelope.time.strftime("%H:%M:%S.%f")[:-3], "dim")
    line.append("  ")
    line.append(envelope.type, "bold cyan")
    line.append(f"  {envelope.id}  ", "dim")
    line.append(json.dumps(data, ensure_ascii=False))
    return line
