"""Completion records of effectively-once subscribers (``@bus.on(..., idempotent=True)``).

Before an idempotent subscriber's handler runs, the bus asks the backend's
:class:`Completions` store whether that subscriber already completed that
event id; if so, the delivery is acknowledged without running the handler
(counted as ``skipped``). After the handler returned, the completion is
recorded. Where the records live decides what survives what:

* local mode: in memory (:class:`MemoryCompletions`), or in the outbox's
  database when an outbox is configured (durable local mode);
* redis mode: a sorted set per subscriber and type, written in the same
  transaction as the acknowledgement;
* rabbitmq mode: a stream per subscriber and type, read into memory and
  followed by its consumers.

Records are kept ``idempotency_retention`` seconds (default 7 days): a
duplicate older than that runs the handler again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from ._envelope import Envelope
from ._subscription import Subscription

__all__ = ["Completions", "MemoryCompletions"]

DEFAULT_RETENTION = 7 * 24 * 3600.0
_MEMORY_LIMIT = 100_000  # records kept per subscription in memory


class Completions(Protocol):
    """Where a backend keeps which events its idempotent subscribers completed."""

    async def done(self, sub: Subscription, envelope: Envelope) -> bool:
        """Whether ``sub`` completed ``envelope``'s event (within the retention)."""

    async def record(self, sub: Subscription, envelope: Envelope) -> None:
        """Record that ``sub`` completed ``envelope``'s event."""


class MemoryCompletions:
    """Completion records in this process's memory: lost with it, bounded in count."""

    def __init__(self, retention: float, limit: int = _MEMORY_LIMIT) -> None:
        self._retention = retention
        self._limit = limit
        self._done: dict[tuple[str, str], OrderedDict[str, float]] = {}

    async def done(self, sub: Subscription, envelope: Envelope) -> bool:
        records = self._done.get((sub.id, sub.event_name))
        if records is None or envelope.id not in records:
            return False
        return records[envelope.id] > time.monotonic() - self._retention

    async def record(self, sub: Subscription, envelope: Envelope) -> None:
        records = self._done.setdefault((sub.id, sub.event_name), OrderedDict())
        now = time.monotonic()
        records[envelope.id] = now
        records.move_to_end(envelope.id)
        horizon = now - self._retention
        while records and (len(records) > self._limit or next(iter(records.values())) < horizon):
            records.popitem(last=False)
