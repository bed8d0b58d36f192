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
from pamqp import commands as spec

from .._backoff import Backoff
from .._envelope import Envelope
from .._exceptions import BusClosedError, BusUnavailableError, error_text
from .client import is_refused, is_transient
from .shared import RabbitShared
from .topology import Topology

__all__ = ["Publisher"]

logger = logging.getLogger("hookbus")

CONTENT_TYPE = "application/cloudevents+json"


class Publisher:
    """Publishes envelopes and other messages with confirmation."""

    def __init__(self, shared: RabbitShared, topology: Topology) -> None:
        self._shared = shared
        self._topology = topology
        self._channel: Any = None
        self._ready: dict[str, str] = {}  # event type -> its exchange, declared
        self._underlays: dict[int, Any] = {}
        self._opening: asyncio.Lock = asyncio.Lock()
        self._closed = False

    async def _chan(self) -> Any:
        if self._channel is None or self._channel.is_closed:
            async with self._opening:
                if self._channel is None or self._channel.is_closed:
                    connection = self._shared.live_connection()
                    self._channel = await connection.channel(publisher_confirms=True)
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
        name = self._ready.get(envelope.type)
        if name is None:
            name = await self._topology.exchange(envelope.type)
            if envelope.durable:
                await self._topology.history(envelope.type)
            self._ready[envelope.type] = name
        properties = spec.Basic.Properties(
            delivery_mode=2 if envelope.durable else 1,
            message_id=envelope.id,
            message_type=envelope.type,
            content_type=CONTENT_TYPE,
        )
        # Straight to the channel's AMQP layer: building an aio-pika Message per
        # event would cost as much as the rest of the publish.
        await self._confirmed(name, "", envelope.encode(), properties)

    async def _underlay(self) -> Any:
        channel = await self._chan()
        underlay = self._underlays.get(id(channel))
        if underlay is None or underlay.is_closed:
            underlay = await channel.get_underlay_channel()
            self._underlays = {id(channel): underlay}
        return underlay

    async def send(self, routing_key: str, message: aio_pika.Message) -> None:
        """Publish ``message`` to one queue (default exchange); return once confirmed."""
        properties = spec.Basic.Properties(
            delivery_mode=int(message.delivery_mode),
            headers=message.headers or None,
            message_id=message.message_id,
            message_type=message.type,
            content_type=message.content_type,
        )
        await self._confirmed("", routing_key, message.body, properties)

    async def _confirmed(
        self, exchange: str, routing_key: str, body: bytes, properties: Any
    ) -> None:
        timeout = self._shared.options.emit_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = Backoff()
        while True:
            try:
                underlay = await self._underlay()
                remaining = max(0.05, deadline - loop.time())
                confirmation = await underlay.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=False,
                    timeout=remaining,
                )
                if isinstance(confirmation, spec.Basic.Nack | spec.Basic.Reject):
                    raise PublishNacked(f"the broker refused the message ({confirmation.name})")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closed:
                    raise BusClosedError(
                        "the bus stopped while the event was being published"
                    ) from exc
                if is_refused(exc):
                    raise BusUnavailableError(
                        f"RabbitMQ refused the message: {error_text(exc, 300)}"
                    ) from exc
                if not is_transient(exc) and not isinstance(exc, PublishNacked):
                    raise BusUnavailableError(
                        f"RabbitMQ did not accept the message: {error_text(exc, 300)}"
                    ) from exc
                if loop.time() >= deadline:
                    raise BusUnavailableError(
                        f"RabbitMQ unreachable for {timeout:.1f}s (emit_timeout): "
                        f"{error_text(exc, 300)}"
                    ) from exc
                await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - loop.time())))


class PublishNacked(Exception):
    """The broker answered a publish with a negative confirmation (a queue refused it,
    e.g. full): tried again until ``emit_timeout``."""
