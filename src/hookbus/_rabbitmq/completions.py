"""Completion records of idempotent subscribers, in a stream (rabbitmq mode).

RabbitMQ has no key-value store: each idempotent subscription has a stream
of its own (``<prefix>.done.<type>.<subscriber>``, see :mod:`.names`) with
one small message per completion — the event id as the body, the time of
completion (ms since the epoch) in the ``x-hookbus-completed`` header. The
stream is declared with ``x-max-age`` = ``idempotency_retention`` (in whole
seconds, at least one).

Each process consuming the subscription reads the stream from its start into
memory (event id -> time of completion) *before* it consumes the
subscription's queue, and keeps following it, so that the completions other
processes record reach it too. :meth:`StreamCompletions.done` only looks in
memory. :meth:`StreamCompletions.record` adds the event id to memory at once,
then appends it to the stream with a publisher confirm; the consumer awaits
that before it acknowledges the delivery, so a crash between the two makes
the redelivery a skip.

What this guarantees: a subscriber skips an event id that any of its
processes recorded, once that record reached the process (always, for its
own records and for those stored before it started consuming), within the
retention.

Its limits:

* a duplicate delivered to another process before that process has read the
  record (it follows the stream a few milliseconds behind) runs the handler
  again;
* records older than ``idempotency_retention`` are forgotten: ignored at
  once, dropped from memory as newer ones arrive, and removed from the
  stream by RabbitMQ later, by whole segments of 4 MiB (never the segment
  being written);
* a record the broker refuses (no confirm within ``emit_timeout``) is logged
  and the delivery acknowledged anyway: the handler's work is done; only
  this process remembers it (until it stops);
* every process holds the records within the retention in memory, and
  startup (and each reconnect) reads the whole stream;
* a stream that already exists keeps the retention it was declared with (a
  changed ``idempotency_retention`` is logged and then applies in memory
  only).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import aio_pika

from .._envelope import Envelope
from .._subscription import Subscription
from .publisher import Publisher
from .shared import RabbitShared
from .streams import follow_stream
from .topology import Topology

__all__ = ["COMPLETED_HEADER", "StreamCompletions"]

COMPLETED_HEADER = "x-hookbus-completed"


class StreamCompletions:
    """One idempotent subscription's completion records: its stream, read into memory."""

    def __init__(
        self, shared: RabbitShared, sub: Subscription, topology: Topology, publisher: Publisher
    ) -> None:
        self._shared = shared
        self._sub = sub
        self._topology = topology
        self._publisher = publisher
        self._retention = shared.settings.idempotency_retention
        self.stream = shared.names.completions(sub.event_name, sub.id)
        #: Event id -> time of completion (seconds since the epoch), oldest first.
        self._records: OrderedDict[str, float] = OrderedDict()
        self._channel: Any = None

    async def declare(self) -> None:
        """Declare the stream."""
        await self._topology.completions(self._sub.event_name, self._sub.id)

    async def open(self) -> None:
        """Read the stream into memory, then keep following it."""
        await self.close()
        self._channel = await follow_stream(
            self._shared, self._publisher, self.stream, self._received
        )

    async def close(self) -> None:
        """Stop following the stream (the records read stay in memory)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()

    def _received(self, message: Any) -> None:
        try:
            event_id = bytes(message.body).decode()
        except UnicodeDecodeError:
            return  # not ours
        stamp = (message.headers or {}).get(COMPLETED_HEADER)
        completed = stamp / 1000 if isinstance(stamp, int | float) else time.time()
        self._add(event_id, completed)

    def _add(self, event_id: str, completed: float) -> None:
        records = self._records
        known = records.get(event_id)
        if known is not None and known >= completed:
            return
        records[event_id] = completed
        records.move_to_end(event_id)
        horizon = time.time() - self._retention
        while records and next(iter(records.values())) < horizon:
            records.popitem(last=False)

    async def done(self, sub: Subscription, envelope: Envelope) -> bool:
        completed = self._records.get(envelope.id)
        return completed is not None and completed >= time.time() - self._retention

    async def record(self, sub: Subscription, envelope: Envelope) -> None:
        now = time.time()
        self._add(envelope.id, now)
        message = aio_pika.Message(
            envelope.id.encode(),
            headers={COMPLETED_HEADER: int(now * 1000)},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publisher.send(self.stream, message)
