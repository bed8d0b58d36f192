"""Replay and feed resume in rabbitmq mode, from the history streams.

Every durable event of a type is also routed to the type's stream
(``<prefix>.history.<type>``), kept for ``history_max_age``. Reading starts
at a time offset (RabbitMQ's are in whole seconds, so a second early), then
skips what is older than asked:

* ``replay(subscriber, since=...)`` publishes again, to that subscriber's
  queue only, every stored event from ``since`` on (the event with that id
  included);
* ``events_after(event_id)`` returns the events stored after one (a feed
  resuming from ``Last-Event-ID``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aio_pika

from .._envelope import Envelope, decode_envelope
from .._exceptions import HookbusError, InvalidEnvelopeError, UnsupportedError
from .._ids import id_time
from .publisher import Publisher
from .shared import RabbitShared
from .streams import read_stream
from .topology import Topology

__all__ = ["History"]

_SEARCH_WINDOW = timedelta(seconds=60)  # clocks of emitter and broker may differ this much


class History:
    """Reads the history streams for replay and resume."""

    def __init__(self, shared: RabbitShared, topology: Topology, publisher: Publisher) -> None:
        self._shared = shared
        self._topology = topology
        self._publisher = publisher

    async def _stream(self, event_type: str) -> str:
        stream = await self._topology.history(event_type)
        if stream is None:
            raise UnsupportedError(
                "replay and feed resume need the history streams: RabbitMQOptions(history=True)"
            )
        return stream

    async def _entries(
        self, event_type: str, start: datetime
    ) -> AsyncIterator[tuple[Envelope | None, bytes]]:
        stream = await self._stream(event_type)
        offset = start - timedelta(seconds=1)
        async for message in read_stream(self._shared, self._publisher, stream, offset):
            envelope = None
            with contextlib.suppress(InvalidEnvelopeError):
                envelope = decode_envelope(
                    message.body, self._shared.types, self._shared.event_class(event_type)
                )
            yield envelope, message.body

    async def replay(self, event_type: str, queue: str, since: str | datetime) -> int:
        """Publish ``event_type``'s events from ``since`` on to ``queue``; how many."""
        if isinstance(since, datetime):
            # Event times count milliseconds: an event of since's millisecond is kept.
            since = since.replace(microsecond=since.microsecond // 1000 * 1000)
            start, wanted = since, None
        else:
            emitted = id_time(since)
            if emitted is None:
                raise HookbusError(f"{since!r} is not a hookbus event id; pass an id or a datetime")
            start, wanted = emitted - _SEARCH_WINDOW, since
        found = wanted is None
        sent = 0
        async for envelope, body in self._entries(event_type, start):
            if envelope is None:
                continue
            if not found:
                found = envelope.id == wanted
            elif wanted is None and envelope.time < since:  # type: ignore[operator]
                continue
            if found:
                await self._publisher.send(
                    queue, aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                )
                sent += 1
        if not found:
            raise HookbusError(
                f"event {since} is not in the history of {event_type} (expired, or another type)"
            )
        return sent

    async def events_after(
        self, event_id: str, types: list[str], limit: int
    ) -> list[Envelope] | None:
        """Events of ``types`` stored after event ``event_id``, oldest first; ``None``
        when that event is not in their history."""
        emitted = id_time(event_id)
        if emitted is None:
            return None
        start = emitted - _SEARCH_WINDOW
        known = False
        later: list[Envelope] = []
        for event_type in types:
            seen = False
            async for envelope, _ in self._entries(event_type, start):
                if envelope is None:
                    continue
                if envelope.id == event_id:
                    seen = known = True
                elif envelope.id > event_id or seen:
                    later.append(envelope)
        if not known:
            return None
        later.sort(key=lambda e: e.id)
        return later[:limit]
