"""The state of a bus, in every mode: :class:`BusStatus` (``await bus.status()``).

A status is a snapshot: per event type what the backend stores, per
(subscriber, event type) what waits for it (``lag``), what it holds without
having acknowledged it (``pending``, and how old the oldest of those is), how
many live consumers serve it and how many dead letters it has; plus the
outbox's backlog when there is one. :func:`diagnose` turns a snapshot (and
the previous one, to see what grows) into :class:`Problem` items; a status
with no problem is healthy.

A figure a backend cannot know is ``None`` (RabbitMQ does not tell AMQP
clients how many messages are delivered and unacknowledged), never a guess.
Backends fill :class:`BackendStatus`; :class:`~hookbus.EventBus` adds the
outbox and the problems. Nothing here imports a backend.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outbox import OutboxStatistics

__all__ = [
    "BackendStatus",
    "BusStatus",
    "EventTypeStatus",
    "Problem",
    "Severity",
    "SubscriberStatus",
    "diagnose",
]


@dataclass(frozen=True, slots=True)
class EventTypeStatus:
    """One event type: its name, whether it is durable, and how many events the backend
    keeps of it (redis: the stream's length; rabbitmq: the history stream's; ``None``
    where the backend keeps no store, or for ephemeral types)."""

    name: str
    durable: bool
    stored: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    """One subscriber of one event type.

    * ``lag``: events stored for it and not delivered to it yet;
    * ``pending``: events delivered to it and not acknowledged yet (being handled,
      or waiting for a retry); ``oldest_pending_age``: seconds since the oldest of
      them was emitted (``None`` when nothing is pending, or unknown);
    * ``consumers``: processes (local mode: workers) serving it now;
    * ``dead_letters``: its dead letters;
    * ``declared``: ``False`` for a consumer group found in Redis that the bus
      (the application's) does not declare.
    """

    subscriber: str
    event_type: str
    durable: bool
    lag: int | None = None
    pending: int | None = None
    oldest_pending_age: float | None = None
    consumers: int | None = None
    dead_letters: int | None = None
    declared: bool = True

    @property
    def key(self) -> tuple[str, str]:
        """``(subscriber, event type)``: what identifies it across samples."""
        return (self.subscriber, self.event_type)


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """What a backend reports: its event types and subscribers."""

    event_types: tuple[EventTypeStatus, ...] = ()
    subscribers: tuple[SubscriberStatus, ...] = ()


class Severity(enum.StrEnum):
    """How bad a :class:`Problem` is: ``error`` (events do not flow), ``warning``
    (something to look at)."""

    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in a status that needs attention, with the subscriber and event type
    it concerns (``None`` for the outbox) and a one-line message."""

    kind: str
    severity: Severity
    message: str
    subscriber: str | None = None
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class BusStatus:
    """A snapshot of a bus (``await bus.status(previous)``); see the module docs."""

    mode: str
    taken_at: datetime
    event_types: tuple[EventTypeStatus, ...]
    subscribers: tuple[SubscriberStatus, ...]
    #: The outbox's backlog (:class:`hookbus.outbox.OutboxStatistics`), if configured.
    outbox: OutboxStatistics | None = None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        """No problem found."""
        return not self.problems

    def subscriber(self, subscriber: str, event_type: str) -> SubscriberStatus | None:
        """The status of one subscriber of one event type, if listed."""
        for row in self.subscribers:
            if row.key == (subscriber, event_type):
                return row
        return None

    def to_dict(self) -> dict[str, Any]:
        """The status as plain JSON-ready data (times in ISO 8601)."""
        return {
            "mode": self.mode,
            "taken_at": self.taken_at.isoformat(),
            "healthy": self.healthy,
            "event_types": [asdict(row) for row in self.event_types],
            "subscribers": [asdict(row) for row in self.subscribers],
            "outbox": None if self.outbox is None else asdict(self.outbox),
            "problems": [
                {**asdict(problem), "severity": problem.severity.value} for problem in self.problems
            ],
        }


def diagnose(status: BusStatus, previous: BusStatus | None = None) -> tuple[Problem, ...]:
    """The problems of ``status``; growth is measured against ``previous`` if given."""
    problems: list[Problem] = []
    before = {row.key: row for row in previous.subscribers} if previous is not None else {}
    for row in status.subscribers:
        problems += _subscriber_problems(row, before.get(row.key))
    problems += _outbox_problems(status, previous)
    return tuple(problems)


def _subscriber_problems(row: SubscriberStatus, earlier: SubscriberStatus | None) -> list[Problem]:
    found: list[Problem] = []
    where = {"subscriber": row.subscriber, "event_type": row.event_type}
    waiting = (row.lag or 0) + (row.pending or 0)
    if row.durable and row.consumers == 0 and (row.declared or waiting):
        message = "no live consumer"
        if waiting:
            message += f": {waiting} event(s) wait"
        if not row.declared:
            message += " (a group the application does not declare: retired? it keeps its stream)"
        found.append(Problem("no_consumer", Severity.ERROR, message, **where))
    if row.dead_letters:
        found.append(
            Problem(
                "dead_letters",
                Severity.WARNING,
                f"{row.dead_letters} dead letter(s): hookbus dead-letters list "
                f"--subscriber {row.subscriber}",
                **where,
            )
        )
    before = earlier.lag if earlier is not None else None
    if before is not None and row.lag is not None and row.lag > before:
        message = f"lag grew from {before} to {row.lag}"
        found.append(Problem("lag_growing", Severity.WARNING, message, **where))
    return found


def _outbox_problems(status: BusStatus, previous: BusStatus | None) -> list[Problem]:
    found: list[Problem] = []
    outbox = status.outbox
    if outbox is None:
        return found
    if outbox.poisoned:
        found.append(
            Problem(
                "outbox_poisoned",
                Severity.WARNING,
                f"{outbox.poisoned} outbox row(s) cannot be decoded (kept, with their error)",
            )
        )
    earlier = previous.outbox if previous is not None else None
    if earlier is not None and outbox.waiting > earlier.waiting:
        found.append(
            Problem(
                "outbox_growing",
                Severity.WARNING,
                f"outbox backlog grew from {earlier.waiting} to {outbox.waiting} row(s)",
            )
        )
    return found
