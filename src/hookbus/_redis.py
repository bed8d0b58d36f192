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
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, ClassVar

from ._backend import Backend
from ._capabilities import Capabilities
from ._dead_letter import DeadLetter
from ._envelope import Envelope, decode_envelope
from ._event import Event, declared, event_types
from ._exceptions import (
    BusUnavailableError,
    DrainTimeoutError,
    DuplicateSubscriberError,
    InvalidEnvelopeError,
)
from ._keys import Keys, consumer_name
from ._live import LiveStatistics
from ._local import LocalBackend
from ._redis_client import (
    Backoff,
    Redis,
    id_key,
    is_refused,
    is_transient,
    make_client,
    refused_error,
)
from ._redis_consumer import StreamConsumer
from ._redis_dead_letters import DeadLetterStore
from ._redis_live import LiveFeed
from ._redis_maintenance import Maintenance
from ._redis_publisher import Publisher
from ._redis_replay import entry_of_event_in, replay_position
from ._redis_url import safe_url
from ._settings import Settings
from ._subscription import SubscriberStats, Subscription

__all__ = ["RedisBackend"]

logger = logging.getLogger("hookbus")

DECODED_CACHE = 4096  # envelopes kept for the other subscriptions reading the same entries


class RedisBackend(Backend):
    """Redis Streams for durable events, Redis Pub/Sub for live ones."""

    capabilities: ClassVar[Capabilities] = Capabilities(
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
        self.keys = Keys(options.prefix, options.hash_tag)
        self.consumer = consumer_name()
        self.types: dict[str, type[Event]] = {}
        self.local = LocalBackend(settings, executor)
        self._consumers: dict[tuple[str, str], StreamConsumer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self.client: Redis = None
        self.blocking: Redis = None
        self.publisher: Publisher | None = None
        self.dead_letter_store: DeadLetterStore | None = None
        self.live = LiveFeed(self)
        self._decoded: OrderedDict[tuple[type[Event], bytes, bytes], Envelope] = OrderedDict()
        self._readers: Counter[str] = Counter()  # durable subscriptions per event type
        self.hub.on_change = self.live.mark_dirty
        self.hub.settle = self._settle_listeners
        self.maintenance = Maintenance(self)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.client = make_client(self.settings, name=f"hookbus:{self.consumer}")
        self.blocking = make_client(self.settings, blocking=True, name=f"hookbus:{self.consumer}")
        self.publisher = Publisher(
            self.client, self.keys, self.settings.redis.emit_timeout, self.live.remember
        )
        self.dead_letter_store = DeadLetterStore(self.client, self.keys, self.types)
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
        for consumer in self._consumers.values():
            await consumer.ensure_groups()

    async def _wait_live_ready(self) -> None:
        """The live feed listens (confirmed by Redis) to every channel it needs."""
        async with asyncio.timeout(self.settings.redis.emit_timeout):
            while not self.live.ready.is_set():
                if self.live.refusal is not None:
                    raise refused_error(self.live.refusal, safe_url(self.settings.redis_url))
                await asyncio.sleep(0.01)
            await self.live.round_trip(self.client)

    async def _until_reachable(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action``, retrying while Redis is unreachable, up to ``emit_timeout``."""
        timeout = self.settings.redis.emit_timeout
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await action()
                return
            except Exception as exc:
                if self.live.refusal is not None:
                    url = safe_url(self.settings.redis_url)
                    raise refused_error(self.live.refusal, url) from exc
                if is_refused(exc):
                    raise refused_error(exc, safe_url(self.settings.redis_url)) from exc
                if not (is_transient(exc) or isinstance(exc, TimeoutError)):
                    raise
                if loop.time() >= deadline:
                    raise BusUnavailableError(
                        f"Redis at {safe_url(self.settings.redis_url)} unreachable for "
                        f"{timeout:.1f}s: {exc}"
                    ) from exc
                await backoff.sleep()

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
            with contextlib.suppress(Exception):
                # What it still holds (waiting for a retry, read but not handled)
                # goes to the group's other consumers at once.
                await self.hand_back(consumer, consumer.held_ids())
        await self.local.stop(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for client in (self.client, self.blocking):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.client = self.blocking = None

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, subscription: Subscription) -> None:
        self.types.setdefault(subscription.event_name, subscription.event_type)
        if not subscription.durable:
            self.local.subscribe(subscription)
            self.live.mark_dirty()
            return
        key = (subscription.id, subscription.event_name)
        if key in self._consumers:
            raise DuplicateSubscriberError(
                f"subscriber {subscription.id!r} is already subscribed to "
                f"{subscription.event_name!r}; give one of them another name="
            )
        consumer = StreamConsumer(self, subscription)
        self._consumers[key] = consumer
        self._readers[subscription.event_name] += 1
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

    def ephemeral_types(self) -> set[str]:
        """Event types with ephemeral subscribers in this process."""
        return {s.sub.event_name for s in self.local.workers()}

    def known_types(self) -> set[str]:
        """Every event type this process knows: subscribed here, or declared (an
        ``Event`` subclass imported), so that a listener of every type sees them all."""
        return set(self.types) | set(event_types())

    def event_class(self, name: str) -> type[Event] | None:
        """The class of event type ``name``: subscribed here, or else declared."""
        return self.types.get(name) or declared(name)

    def deliver_ephemeral(self, envelope: Envelope) -> None:
        """An ephemeral event arrived on Pub/Sub: hand it to the local subscribers."""
        self.local.offer(envelope)

    # -- emitting --------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        if self.publisher is None:
            raise BusUnavailableError("the redis backend is not started")
        return self.publisher.publish(envelope)

    # -- drain -------------------------------------------------------------------------

    async def drain(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._sync_live()
                await self.local.drain(None)
                delay = 0.005
                while not await self._settled():
                    await asyncio.sleep(delay)
                    delay = min(0.1, delay * 1.5)
        except TimeoutError:
            raise DrainTimeoutError(
                f"drain timed out after {timeout}s: some subscriber has not caught up"
            ) from None

    async def _sync_live(self) -> None:
        """Wait until Pub/Sub messages published so far have reached this process."""
        await self.live.ready.wait()
        await self.live.round_trip(self.client)

    async def _settle_listeners(self) -> None:
        if self._running:
            await self._sync_live()

    async def _settled(self) -> bool:
        for consumer in self._consumers.values():
            if consumer.pending:
                return False
            for stream in (consumer.stream, consumer.requeue):
                if not await _group_caught_up(self.client, stream, consumer.group):
                    return False
        return True

    # -- dead letters and replay ---------------------------------------------------------

    def dead_letters_store(self) -> DeadLetterStore:
        if self.dead_letter_store is None:
            raise BusUnavailableError("the redis backend is not started")
        return self.dead_letter_store

    async def dead_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        return await self.dead_letters_store().list(subscriber, limit)

    async def retry_dead_letter(self, dead_letter_id: str) -> None:
        await self.dead_letters_store().requeue(dead_letter_id)

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        await self.dead_letters_store().discard(dead_letter_id)

    async def replay(self, subscriber: str, event_type: str | None, since: str | datetime) -> int:
        """Rewind ``subscriber``'s groups so that events from ``since`` on come again."""
        rewound = 0
        for (sub_id, type_name), consumer in self._consumers.items():
            if sub_id != subscriber or event_type not in (None, type_name):
                continue
            position = await replay_position(self.client, consumer.stream, since)
            await self.client.xgroup_setid(consumer.stream, consumer.group, position)
            rewound += 1
        return rewound

    async def events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        names = sorted(types if types is not None else self.known_types())
        streams = [self.keys.stream(name).encode() for name in names]
        start = await entry_of_event_in(self.client, streams, event_id)
        if start is None:
            return None
        found: list[tuple[tuple[int, int], Envelope]] = []
        for name, stream in zip(names, streams, strict=True):
            entries = await self.client.xrange(stream, min=b"(" + start, max="+", count=limit)
            for entry_id, fields in entries:
                raw = fields.get(b"e")
                if raw is None:
                    continue
                with contextlib.suppress(InvalidEnvelopeError):
                    envelope = decode_envelope(raw, self.types, self.event_class(name))
                    found.append((id_key(entry_id), envelope))
        found.sort(key=lambda pair: pair[0])
        return [envelope for _, envelope in found[:limit]]

    # -- helpers for consumers -------------------------------------------------------------

    async def hand_back(self, consumer: StreamConsumer, held: dict[bytes, list[bytes]]) -> None:
        """Entries (by stream) this process will not handle, as it stops: mark them
        long idle so that another consumer of the group takes them over at once."""
        idle_ms = int(self.settings.redis.claim_idle * 1000) * 10
        for stream, ids in held.items():
            if not ids:
                continue
            await self.client.xclaim(
                stream, consumer.group, self.consumer, 0, ids, idle=idle_ms, justid=True
            )
            consumer.release(stream, ids)

    async def count_lost(self, consumer: StreamConsumer, stream: bytes, ids: list[Any]) -> None:
        """Pending entries that vanished from the stream: count and report them."""
        consumer.lost += len(ids)
        await self.client.hincrby(self.keys.lost(), stream, len(ids))
        logger.error(
            "subscriber %s: %d pending entr%s of %s vanished before being handled (trimmed "
            "or deleted by hand): %s",
            consumer.sub.id,
            len(ids),
            "y" if len(ids) == 1 else "ies",
            stream.decode(),
            ", ".join(i.decode() if isinstance(i, bytes) else str(i) for i in ids[:10]),
        )

    async def delivery_counts(
        self, consumer: StreamConsumer, stream: bytes, ids: list[bytes]
    ) -> dict[bytes, int]:
        """How many times each entry was delivered (this delivery included)."""
        if not ids:
            return {}
        rows = await self.client.xpending_range(
            stream,
            consumer.group,
            min=min(ids, key=id_key),
            max=max(ids, key=id_key),
            count=len(ids) * 2 + 10,
            consumername=self.consumer,
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    def live_statistics(self) -> LiveStatistics:
        feed = self.live
        return LiveStatistics(feed.disconnects, feed.missed, feed.caught_up)

    def decoded(
        self, stream: bytes, entry_id: bytes, raw: bytes, expected: type[Event]
    ) -> Envelope:
        """The envelope of a stream entry. When several subscriptions of this process
        read the stream, it is decoded once for all of them (events are immutable:
        sharing is safe); a stream read by one subscription is not cached."""
        if self._readers[expected.__event_name__] == 1:
            return decode_envelope(raw, self.types, expected)
        key = (expected, stream, entry_id)
        envelope = self._decoded.get(key)
        if envelope is None:
            envelope = decode_envelope(raw, self.types, expected)
            self._decoded[key] = envelope
            if len(self._decoded) > DECODED_CACHE:
                self._decoded.popitem(last=False)
        return envelope

    def statistics(self) -> list[SubscriberStats]:
        return [c.stats() for c in self._consumers.values()] + self.local.statistics()


async def _group_caught_up(client: Redis, stream: bytes, group: str) -> bool:
    """No entry of ``stream`` is pending or undelivered for ``group``."""
    try:
        info = await client.xinfo_stream(stream)
        groups = await client.xinfo_groups(stream)
    except Exception as exc:
        if "no such key" in str(exc):
            return True
        raise
    last = info["last-generated-id"]
    for row in groups:
        name = row["name"]
        if (name.decode() if isinstance(name, bytes) else name) != group:
            continue
        return int(row["pending"]) == 0 and id_key(row["last-delivered-id"]) >= id_key(last)
    return True
