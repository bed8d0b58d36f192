"""The rabbitmq backend (``mode="rabbitmq"``): quorum queues, confirms, streams.

* ``publish``: every event goes to its type's fanout exchange, confirmed
  (:mod:`.publisher`); durable events as persistent messages.
* Each durable subscription is a quorum queue bound to that exchange (named
  by subscriber id), declared when any process declaring it starts; each
  process consumes it (:mod:`.consumer`): every subscriber gets every event,
  handled once per subscriber.
* Retries wait in per-delay retry queues that expire back into the
  subscriber's queue; dead letters go to a stream (:mod:`.dead_letters`).
* Every durable event is kept in a stream per type for replay and feed
  resume (:mod:`.history`).
* Ephemeral events and live listeners: one exclusive queue per process
  (:mod:`.live`), ephemeral handlers served through an in-process backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from .._backend import Backend
from .._backoff import until_reachable
from .._capabilities import Capabilities
from .._dead_letter import DeadLetter
from .._delivery import Deliverer
from .._envelope import Envelope
from .._event import is_durable
from .._exceptions import BusUnavailableError, DrainTimeoutError
from .._local import LocalBackend
from .._redis.keys import consumer_name
from .._redis_url import safe_url
from .._settings import Settings
from .._status import BackendStatus
from .._subscription import SubscriberStats, Subscription, claim_subscriber
from .client import connect, is_refused, is_transient, refused_error
from .consumer import QueueConsumer
from .dead_letters import DeadLetterLog
from .history import History
from .live import LiveQueue
from .names import Names
from .publisher import Publisher
from .shared import RabbitShared
from .status import rabbitmq_status
from .topology import Topology

__all__ = ["RabbitMQBackend"]

logger = logging.getLogger("hookbus")


class RabbitMQBackend(Backend):
    """RabbitMQ quorum queues for durable events, transient messages for live ones."""

    capabilities = Capabilities(
        durable=True,
        ordered=False,  # several consumers share a queue; retries reorder
        survives_restart=True,
        multi_process=True,
        replay=True,
        persistent_dead_letters=True,
    )
    encodes_envelopes: ClassVar[bool] = True

    def __init__(self, settings: Settings, executor: Callable[[], Executor]) -> None:
        super().__init__(settings, executor)
        if not settings.rabbitmq.history:  # no history streams: nothing to replay from
            self.capabilities = replace(type(self).capabilities, replay=False)
        self.shared = shared = RabbitShared(
            settings=settings,
            names=Names(settings.rabbitmq.prefix),
            consumer=consumer_name(),
            executor=executor,
            hub=self.hub,
        )
        self.local = LocalBackend(settings, executor)
        self.topology = Topology(shared)
        self.publisher = Publisher(shared, self.topology)
        self.dead_letter_log = DeadLetterLog(shared, self.topology, self.publisher)
        self.history = History(shared, self.topology, self.publisher)
        self.live = LiveQueue(
            shared, self.topology, self.publisher, self.local.offer, self._ephemeral_types
        )
        self.hub.on_change = self.live.mark_dirty
        self.hub.settle = self._settle_listeners
        self._consumers: dict[tuple[str, str], QueueConsumer] = {}
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._until_reachable(self._connect)
            await self._until_reachable(self._declare_all)
            await self.local.start()
            await self._until_reachable(self.live.start)
            self._running = True
            if self.settings.rabbitmq.consume:
                for consumer in self._consumers.values():
                    await self._until_reachable(consumer.start)
        except BaseException:
            await self.stop(0)
            raise

    async def _connect(self) -> None:
        if self.shared.connection is None:
            self.shared.connection = await connect(self.settings, f"hookbus:{self.shared.consumer}")

    async def _declare_all(self) -> None:
        await self.topology.dead()
        for consumer in self._consumers.values():
            await consumer.declare()

    async def _until_reachable(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action``, retrying while the broker is unreachable, up to ``emit_timeout``."""
        url = self.settings.amqp_url
        await until_reachable(
            action,
            timeout=self.settings.rabbitmq.emit_timeout,
            server=f"RabbitMQ at {safe_url(url)}",
            refusal=lambda exc: refused_error(exc, url) if is_refused(exc) else None,
            transient=is_transient,
        )

    async def stop(self, timeout: float) -> None:
        self._running = False
        self.hub.close_all()
        await asyncio.gather(*(c.stop(timeout) for c in self._consumers.values()))
        await self.local.stop(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.live.stop()
        with contextlib.suppress(Exception):
            await self.publisher.close()
        with contextlib.suppress(Exception):
            await self.topology.close()
        connection, self.shared.connection = self.shared.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        self.shared.types.setdefault(subscription.event_name, subscription.event_type)
        if not subscription.durable:
            self.local.subscribe(subscription)
            self.live.mark_dirty()
            return
        key = claim_subscriber(self._consumers, subscription)
        consumer = QueueConsumer(
            self.shared, subscription, self.topology, self.publisher, self.dead_letter_log
        )
        self._consumers[key] = consumer
        if self._running:
            task = asyncio.get_running_loop().create_task(self._late_start(consumer))
            self._tasks.append(task)

    async def _late_start(self, consumer: QueueConsumer) -> None:
        await self._until_reachable(consumer.declare)
        if self.settings.rabbitmq.consume and self._running:
            await self._until_reachable(consumer.start)

    def _ephemeral_types(self) -> set[str]:
        return {w.sub.event_name for w in self.local.workers()}

    # -- emitting --------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        if self.shared.connection is None:
            raise BusUnavailableError("the rabbitmq backend is not started")
        return self.publisher.publish(envelope)

    # -- drain -------------------------------------------------------------------------

    async def drain(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.live.round_trip()
                await self.local.drain(None)
                delay = 0.002
                while not await self._settle_queues():
                    if any(c.awaiting_retries() for c in self._consumers.values()):
                        await asyncio.sleep(delay)  # a retry is on its way back
                        delay = min(0.05, delay * 2)
        except TimeoutError:
            raise DrainTimeoutError(
                f"drain timed out after {timeout}s: some subscriber has not caught up"
            ) from None

    async def _settle_queues(self) -> bool:
        """One pass: a marker through each retry queue holding messages, then through
        each subscriber's queue (so what was queued before has been handled here).
        True when nothing was delivered or retried meanwhile."""
        consumers = [c for c in self._consumers.values() if c.task is not None]
        before = [(c.handled, c.failed, c.retries_sent) for c in consumers]
        for consumer in consumers:
            for name in sorted(consumer.retry_queues):
                if await self.topology.message_count(name):
                    await consumer.sync_through(name)
            await consumer.sync_through(consumer.queue_name)
        after = [(c.handled, c.failed, c.retries_sent) for c in consumers]
        return before == after and not any(c.awaiting_retries() for c in consumers)

    async def _settle_listeners(self) -> None:
        if self._running:
            await self.live.round_trip()

    # -- dead letters and replay ---------------------------------------------------------

    async def dead_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        return await self.dead_letter_log.list_letters(subscriber, limit)

    async def retry_dead_letter(self, dead_letter_id: str) -> None:
        await self.dead_letter_log.requeue(dead_letter_id)

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        await self.dead_letter_log.discard(dead_letter_id)

    async def replay(self, subscriber: str, event_type: str | None, since: str | datetime) -> int:
        """Publish ``subscriber``'s events from ``since`` on again, to its queues only."""
        rewound = 0
        for (sub_id, type_name), consumer in self._consumers.items():
            if sub_id != subscriber or event_type not in (None, type_name):
                continue
            await self.history.replay(type_name, consumer.queue_name, since)
            rewound += 1
        return rewound

    async def events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        names = sorted(types if types is not None else self._durable_types())
        return await self.history.events_after(event_id, names, limit)

    def _durable_types(self) -> set[str]:
        shared = self.shared
        return {
            name
            for name in shared.known_types()
            if (cls := shared.event_class(name)) is not None and is_durable(cls)
        }

    def statistics(self) -> list[SubscriberStats]:
        return [c.stats() for c in self._consumers.values()] + self.local.statistics()

    async def status(self, subscriptions: Sequence[Subscription]) -> BackendStatus:
        if self.shared.connection is None:
            raise BusUnavailableError("the rabbitmq backend is not started")
        return await rabbitmq_status(self.shared, self.dead_letter_log, subscriptions)

    def deliverers(self) -> list[Deliverer]:
        return [*self._consumers.values(), *self.local.deliverers()]
