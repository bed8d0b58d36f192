"""The redis backend (``mode="redis"``): durable events on Streams, live ones on Pub/Sub.

* ``publish``: durable envelopes are appended to ``<p>:stream:<type>`` and
  announced on ``<p>:live:<type>`` (one script, pipelined with concurrent
  emits, see :mod:`hookbus._redis_publisher`); ephemeral ones are only
  published on the live channel.
* Each durable subscription is a consumer group (named by subscriber id)
  created when any process declaring it starts; each process is one
  consumer (:mod:`hookbus._redis_consumer`).
* Ephemeral subscriptions are served from the live channel
  (:mod:`hookbus._redis_live`) through an in-process backend.
* Upkeep (leases, retention, consumer names): :mod:`hookbus._redis_maintenance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import ClassVar, TypeVar

from .._backend import Backend
from .._backoff import Backoff, until_reachable
from .._capabilities import Capabilities
from .._dead_letter import DeadLetter
from .._delivery import Deliverer
from .._envelope import Envelope, decode_envelope
from .._exceptions import (
    BusUnavailableError,
    DrainTimeoutError,
    InvalidEnvelopeError,
)
from .._live import LiveStatistics
from .._local import LocalBackend
from .._logging import log_extra
from .._redis_url import safe_url
from .._settings import Settings
from .._status import BackendStatus
from .._subscription import SubscriberStats, Subscription, claim_subscriber
from .client import (
    close_client,
    connect,
    id_key,
    is_refused,
    is_transient,
    make_client,
    refused_error,
)
from .consumer import StreamConsumer
from .dead_letters import DeadLetterStore
from .groups import group_caught_up
from .keys import Keys, consumer_name
from .live import LiveFeed
from .maintenance import Maintenance
from .publisher import Publisher
from .replay import entries_read_at, entry_of_event_in, replay_position
from .shared import RedisShared
from .status import redis_status

__all__ = ["RedisBackend"]


logger = logging.getLogger("hookbus")

_T = TypeVar("_T")

_STOP_STEP = 5.0  # seconds each clean-up step of a stop may wait on Redis


class RedisBackend(Backend):
    """Redis Streams for durable events, Redis Pub/Sub for live ones."""

    capabilities = Capabilities(
        durable=True,
        ordered=False,  # several consumers share a group; retries and reclaims reorder
        survives_restart=True,
        multi_process=True,
        replay=True,
        persistent_dead_letters=True,
    )
    encodes_envelopes: ClassVar[bool] = True

    def __init__(self, settings: Settings, executor: Callable[[], Executor]) -> None:
        super().__init__(settings, executor)
        options = settings.redis
        self.shared = shared = RedisShared(
            settings=settings,
            keys=Keys(options.prefix, options.hash_tag, cluster=settings.redis_cluster),
            consumer=consumer_name(),
            executor=executor,
            hub=self.hub,
        )
        self.local = LocalBackend(settings, executor)
        self._consumers: dict[tuple[str, str], StreamConsumer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self.publisher: Publisher | None = None
        self.live = LiveFeed(shared, self.local.offer, self._ephemeral_types)
        self.hub.on_change = self.live.mark_dirty
        self.hub.settle = self._settle_listeners
        self.maintenance = Maintenance(shared, self.consumers)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        shared = self.shared
        name = f"hookbus:{shared.consumer}"
        shared.client = make_client(self.settings, name=name)
        shared.blocking = make_client(self.settings, blocking=True, name=f"{name}:reads")
        self.publisher = Publisher(shared.client, shared.keys, shared.options, self.live.remember)
        shared.dead_letter_store = DeadLetterStore(shared.client, shared.keys, shared.types)
        try:
            await self._until_reachable(self._create_groups)
            await self.local.start()
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self.live.run(), name="hookbus:live"),
                loop.create_task(self.maintenance.run(), name="hookbus:maintenance"),
            ]
            self._running = True
            if self.settings.redis.consume:
                for consumer in self._consumers.values():
                    self._start_consumer(consumer)
            await self._until_reachable(self._wait_live_ready)
        except BaseException:
            await self.stop(0)
            raise

    async def _create_groups(self) -> None:
        await connect(self.shared.client)
        await connect(self.shared.blocking)
        for consumer in self._consumers.values():
            await consumer.ensure_groups()

    async def _wait_live_ready(self) -> None:
        """The live feed listens (confirmed by Redis) to every channel it needs."""
        async with asyncio.timeout(self.settings.redis.emit_timeout):
            while not self.live.ready.is_set():
                if self.live.refusal is not None:
                    raise refused_error(self.live.refusal, safe_url(self.settings.redis_url))
                await asyncio.sleep(0.01)
            await self.live.round_trip(self.shared.client)

    async def _until_reachable(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action``, retrying while Redis is unreachable, up to ``emit_timeout``."""
        url = safe_url(self.settings.redis_url)

        def refusal(exc: BaseException) -> Exception | None:
            if self.live.refusal is not None:  # the live feed was refused (ACL)
                return refused_error(self.live.refusal, url)
            return refused_error(exc, url) if is_refused(exc) else None

        await until_reachable(
            action,
            timeout=self.settings.redis.emit_timeout,
            server=f"Redis at {url}",
            refusal=refusal,
            transient=is_transient,
        )

    def _start_consumer(self, consumer: StreamConsumer) -> None:
        if consumer.task is None:
            consumer.stopping = False
            consumer.task = asyncio.get_running_loop().create_task(
                consumer.run(), name=f"hookbus:{consumer.group}:{consumer.sub.event_name}"
            )

    async def stop(self, timeout: float) -> None:
        self._running = False
        self.hub.close_all()
        if self.publisher is not None:
            await self.publisher.close()
        await asyncio.gather(*(c.stop_task(timeout) for c in self._consumers.values()))
        for consumer in self._consumers.values():
            consumer.cancel_timers()
            # Each step bounded: a stop never waits on Redis for long.
            with contextlib.suppress(Exception):  # no longer a live consumer of the group
                async with asyncio.timeout(_STOP_STEP):
                    await self.shared.client.zrem(
                        self.shared.keys.live_consumers(consumer.sub.event_name, consumer.group),
                        self.shared.consumer,
                    )
            with contextlib.suppress(Exception):
                # What it still holds (waiting for a retry, read but not handled)
                # goes to the group's other consumers at once.
                async with asyncio.timeout(_STOP_STEP):
                    await consumer.hand_back(consumer.held_ids())
        await self.local.stop(timeout)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=_STOP_STEP)
            if stuck:
                logger.warning(
                    "redis backend stopped with %d background task(s) still ending: %s",
                    len(stuck),
                    ", ".join(sorted(task.get_name() for task in stuck)),
                    extra=log_extra("redis"),
                )
        self._tasks = []
        shared = self.shared
        for client in (shared.client, shared.blocking):
            if client is not None:
                with contextlib.suppress(Exception):
                    await close_client(client)
        shared.client = shared.blocking = None

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        self.shared.types.setdefault(subscription.event_name, subscription.event_type)
        if not subscription.durable:
            self.local.subscribe(subscription)
            self.live.mark_dirty()
            return
        key = claim_subscriber(self._consumers, subscription)
        consumer = StreamConsumer(self.shared, subscription)
        self._consumers[key] = consumer
        self.shared.readers[subscription.event_name] += 1
        if self._running:
            task = asyncio.get_running_loop().create_task(self._late_start(consumer))
            self._tasks.append(task)

    async def _late_start(self, consumer: StreamConsumer) -> None:
        await self._until_reachable(consumer.ensure_groups)
        if self.settings.redis.consume and self._running:
            self._start_consumer(consumer)

    def consumers(self) -> list[StreamConsumer]:
        """The durable subscriptions' consumers of this process."""
        return list(self._consumers.values())

    def _ephemeral_types(self) -> set[str]:
        """Event types with ephemeral subscribers in this process."""
        return {s.sub.event_name for s in self.local.workers()}

    # -- emitting --------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        if self.publisher is None:
            raise BusUnavailableError("the redis backend is not started")
        return self.publisher.publish(envelope)

    # -- drain -------------------------------------------------------------------------

    async def drain(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                backoff = Backoff()
                while True:
                    try:
                        await self._drain_once()
                        return
                    except Exception as exc:
                        if not is_transient(exc):
                            raise
                        # Unreachable for now, or a pooled connection a restarted
                        # server closed: ask again, until the timeout.
                        await backoff.sleep()
        except TimeoutError:
            raise DrainTimeoutError(
                f"drain timed out after {timeout}s: some subscriber has not caught up"
            ) from None

    async def _drain_once(self) -> None:
        await self._sync_live()
        await self.local.drain(None)
        delay = 0.005
        while not await self._settled():
            await asyncio.sleep(delay)
            delay = min(0.1, delay * 1.5)

    async def _sync_live(self) -> None:
        """Wait until Pub/Sub messages published so far have reached this process."""
        await self.live.ready.wait()
        await self.live.round_trip(self.shared.client)

    async def _settle_listeners(self) -> None:
        if self._running:
            await self._sync_live()

    async def _settled(self) -> bool:
        for consumer in self._consumers.values():
            if consumer.pending:
                return False
            for stream in (consumer.stream, consumer.requeue):
                if not await group_caught_up(self.shared.client, stream, consumer.group):
                    return False
        return True

    # -- dead letters and replay ---------------------------------------------------------

    async def dead_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        return await _one_shot(lambda: self.shared.dead_letters().list_letters(subscriber, limit))

    async def retry_dead_letter(self, dead_letter_id: str) -> None:
        await _one_shot(lambda: self.shared.dead_letters().requeue(dead_letter_id))

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        await _one_shot(lambda: self.shared.dead_letters().discard(dead_letter_id))

    async def replay(self, subscriber: str, event_type: str | None, since: str | datetime) -> int:
        return await _one_shot(lambda: self._replay(subscriber, event_type, since))

    async def _replay(self, subscriber: str, event_type: str | None, since: str | datetime) -> int:
        """Rewind ``subscriber``'s groups so that events from ``since`` on come again."""
        rewound = 0
        for (sub_id, type_name), consumer in self._consumers.items():
            if sub_id != subscriber or event_type not in (None, type_name):
                continue
            client = self.shared.client
            position = await replay_position(client, consumer.stream, since)
            entries_read = await entries_read_at(client, consumer.stream, position)
            await client.xgroup_setid(
                consumer.stream, consumer.group, position, entries_read=entries_read
            )
            rewound += 1
        return rewound

    async def events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        return await _one_shot(lambda: self._events_after(event_id, types, limit))

    async def _events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        shared = self.shared
        names = sorted(types if types is not None else shared.known_types())
        streams = [shared.keys.stream(name).encode() for name in names]
        start = await entry_of_event_in(shared.client, streams, event_id)
        if start is None:
            return None
        found: list[tuple[tuple[int, int], Envelope]] = []
        for name, stream in zip(names, streams, strict=True):
            entries = await shared.client.xrange(stream, min=b"(" + start, max="+", count=limit)
            for entry_id, fields in entries:
                raw = fields.get(b"e")
                if raw is None:
                    continue
                with contextlib.suppress(InvalidEnvelopeError):
                    envelope = decode_envelope(raw, shared.types, shared.event_class(name))
                    found.append((id_key(entry_id), envelope))
        found.sort(key=lambda pair: pair[0])
        return [envelope for _, envelope in found[:limit]]

    def live_statistics(self) -> LiveStatistics:
        feed = self.live
        return LiveStatistics(feed.disconnects, feed.missed, feed.caught_up)

    def statistics(self) -> list[SubscriberStats]:
        return [c.stats() for c in self._consumers.values()] + self.local.statistics()

    async def status(self, subscriptions: Sequence[Subscription]) -> BackendStatus:
        return await _one_shot(lambda: redis_status(self.shared, subscriptions))

    def deliverers(self) -> list[Deliverer]:
        return [*self._consumers.values(), *self.local.deliverers()]


async def _one_shot(call: Callable[[], Awaitable[_T]]) -> _T:
    """An operator's call (status, dead letters, replay): tried once more at once when
    Redis seems unreachable, for a restarted server has closed every pooled connection
    and only the first use of each finds out; still unreachable, a
    :class:`BusUnavailableError`."""
    try:
        return await call()
    except Exception as exc:
        if not is_transient(exc):
            raise
    try:
        return await call()
    except Exception as exc:
        if is_transient(exc):
            raise BusUnavailableError(f"Redis unreachable: {exc}") from exc
        raise
