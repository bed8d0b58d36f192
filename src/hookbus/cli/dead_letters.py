"""``hookbus dead-letters list|show|retry|discard``: look at dead letters and repair them.

Retrying sends a dead letter's event back to its subscriber only, with fresh
attempts; discarding deletes it. Both ask for confirmation unless ``--yes``,
and refuse without ``--yes`` when stdin is not a terminal.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .._bus import EventBus
from .._dead_letter import DeadLetter
from .._exceptions import ConfigurationError, DeadLetterNotFoundError
from ._app import admin_bus, apply_url, load_bus, settings_of
from ._console import console
from ._durations import parse_duration
from ._errors import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, CliError, say_error
from ._letters_view import letter_details, letter_line
from ._options import app_option, json_option, url_option

__all__ = ["dead_letters"]


@dataclass(frozen=True)
class _Filters:
    subscriber: str | None
    event_type: str | None
    older_than: str | None
    error: str | None

    def keep(self, letter: DeadLetter, now: datetime) -> bool:
        if self.event_type is not None and letter.event_type != self.event_type:
            return False
        if self.older_than is not None and now - letter.failed_at < parse_duration(self.older_than):
            return False
        if self.error is not None:
            text = f"{letter.error_type}: {letter.error_message}".lower()
            if self.error.lower() not in text:
                return False
        return True

    @property
    def any(self) -> bool:
        return any(
            v is not None for v in (self.subscriber, self.event_type, self.older_than, self.error)
        )


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--subscriber", default=None, help="Only this subscriber's."),
        click.option(
            "--type", "event_type", default=None, metavar="TYPE", help="Only this event type's."
        ),
        click.option(
            "--older-than",
            default=None,
            metavar="DURATION",
            help="Only those that failed longer ago than DURATION (30s, 10m, 2h, 7d).",
        ),
        click.option(
            "--error", default=None, metavar="TEXT", help="Only those whose error contains TEXT."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return app_option(url_option(command))


def _admin(app_target: str | None, url: str | None) -> EventBus:
    apply_url(url)
    app = load_bus(app_target) if app_target is not None else None
    return admin_bus(settings_of(app))


async def _matching(bus: EventBus, filters: _Filters, limit: int | None = None) -> list[DeadLetter]:
    if filters.older_than is not None:
        parse_duration(filters.older_than)  # a bad duration is a usage error, before listing
    letters = await bus.dead_letters(filters.subscriber)
    now = datetime.now(UTC)
    found = [letter for letter in letters if filters.keep(letter, now)]
    return found if limit is None else found[:limit]


@click.group(
    "dead-letters",
    epilog="""\b
Examples:
  hookbus dead-letters list --app myapp.events:bus
  hookbus dead-letters list --subscriber accounting --older-than 1h --json
  hookbus dead-letters show 1731234567890-0
  hookbus dead-letters retry 1731234567890-0 1731234567891-0
  hookbus dead-letters retry --all --subscriber accounting --error Timeout --yes
  hookbus dead-letters discard --all --type sale_closed --older-than 7d --yes""",
)
def dead_letters() -> None:
    """List, show, re-queue (retry) or delete (discard) dead letters.

    Dead letters live in Redis or RabbitMQ (local mode keeps them in the memory of
    the process running the bus). --app MODULE:BUS is optional: it lets the events
    of its types be decoded and shown.
    """


@dead_letters.command(
    "list",
    epilog="""\b
Examples:
  hookbus dead-letters list --app myapp.events:bus
  hookbus dead-letters list --subscriber accounting --error Timeout
  hookbus dead-letters list --older-than 1d --json | jq '.[].event_id'""",
)
@_connection_options
@_filter_options
@click.option("--limit", type=int, default=None, help="At most this many, oldest first.")
@json_option
def list_letters(
    *,
    app_target: str | None,
    url: str | None,
    subscriber: str | None,
    event_type: str | None,
    older_than: str | None,
    error: str | None,
    limit: int | None,
    as_json: bool,
) -> int:
    """List dead letters, oldest first: id, subscriber, event type, event id,
    attempts, error."""
    admin = _admin(app_target, url)
    filters = _Filters(subscriber, event_type, older_than, error)

    async def run() -> list[DeadLetter]:
        async with admin:
            return await _matching(admin, filters, limit)

    letters = asyncio.run(run())
    if as_json:
        print(json.dumps([letter.to_dict() for letter in letters]))
        return EXIT_OK
    out = console()
    for letter in letters:
        out.print(Text(letter_line(letter)), soft_wrap=True)
    out.print(f"{len(letters)} dead letter(s)")
    return EXIT_OK


@dead_letters.command(
    "show",
    epilog="""\b
Examples:
  hookbus dead-letters show 1731234567890-0 --app myapp.events:bus
  hookbus dead-letters show 1731234567890-0 --json""",
)
@click.argument("letter_id", metavar="ID")
@_connection_options
@json_option
def show_letter(letter_id: str, app_target: str | None, url: str | None, as_json: bool) -> int:
    """Show one dead letter in full: its error, where it came from, its event."""
    admin = _admin(app_target, url)

    async def run() -> DeadLetter:
        async with admin:
            for letter in await admin.dead_letters():
                if letter.id == letter_id:
                    return letter
        raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")

    letter = asyncio.run(run())
    if as_json:
        print(json.dumps(letter.to_dict()))
        return EXIT_OK
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in letter_details(letter):
        table.add_row(label, Text(value))
    console().print(table)
    return EXIT_OK


def _action_command(name: str, verb: str, done: str) -> click.Command:
    @click.argument("letter_ids", metavar="[ID]...", nargs=-1)
    @click.option("--all", "every", is_flag=True, help="Every dead letter matching the filters.")
    @_filter_options
    @_connection_options
    @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
    def action(
        *,
        letter_ids: tuple[str, ...],
        every: bool,
        subscriber: str | None,
        event_type: str | None,
        older_than: str | None,
        error: str | None,
        app_target: str | None,
        url: str | None,
        yes: bool,
    ) -> int:
        filters = _Filters(subscriber, event_type, older_than, error)
        if bool(letter_ids) == every:
            raise CliError(f"{name}: give dead letter ids, or --all (with filters)", EXIT_USAGE)
        if letter_ids and filters.any:
            raise CliError(f"{name}: filters go with --all, not with ids", EXIT_USAGE)
        admin = _admin(app_target, url)
        return asyncio.run(
            _act(admin, name=name, verb=verb, done=done, ids=letter_ids, filters=filters, yes=yes)
        )

    action.__doc__ = (
        f"{verb.capitalize()} dead letters: the ones named, or --all those matching the "
        "filters. Asks for confirmation unless --yes."
    )
    epilog = f"""\b
Examples:
  hookbus dead-letters {name} 1731234567890-0 1731234567891-0
  hookbus dead-letters {name} --all --subscriber accounting --yes
  hookbus dead-letters {name} --all --type sale_closed --older-than 7d --error Timeout"""
    return click.command(name, epilog=epilog)(action)


async def _act(
    admin: EventBus,
    *,
    name: str,
    verb: str,
    done: str,
    ids: Sequence[str],
    filters: _Filters,
    yes: bool,
) -> int:
    async with admin:
        ids = list(ids) or [letter.id for letter in await _matching(admin, filters)]
        if not ids:
            print("no dead letter matches")
            return EXIT_OK
        _confirm(f"{verb.capitalize()} {len(ids)} dead letter(s)?", name, yes)
        act: Callable[[str], Awaitable[None]] = (
            admin.retry_dead_letter if name == "retry" else admin.discard_dead_letter
        )
        failed = 0
        for letter_id in ids:
            try:
                await act(letter_id)
            except (DeadLetterNotFoundError, ConfigurationError) as exc:
                say_error(str(exc))
                failed += 1
                continue
            print(f"{done} {letter_id}", flush=True)
    return EXIT_ATTENTION if failed else EXIT_OK


def _confirm(question: str, name: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"{name}: refusing without --yes, as stdin is not a terminal (nobody to confirm)",
            EXIT_USAGE,
        )
    if not click.confirm(question, default=False, err=True):
        raise CliError("nothing done", EXIT_ATTENTION)


dead_letters.add_command(_action_command("retry", "re-queue", "re-queued"))
dead_letters.add_command(_action_command("discard", "discard", "discarded"))
