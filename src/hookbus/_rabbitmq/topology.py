"""Declaring exchanges and queues, idempotently (each once per process).

Every declaration is made with the same arguments by every process, so that
RabbitMQ accepts it again; a queue that exists with other arguments (a
history stream declared with another retention) is used as it is, with a
warning, rather than failing the start.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import aio_pika

from .._logging import log_extra
from .client import amqp_errors
from .names import Names, retry_bucket_ms
from .shared import RabbitShared

__all__ = ["Topology"]

logger = logging.getLogger("hookbus")

#: Segment size of the completion streams: RabbitMQ's retention removes whole
#: segments, never the one being written (500 MB by default, i.e. never for
#: such small records).
COMPLETIONS_SEGMENT_BYTES = 4 * 1024 * 1024


class Topology:
    """Declares what the backend uses, on a channel of its own, remembering what is done."""

    def __init__(self, shared: RabbitShared) -> None:
        self._shared = shared
        self._names: Names = shared.names
        self._channel: Any = None
        self._done: set[str] = set()
        self._lock = asyncio.Lock()

    async def _chan(self) -> Any:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._shared.live_connection().channel(publisher_confirms=False)
        return self._channel

    async def close(self) -> None:
        """Close the declaring channel."""
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    def forget(self) -> None:
        """After a reconnect to a broker that may have lost non-durable state."""
        self._done.clear()

    async def exchange(self, event_type: str) -> str:
        """Declare the fanout exchange of ``event_type`` (durable); return its name."""
        name = self._names.exchange(event_type)
        if name not in self._done:
            every = await self.all_events()
            async with self._lock:
                channel = await self._chan()
                exchange = await channel.declare_exchange(
                    name, aio_pika.ExchangeType.FANOUT, durable=True
                )
                destination = await channel.get_exchange(every, ensure=False)
                await destination.bind(exchange)
                self._done.add(name)
        return name

    async def all_events(self) -> str:
        """Declare the exchange every type's exchange forwards to; return its name."""
        name = self._names.all_events()
        if name not in self._done:
            async with self._lock:
                channel = await self._chan()
                await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
                self._done.add(name)
        return name

    async def subscriber_queue(self, event_type: str, subscriber: str) -> str:
        """Declare one subscriber's quorum queue, bound to its type's exchange."""
        exchange = await self.exchange(event_type)
        name = self._names.queue(event_type, subscriber)
        if name not in self._done:
            async with self._lock:
                channel = await self._chan()
                queue = await channel.declare_queue(
                    name, durable=True, arguments={"x-queue-type": "quorum"}
                )
                await queue.bind(exchange)
                self._done.add(name)
        return name

    async def retry_queue(self, event_type: str, subscriber: str, delay: float) -> str:
        """Declare the retry queue of ``subscriber`` for a backoff of ``delay`` seconds:
        its messages expire after the (rounded) delay back into the subscriber's queue."""
        ms = retry_bucket_ms(delay)
        name = self._names.retry(event_type, subscriber, ms)
        if name not in self._done:
            async with self._lock:
                channel = await self._chan()
                await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-message-ttl": ms,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": self._names.queue(event_type, subscriber),
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",
                    },
                )
                self._done.add(name)
        return name

    async def history(self, event_type: str) -> str | None:
        """Declare the history stream of ``event_type``, bound to its exchange (when
        the ``history`` option is on); return its name."""
        if not self._shared.options.history:
            return None
        exchange = await self.exchange(event_type)
        name = self._names.history(event_type)
        if name not in self._done:
            async with self._lock:
                await self._declare_stream(name, self._history_arguments())
                channel = await self._chan()
                queue = await channel.get_queue(name, ensure=False)
                await queue.bind(exchange)
                self._done.add(name)
        return name

    async def completions(self, event_type: str, subscriber: str) -> str:
        """Declare the stream of ``subscriber``'s completions of ``event_type`` (an
        idempotent subscription), kept ``idempotency_retention``; return its name."""
        name = self._names.completions(event_type, subscriber)
        if name not in self._done:
            async with self._lock:
                await self._declare_stream(name, self._completions_arguments())
                self._done.add(name)
        return name

    async def dead(self) -> str:
        """Declare the dead-letter stream."""
        name = self._names.dead()
        if name not in self._done:
            async with self._lock:
                await self._declare_stream(name, {"x-queue-type": "stream"})
                self._done.add(name)
        return name

    async def message_count(self, queue: str) -> int:
        """Messages ready in ``queue`` (which exists)."""
        channel = await self._chan()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def exists(self, queue: str) -> bool:
        """Whether ``queue`` exists (checked on a channel of its own: the broker closes
        the channel that asks about a missing queue)."""
        channel = await self._shared.live_connection().channel(publisher_confirms=False)
        try:
            await channel.declare_queue(queue, passive=True)
        except amqp_errors.ChannelNotFoundEntity:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        return True

    def _history_arguments(self) -> dict[str, Any]:
        options = self._shared.options
        arguments: dict[str, Any] = {"x-queue-type": "stream"}
        if options.history_max_age is not None:
            arguments["x-max-age"] = f"{int(options.history_max_age)}s"
        if options.history_max_bytes is not None:
            arguments["x-max-length-bytes"] = options.history_max_bytes
        return arguments

    def _completions_arguments(self) -> dict[str, Any]:
        retention = self._shared.settings.idempotency_retention
        return {
            "x-queue-type": "stream",
            # Whole seconds, at least one; RabbitMQ removes a segment once all of it is
            # older than this, so small segments let it shrink.
            "x-max-age": f"{max(1, math.ceil(retention))}s",
            "x-stream-max-segment-size-bytes": COMPLETIONS_SEGMENT_BYTES,
        }

    async def _declare_stream(self, name: str, arguments: dict[str, Any]) -> None:
        channel = await self._chan()
        try:
            await channel.declare_queue(name, durable=True, arguments=arguments)
        except amqp_errors.ChannelPreconditionFailed as exc:
            logger.warning(
                "hookbus: stream %s exists with other arguments; using it as it is (%s)",
                name,
                exc,
                extra=log_extra("rabbitmq"),
            )
            self._channel = None  # the broker closed that channel
