"""Emitting in rabbitmq mode: publisher confirms, retried until ``emit_timeout``.

``publish`` sends the envelope to its type's fanout exchange on a channel in
confirm mode and returns once the broker confirmed it: for a durable event
(persistent message), once every queue it was routed to has it — with
quorum queues, once a majority of their replicas have written it. Concurrent
emits share the channel, so their confirmations pipeline. While the broker
cannot be reached (the connection reconnects by itself), the publish is
tried again with backoff until ``emit_timeout``, then
:class:`~hookbus.BusUnavailableError` is raised.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika

from .._backoff import Backoff
from .._envelope import Envelope
from .._exceptions import BusClosedError, BusUnavailableError, error_text
from .client import is_refused, is_transient
from .shared import RabbitShared
from .topology import Topology

__all__ = ["Publisher", "message_of"]

logger = logging.getLogger("hookbus")

CONTENT_TYPE = "application/cloudevents+json"


def message_of(envelope: Envelope, headers: dict[str, Any] | None = None) -> aio_pika.Message:
    """The AMQP message carrying ``envelope`` (persistent when durable)."""
    return aio_pika.Message(
        envelope.encode(),
        delivery_mode=(
            aio_pika.DeliveryMode.PERSISTENT
            if envelope.durable
            else aio_pika.DeliveryMode.NOT_PERSISTENT
        ),
        message_id=envelope.id,
        type=envelope.type,
        content_type=CONTENT_TYPE,
        headers=headers,
    )


class Publisher:
    """Publishes envelopes and other messages with confirmation."""

    def __init__(self, shared: RabbitShared, topology: Topology) -> None:
        self._shared = shared
        self._topology = topology
        self._channel: Any = None
        self._exchanges: dict[str, Any] = {}
        self._opening: asyncio.Lock = asyncio.Lock()
        self._closed = False

    async def _chan(self) -> Any:
        if self._channel is None or self._channel.is_closed:
            async with self._opening:
                if self._channel is None or self._channel.is_closed:
                    connection = self._shared.live_connection()
                    self._channel = await connection.channel(publisher_confirms=True)
                    self._exchanges.clear()
        return self._channel

    async def close(self) -> None:
        """Refuse new messages and close the channel."""
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()

    async def publish(self, envelope: Envelope) -> None:
        """Publish one event to its type's exchange; return once confirmed."""
        if self._closed:
            raise BusClosedError("the bus is stopped: it accepts no more events")
        name = await self._topology.exchange(envelope.type)
        if envelope.durable:
            await self._topology.history(envelope.type)
        await self._confirmed(name, "", message_of(envelope))

    async def send(self, routing_key: str, message: aio_pika.Message) -> None:
        """Publish ``message`` to one queue (default exchange); return once confirmed."""
        await self._confirmed("", routing_key, message)

    async def _confirmed(self, exchange_name: str, routing_key: str, message: Any) -> None:
        timeout = self._shared.options.emit_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = Backoff()
        while True:
            try:
                channel = await self._chan()
                exchange = self._exchanges.get(exchange_name)
                if exchange is None:
                    if exchange_name:
                        exchange = await channel.get_exchange(exchange_name, ensure=False)
                    else:
                        exchange = channel.default_exchange
                    self._exchanges[exchange_name] = exchange
                remaining = max(0.05, deadline - loop.time())
                await exchange.publish(
                    message, routing_key=routing_key, mandatory=False, timeout=remaining
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_refused(exc):
                    raise BusUnavailableError(
                        f"RabbitMQ refused the message: {error_text(exc, 300)}"
                    ) from exc
                if not is_transient(exc) and not _nacked(exc):
                    raise BusUnavailableError(
                        f"RabbitMQ did not accept the message: {error_text(exc, 300)}"
                    ) from exc
                if loop.time() >= deadline:
                    raise BusUnavailableError(
                        f"RabbitMQ unreachable for {timeout:.1f}s (emit_timeout): "
                        f"{error_text(exc, 300)}"
                    ) from exc
                self._channel = None if _channel_gone(exc) else self._channel
                await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - loop.time())))


def _nacked(exc: BaseException) -> bool:
    """A negative confirmation (a queue refused the message, e.g. full): retried."""
    return type(exc).__name__ in ("DeliveryError", "PublishError")


def _channel_gone(exc: BaseException) -> bool:
    return "closed" in str(exc).lower() or "ChannelInvalidState" in type(exc).__name__
