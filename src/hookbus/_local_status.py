"""Local mode's status: read from the in-process workers (see :mod:`hookbus._status`).

``lag`` is what waits in a subscriber's queue, ``pending`` what its worker
holds (the event in the handler, retries waiting for their delay), and
``consumers`` is 1 while its worker runs. Local mode stores nothing, so event
types have no ``stored`` count. Only this process is seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from datetime import UTC, datetime
from typing import Any, Protocol

from ._dead_letter import DeadLetter
from ._envelope import Envelope
from ._status import BackendStatus, EventTypeStatus, SubscriberStatus
from ._subscription import Subscription

__all__ = ["local_status"]


class _Worker(Protocol):
    @property
    def queue(self) -> Sized: ...
    @property
    def task(self) -> Any: ...

    def held(self) -> list[Envelope]: ...


def local_status(
    workers: Mapping[tuple[str, str], _Worker],
    dead: Sequence[DeadLetter],
    subscriptions: Sequence[Subscription],
) -> BackendStatus:
    """The status of ``subscriptions`` from ``workers`` (by subscriber and type)."""
    now = datetime.now(UTC)
    letters: dict[tuple[str, str], int] = {}
    for letter in dead:
        key = (letter.subscriber, letter.event_type)
        letters[key] = letters.get(key, 0) + 1
    types: dict[str, EventTypeStatus] = {}
    rows: list[SubscriberStatus] = []
    for sub in subscriptions:
        types.setdefault(sub.event_name, EventTypeStatus(sub.event_name, sub.durable))
        key = (sub.id, sub.event_name)
        worker = workers.get(key)
        if worker is None:  # not this bus's subscription: nothing known in this process
            rows.append(SubscriberStatus(sub.id, sub.event_name, sub.durable))
            continue
        held = worker.held()
        oldest = min((e.time for e in held), default=None)
        rows.append(
            SubscriberStatus(
                sub.id,
                sub.event_name,
                sub.durable,
                lag=len(worker.queue),
                pending=len(held),
                oldest_pending_age=None
                if oldest is None
                else max(0.0, (now - oldest).total_seconds()),
                consumers=0 if worker.task is None else 1,
                dead_letters=letters.get(key, 0),
            )
        )
    return BackendStatus(tuple(types.values()), tuple(rows))
