"""The live side of the rabbitmq mode: ephemeral events and live listeners.

Each process has one exclusive, auto-deleted queue (``<prefix>.live.<consumer>``)
bound to the exchanges of the event types it needs: types with ephemeral
subscribers here, and types live listeners want. Ephemeral events are
transient messages: they reach the processes listening at that moment, at
most once, and are never stored. Ephemeral events go to the local
ephemeral subscribers (through an in-process backend); every message goes to
the live listeners. If the connection drops, what is published meanwhile
is missed here (the queue goes with the connection); a feed resuming with
``Last-Event-ID`` catches up on durable events from the history streams.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

import aio_pika

from .._envelope import Envelope, decode_envelope
from .._exceptions import InvalidEnvelopeError
from .._logging import log_extra
from .publisher import Publisher
from .shared import RabbitShared
from .topology import Topology

__all__ = ["LiveQueue"]

logger = logging.getLogger("hookbus")

_SYNC_HEADER = "x-hookbus-sync"
_SYNC_RESEND = 1.0


class LiveQueue:
    """This process's queue of live messages, bound to what it needs."""

    def __init__(
        self,
        shared: RabbitShared,
        topology: Topology,
        publisher: Publisher,
        deliver_ephemeral: Callable[[Envelope], None],
        ephemeral_types: Callable[[], set[str]],
    ) -> None:
        """``deliver_ephemeral`` hands an ephemeral event to this process's
        subscribers; ``ephemeral_types`` names the types they subscribe to."""
        self._shared = shared
        self._topology = topology
        self._publisher = publisher
        self._deliver_ephemeral = deliver_ephemeral
        self._ephemeral_types = ephemeral_types
        self.name = shared.names.live(shared.consumer)
        self._channel: Any = None
        self._queue: Any = None
        self._bound: set[str] = set()
        self._dirty = True
        self._syncing: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._rebind: asyncio.Task[None] | None = None
        #: Messages that could not be read (not an envelope).
        self.rejected = 0

    def wanted(self) -> set[str] | None:
        """Event types this process's queue must receive; ``None`` for every type."""
        shared = self._shared
        listened = shared.hub.wanted_types()
        if listened is None:
            return None
        return set(self._ephemeral_types()) | listened

    def mark_dirty(self) -> None:
        """The types this process needs changed (a listener, a subscription): the
        bindings follow (at once in the background; ``round_trip`` waits for them)."""
        self._dirty = True
        if self._queue is not None and (self._rebind is None or self._rebind.done()):
            self._rebind = asyncio.get_running_loop().create_task(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        try:
            await self.sync_bindings()
        except Exception as exc:  # the next round trip tries again
            self._dirty = True
            logger.warning(
                "hookbus live queue: could not update its bindings: %r",
                exc,
                extra=log_extra("rabbitmq"),
            )

    async def start(self) -> None:
        """Declare the queue, bind it, and start consuming it."""
        connection = self._shared.live_connection()
        self._channel = await connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=1000)
        self._queue = await self._channel.declare_queue(
            self.name, exclusive=True, auto_delete=True, durable=False
        )
        await self._queue.consume(self._received, no_ack=True)
        await self.sync_bindings()

    async def stop(self) -> None:
        """Close the channel (the queue goes with it)."""
        channel, self._channel = self._channel, None
        self._queue = None
        if self._rebind is not None:
            self._rebind.cancel()
        if channel is not None and not channel.is_closed:
            await channel.close()
        for future in self._syncing.values():
            if not future.done():
                future.cancel()

    async def sync_bindings(self) -> None:
        """Bind the queue to the exchanges of every type wanted now (or to the exchange
        of every type); unbind the others."""
        if self._queue is None:
            return
        async with self._lock:
            self._dirty = False
            wanted = self.wanted()
            if wanted is None:
                exchanges = {await self._topology.all_events()}
            else:
                exchanges = {await self._topology.exchange(t) for t in sorted(wanted)}
            for name in sorted(exchanges - self._bound):
                await self._queue.bind(name)
            for name in sorted(self._bound - exchanges):
                await self._queue.unbind(name)
            self._bound = exchanges

    async def round_trip(self) -> None:
        """Return once a message sent now to this queue came back: the bindings are
        in place and messages routed here before it have been received."""
        if self._dirty:
            await self.sync_bindings()
        token = secrets.token_hex(8)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncing[token] = future
        try:
            while True:
                await self._publisher.send(
                    self.name, aio_pika.Message(b"", headers={_SYNC_HEADER: token})
                )
                done, _ = await asyncio.wait({future}, timeout=_SYNC_RESEND)
                if done:
                    return
        finally:
            self._syncing.pop(token, None)

    async def _received(self, message: Any) -> None:
        token = (message.headers or {}).get(_SYNC_HEADER)
        if token is not None:
            future = self._syncing.get(str(token))
            if future is not None and not future.done():
                future.set_result(None)
            return
        event_type = message.type or ""
        try:
            envelope = decode_envelope(
                message.body, self._shared.types, self._shared.event_class(event_type)
            )
        except InvalidEnvelopeError as exc:
            self.rejected += 1
            logger.warning(
                "hookbus live queue: ignoring a bad message: %s", exc, extra=log_extra("rabbitmq")
            )
            return
        if not envelope.durable:
            self._deliver_ephemeral(envelope)
        self._shared.hub.deliver(envelope)
