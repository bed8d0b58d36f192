"""A :class:`~hookbus.BusStatus` as text: a table per event type and per subscriber,
then the outbox and the problems, coloured by severity."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .._status import BusStatus, Problem, Severity, SubscriberStatus

__all__ = ["render_status"]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow"}


def render_status(status: BusStatus, where: str) -> RenderableType:
    """The whole status, headed by the mode and ``where`` (the server)."""
    taken = status.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    parts: list[RenderableType] = [Text(f"{status.mode} mode, {where}, {taken}", style="bold")]
    parts.append(_types_table(status))
    parts.append(_subscribers_table(status))
    if status.outbox is not None:
        outbox = status.outbox
        oldest = "" if outbox.oldest_age is None else f", the oldest for {_age(outbox.oldest_age)}"
        parts.append(
            Text(f"outbox: {outbox.waiting} row(s) waiting{oldest}, {outbox.poisoned} poisoned")
        )
    parts.append(_problems(status.problems))
    return Group(*parts)


def _types_table(status: BusStatus) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column("event type")
    table.add_column("durable")
    table.add_column("stored", justify="right")
    for row in status.event_types:
        table.add_row(row.name, "yes" if row.durable else "no", _count(row.stored))
    return table


def _subscribers_table(status: BusStatus) -> Table:
    worst: dict[tuple[str | None, str | None], Severity] = {}
    for problem in status.problems:
        key = (problem.subscriber, problem.event_type)
        if worst.get(key) is not Severity.ERROR:
            worst[key] = problem.severity
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("subscriber", "event type"):
        table.add_column(name)
    for name in ("lag", "pending", "oldest pending", "consumers", "dead letters"):
        table.add_column(name, justify="right")
    for row in status.subscribers:
        severity = worst.get(row.key)
        table.add_row(*_cells(row), style=_STYLE[severity] if severity else None)
    return table


def _cells(row: SubscriberStatus) -> list[str]:
    name = row.subscriber if row.declared else f"{row.subscriber} (not declared)"
    if not row.durable:
        return [name, f"{row.event_type} (ephemeral)", "", "", "", "", ""]
    return [
        name,
        row.event_type,
        _count(row.lag),
        _count(row.pending),
        "-" if row.oldest_pending_age is None else _age(row.oldest_pending_age),
        _count(row.consumers),
        _count(row.dead_letters),
    ]


def _problems(problems: tuple[Problem, ...]) -> RenderableType:
    if not problems:
        return Text("healthy", style="bold green")
    lines = [Text(f"{len(problems)} problem(s), needs attention:", style="bold")]
    for problem in problems:
        where = ""
        if problem.subscriber is not None:
            where = f"{problem.subscriber} / {problem.event_type}: "
        elif problem.event_type is None:
            where = "outbox: "
        lines.append(
            Text(
                f"  {problem.severity.value:<8} {where}{problem.message}", _STYLE[problem.severity]
            )
        )
    return Group(*lines)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
