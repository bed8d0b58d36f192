"""``hookbus events module:bus``: the event catalogue of an application.

Prints a table of the event types (name, version, durability, fields,
subscribers) of the bus and of every declared event class, or as JSON
(``--json``), their JSON Schemas (``--json-schema``) or an AsyncAPI 3.0 document
(``--asyncapi``); ``--save FILE`` writes the catalogue for a later
``--check FILE``, which lists every change since and exits 1 if one of them is
breaking. Errors are one line on stderr, exit status 2 (see :mod:`._errors`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._exceptions import HookbusError, error_text
from ..catalogue import (
    Catalogue,
    CompatibilityReport,
    asyncapi_document,
    build_catalogue,
    check_compatibility,
    load_catalogue,
)
from ._app import load_bus
from ._errors import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE, CliError

__all__ = ["events"]


@click.command("events")
@click.argument("target", metavar="MODULE:BUS")
@click.option("--json-schema", "json_schema", is_flag=True, help="The JSON Schema of each event.")
@click.option("--asyncapi", is_flag=True, help="An AsyncAPI 3.0 document of the events.")
@click.option(
    "--save",
    "save_to",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the catalogue to FILE (a baseline for --check).",
)
@click.option(
    "--check",
    "baseline",
    metavar="BASELINE.json",
    type=click.Path(dir_okay=False),
    help="Compare with a saved catalogue; exit 1 if a change is breaking.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option("--title", help="The application's title (AsyncAPI info; default: the module).")
@click.option("--app-version", default="0.0.0", show_default=True, help="Its version.")
def events(
    *,
    target: str,
    json_schema: bool,
    asyncapi: bool,
    save_to: str | None,
    baseline: str | None,
    as_json: bool,
    title: str | None,
    app_version: str,
) -> int:
    """The event catalogue of the bus MODULE:BUS (e.g. myapp.events:bus)."""
    if sum((json_schema, asyncapi, baseline is not None)) > 1:
        raise click.UsageError("choose one of --json-schema, --asyncapi and --check")
    catalogue = _catalogue(target, title or target.partition(":")[0], app_version)
    if save_to is not None:
        try:
            catalogue.save(save_to)
        except OSError as exc:
            raise CliError(f"cannot write {save_to!r}: {exc.strerror or exc}", EXIT_USAGE) from exc
        count = len(catalogue.events)
        click.echo(f"saved {count} event type{'' if count == 1 else 's'} to {save_to}", err=True)
    if baseline is not None:
        try:
            report = check_compatibility(load_catalogue(baseline), catalogue)
        except HookbusError as exc:
            raise CliError(error_text(exc), EXIT_USAGE) from exc
        _print_report(report, as_json)
        return EXIT_OK if report.compatible else EXIT_ATTENTION
    if json_schema:
        _print_json({name: entry.schema for name, entry in catalogue.events.items()})
    elif asyncapi:
        _print_json(asyncapi_document(catalogue))
    elif as_json:
        _print_json(catalogue.to_json())
    elif save_to is None:
        _print_table(catalogue)
    return EXIT_OK


def _catalogue(target: str, title: str, version: str) -> Catalogue:
    return build_catalogue(load_bus(target), title=title, version=version)


def _print_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def _print_report(report: CompatibilityReport, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "compatible": report.compatible,
                "changes": [
                    {
                        "event": c.event,
                        "field": c.field,
                        "breaking": c.breaking,
                        "message": c.message,
                    }
                    for c in report.changes
                ],
            }
        )
        return
    for change in report.breaking:
        click.echo(f"breaking: {change}")
    for change in report.info:
        click.echo(f"ok: {change}")
    count = len(report.breaking)
    click.echo(
        "compatible with the baseline"
        if report.compatible
        else f"{count} breaking change{'s' if count != 1 else ''}"
    )


def _print_table(catalogue: Catalogue) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{catalogue.title}: {len(catalogue.events)} event types")
    for header in ("event", "version", "kind", "fields", "subscribers"):
        table.add_column(header)
    for entry in catalogue.events.values():
        fields = "\n".join(
            f"{f.name}: {f.type}"
            + ("" if f.required else f" = {json.dumps(f.default)}" if f.has_default else " = …")
            for f in entry.fields
        )
        subscribers = "\n".join(f"{s.id} ({s.module})" for s in entry.subscribers)
        kind = "durable" if entry.durable else "ephemeral"
        version = str(entry.version)
        if entry.upcasters:
            version += f" (upcast from {', '.join(map(str, entry.upcasters))})"
        table.add_row(entry.name, version, kind, fields, subscribers or "—")
    Console(soft_wrap=False).print(table)
