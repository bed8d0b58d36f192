"""One durable subscription's consumer in one process (rabbitmq mode).

The subscription's quorum queue is consumed on a channel of its own with
``prefetch`` unacknowledged messages; messages are handled one at a time,
in the order they arrived, and acknowledged once the handler returned. A
failed delivery is published (confirmed) to the subscriber's retry queue for
its backoff delay — a queue per delay, whose messages expire back into the
subscriber's queue — and only then acknowledged; so a crash in between
delivers it again rather than losing it. The attempt number travels in the
``x-hookbus-attempt`` header; deliveries that crashed their consumer are
counted by the queue itself (``x-delivery-count``, redeliveries only), and
both add up. After ``max_attempts``, the event becomes a dead letter
(confirmed), then is acknowledged. A message that is not a valid envelope of
the subscribed type is a dead letter at once, with its bytes.

An idempotent subscription's consumer first reads the subscription's
completion records (:mod:`.completions`) and keeps following them; a
delivery is then skipped when its event id was completed, and a completion
is recorded (confirmed) before the message is acknowledged. Other
subscriptions have no such store and nothing on their path changes.

When the process stops, the channel closes: what it held unacknowledged
goes back to the queue for the other consumers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any

import aio_pika

from .._context import _worker
from .._delivery import Action, Deliverer
from .._envelope import Envelope, decode_envelope
from .._exceptions import InvalidEnvelopeError
from .._subscription import SubscriberStats, Subscription
from .completions import StreamCompletions
from .dead_letters import DeadLetterLog
from .names import retry_bucket_ms
from .publisher import Publisher
from .shared import RabbitShared
from .topology import Topology

__all__ = ["ATTEMPT_HEADER", "SYNC_HEADER", "QueueConsumer"]

logger = logging.getLogger("hookbus")

ATTEMPT_HEADER = "x-hookbus-attempt"
SYNC_HEADER = "x-hookbus-sync"
_SYNC_RESEND = 1.0
_RETRY_GRACE = 5.0  # seconds a retry may take, past its delay, to come back


class QueueConsumer(Deliverer):
    """Delivers one subscription's queue to its handler, in this process."""

    def __init__(
        self,
        shared: RabbitShared,
        sub: Subscription,
        topology: Topology,
        publisher: Publisher,
        dead_letters: DeadLetterLog,
    ) -> None:
        #: The completion records, for an idempotent subscription only.
        self.records = (
            StreamCompletions(shared, sub, topology, publisher) if sub.idempotent else None
        )
        super().__init__(sub, shared.executor, self.records, mode="rabbitmq")
        self.shared = shared
        self.queue_name = shared.names.queue(sub.event_name, sub.id)
        self._topology = topology
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._channel: Any = None
        self._inbox: deque[Any] = deque()
        self._wakeup: asyncio.Event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self._max_size = shared.settings.max_event_size
        #: Retry queues this process declared for the subscription.
        self.retry_queues: set[str] = set()
        #: Messages sent to a retry queue, ever (a drain compares them).
        self.retries_sent = 0
        #: Retries sent and not seen back here: (message id, attempt) -> when due.
        self.outstanding: dict[tuple[str, int], float] = {}
        self._syncing: dict[str, asyncio.Future[None]] = {}

    @property
    def pending(self) -> int:
        """Messages received here and not finished."""
        return len(self._inbox) + (0 if self.current is None else 1)

    async def declare(self) -> None:
        """Declare the subscription's queue, its type's history stream, and (idempotent
        subscription) its completion stream."""
        await self._topology.subscriber_queue(self.sub.event_name, self.sub.id)
        await self._topology.history(self.sub.event_name)
        if self.records is not None:
            await self.records.declare()

    async def start(self) -> None:
        """Begin consuming (on a channel of its own); an idempotent subscription once
        its completion records are read."""
        if self.records is not None:
            await self.records.open()
        connection = self.shared.live_connection()
        self._channel = await connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=self.shared.options.prefetch)
        # Declared (the same arguments as the topology's), not merely looked up: the
        # robust channel then declares it and consumes again after a reconnect.
        queue = await self._channel.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.consume(self._received, no_ack=False)
        self.stopping = False
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"hookbus:{self.sub.id}:{self.sub.event_name}"
        )

    async def _received(self, message: Any) -> None:
        self._inbox.append(message)
        self._wakeup.set()

    async def run(self) -> None:
        _worker.set(self)
        inbox = self._inbox
        while not self.stopping:
            if not inbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            message = inbox.popleft()
            try:
                await self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Unacknowledged, it comes back (counted as a redelivery) when the
                # channel closes; never lost.
                logger.exception(
                    "subscriber %s: unexpected error handling a message; it will come back",
                    self.sub.id,
                    extra=self.log_extra(self.current),
                )
                await self._nack(message)
            finally:
                self.current = None

    async def handle(self, message: Any) -> None:
        """Handle one message: ack, retry later, or dead-letter it."""
        headers = message.headers or {}
        token = headers.get(SYNC_HEADER)
        if token is not None:  # a drain's marker: everything before it was delivered
            await message.ack()
            future = self._syncing.get(str(token))
            if future is not None and not future.done():
                future.set_result(None)
            return
        attempt = _int(headers.get(ATTEMPT_HEADER), 1) + _int(headers.get("x-delivery-count"), 0)
        if self.outstanding:
            self.outstanding.pop(
                (message.message_id or "", _int(headers.get(ATTEMPT_HEADER), 1)), None
            )
        body: bytes = message.body
        try:
            if len(body) > self._max_size:
                raise InvalidEnvelopeError(f"message of {len(body)} bytes, above max_event_size")
            envelope = decode_envelope(body, self.shared.types, self.sub.event_type)
        except InvalidEnvelopeError as exc:
            self.gave_up()
            await self._dead_letter(message, None, attempt, exc)
            return
        crashed = self.crashed_too_often(attempt)
        if crashed is not None:
            self.gave_up()
            await self._dead_letter(message, envelope, attempt - 1, crashed)
            return
        error = await self.deliver(envelope, attempt)
        self.current = None
        if error is None:
            await message.ack()
            return
        step = self.failure(envelope, attempt, error)
        if step.action is Action.RETRY:
            await self._retry_later(message, attempt + 1, step.delay)
        else:
            await self._dead_letter(message, envelope, attempt, error)

    async def _retry_later(self, message: Any, attempt: int, delay: float) -> None:
        queue = await self._topology.retry_queue(self.sub.event_name, self.sub.id, delay)
        self.retry_queues.add(queue)
        headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
        headers[ATTEMPT_HEADER] = attempt
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            content_type=message.content_type,
        )
        await self._publisher.send(queue, copy)
        self.retries_sent += 1
        due = asyncio.get_running_loop().time() + retry_bucket_ms(delay) / 1000
        self.outstanding[(message.message_id or "", attempt)] = due
        await message.ack()

    async def _dead_letter(
        self, message: Any, envelope: Envelope | None, attempts: int, exc: BaseException
    ) -> None:
        await self._dead_letters.add(
            subscriber=self.sub.id,
            event_type=self.sub.event_name,
            payload=message.body,
            envelope=envelope,
            attempts=attempts,
            error=exc,
            failed_at=datetime.now(UTC),
            source=self.queue_name,
            position=message.message_id or "",
        )
        await message.ack()

    def awaiting_retries(self) -> bool:
        """Whether retries sent by this process may still come back to it: some not
        seen back yet, and not overdue by more than a few seconds (overdue ones
        went to another process of the subscriber, or were dead-lettered there)."""
        late = asyncio.get_running_loop().time() - _RETRY_GRACE
        for key, due in list(self.outstanding.items()):
            if due < late:
                del self.outstanding[key]
        return bool(self.outstanding)

    async def sync_through(self, queue: str) -> None:
        """Return once a marker sent now into ``queue`` reached this consumer: what
        was in the queue before it has been delivered (and, to this process,
        handled). Sent again every second, should another process take it."""
        token = secrets.token_hex(8)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncing[token] = future
        marker = aio_pika.Message(
            b"", headers={SYNC_HEADER: token}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        try:
            while True:
                await self._publisher.send(queue, marker)
                done, _ = await asyncio.wait({future}, timeout=_SYNC_RESEND)
                if done:
                    return
        finally:
            self._syncing.pop(token, None)

    async def _nack(self, message: Any) -> None:
        with contextlib.suppress(Exception):
            await message.nack(requeue=True)

    async def stop(self, timeout: float) -> None:
        """Let the current handler finish within ``timeout``, then cancel; close the
        channel, which gives back what this process held."""
        self.stopping = True
        self._wakeup.set()
        task, self.task = self.task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._inbox.clear()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
        if self.records is not None:
            with contextlib.suppress(Exception):
                await self.records.close()

    def stats(self) -> SubscriberStats:
        """The subscription's counters in this process."""
        return self.snapshot(self.pending)


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default
