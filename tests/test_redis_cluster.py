"""The redis mode on a Redis Cluster: keys spread by event type, and reclaim, retention,
replay, dead letters, the live feed and SSE resume, each with types on several masters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from hookbus import DeadLetterNotFoundError, Event, RetryPolicy, current_delivery
from hookbus._redis.keys import Keys
from hookbus.testing import Recorder
from hookbus.testing.redis_cluster import RedisCluster
from redis_bus import redis_bus
from test_fastapi_feed import _resume_without_gap_or_duplicate
from test_redis_faults import (
    test_cancelled_emits_leave_the_bus_consistent,
    test_ephemeral_events_reach_every_process,
)
from test_redis_groups import test_processes_share_a_subscriber_and_each_event_is_handled_once
from test_redis_poison import (
    test_bad_entries_are_dead_lettered_once_per_subscriber_and_nothing_stalls,
)
from test_redis_replay import (
    test_replay_from_a_point_in_time,
    test_replay_from_an_event_id_redelivers_to_that_subscriber_only,
    test_replay_of_an_unknown_subscriber_is_refused,
)

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

# Tests of the one-server suite that name no key (or build it with Keys), run here on
# the cluster as they are.
__all__ = [
    "test_bad_entries_are_dead_lettered_once_per_subscriber_and_nothing_stalls",
    "test_cancelled_emits_leave_the_bus_consistent",
    "test_ephemeral_events_reach_every_process",
    "test_processes_share_a_subscriber_and_each_event_is_handled_once",
    "test_replay_from_a_point_in_time",
    "test_replay_from_an_event_id_redelivers_to_that_subscriber_only",
    "test_replay_of_an_unknown_subscriber_is_refused",
]


@pytest.fixture
def redis_url(redis_cluster: RedisCluster) -> str:
    """The one-server tests' URL fixture, here naming the cluster."""
    return redis_cluster.url


TYPES = [f"spread.t{n}" for n in range(16)]


class Parcel(Event, name="cluster.parcel"):
    n: int


class Refund(Event, name="cluster.donation"):
    n: int


class Presence(Event, name="cluster.presence", durable=False):
    who: str


@asynccontextmanager
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[Any]:
    client = ClusterClient.from_url(cluster.seed_url)
    try:
        yield client
    finally:
        await client.aclose()


def keys(prefix: str) -> Keys:
    return Keys(prefix, cluster=True)


def on_other_masters(cluster: RedisCluster, prefix: str, *names: str) -> bool:
    masters = {cluster.master_of(keys(prefix).stream(name)).port for name in names}
    return len(masters) == len(names)


async def test_event_types_land_on_more_than_one_master(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    classes = [
        type(f"T{n}", (Event,), {"__module__": __name__}, name=t) for n, t in enumerate(TYPES)
    ]
    bus = redis_bus(redis_cluster.url, redis_prefix)
    recorders = [Recorder[Any]() for _ in classes]
    for cls, rec in zip(classes, recorders, strict=True):
        bus.subscribe(cls, rec, name="spread")
    async with bus:
        for cls in classes:
            await bus.emit(cls())
        await bus.drain(timeout=20)
    assert all(len(rec.events) == 1 for rec in recorders)
    where: dict[int, list[str]] = {}
    for name in TYPES:
        stream = keys(redis_prefix).stream(name)
        master = redis_cluster.master_of(stream)
        # Each stream is on the master that serves its slot, read there directly.
        node = aioredis.Redis(host="127.0.0.1", port=master.port)
        try:
            assert await node.xlen(stream) == 1
        finally:
            await node.aclose()
        where.setdefault(master.port, []).append(name)
    assert len(where) == 3, where  # 16 types over 3 masters: every master holds some


async def test_entries_of_a_dead_consumer_are_reclaimed(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    emitter = redis_bus(redis_cluster.url, redis_prefix, consume=False)
    emitter.subscribe(Parcel, Recorder[Parcel](), name="sorting")
    async with emitter:
        for n in range(5):
            await emitter.emit(Parcel(n=n))
    stream = keys(redis_prefix).stream("cluster.parcel")
    async with cluster_client(redis_cluster) as client:
        await client.xreadgroup("sorting", "crashed-worker", {stream: ">"}, count=100)
        bus = redis_bus(redis_cluster.url, redis_prefix, claim_idle=0.2, claim_interval=0.1)
        attempts: list[int] = []

        @bus.on(Parcel, name="sorting")
        async def sort(event: Parcel) -> None:
            delivery = current_delivery()
            assert delivery is not None
            attempts.append(delivery.attempt)

        async with bus:
            await bus.drain(timeout=20)
        summary = await client.xpending(stream, "sorting")
    assert attempts == [2] * 5  # the crash counted as the first delivery
    assert summary["pending"] == 0


async def test_retention_keeps_what_a_lagging_subscriber_needs(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    options: dict[str, Any] = {"retention_maxlen": 10, "trim_interval": 0.05}
    lagging = redis_bus(redis_cluster.url, redis_prefix, consume=False, **options)
    lagging.subscribe(Parcel, Recorder[Parcel](), name="lagging")
    fast = redis_bus(redis_cluster.url, redis_prefix, **options)
    fast_rec = Recorder[Parcel]()
    fast.subscribe(Parcel, fast_rec, name="fast")
    stream = keys(redis_prefix).stream("cluster.parcel")
    async with lagging, fast, cluster_client(redis_cluster) as client:
        for n in range(50):
            await fast.emit(Parcel(n=n))
        await fast_rec.wait_for(50)
        await fast._backend.maintenance.trim()  # type: ignore[attr-defined]
        assert await client.xlen(stream) == 50  # "lagging" has read none of them
    late = redis_bus(redis_cluster.url, redis_prefix, **options)
    late_rec = Recorder[Parcel]()
    late.subscribe(Parcel, late_rec, name="lagging")
    async with late, cluster_client(redis_cluster) as client:
        await late_rec.wait_for(50)
        await late.drain(timeout=20)
        async with asyncio.timeout(10):
            while await client.xlen(stream) > 10:  # noqa: ASYNC110 - trimmed by the bus
                await asyncio.sleep(0.02)
    assert sorted(e.n for e in late_rec.events) == list(range(50))


async def test_dead_letters_of_types_on_several_masters(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    assert on_other_masters(redis_cluster, redis_prefix, "cluster.parcel", "cluster.donation")
    bus = redis_bus(redis_cluster.url, redis_prefix)
    failing = {"parcel": True, "refund": True}
    handled: list[str] = []

    @bus.on(Parcel, name="books", retry=RetryPolicy(max_attempts=1))
    async def book_parcel(event: Parcel) -> None:
        if failing["parcel"]:
            raise RuntimeError("accounting down")
        handled.append(f"parcel {event.n}")

    @bus.on(Refund, name="books", retry=RetryPolicy(max_attempts=1))
    async def book_refund(event: Refund) -> None:
        if failing["refund"]:
            raise RuntimeError("accounting down")
        handled.append(f"refund {event.n}")

    async with bus:
        await bus.emit(Parcel(n=1))
        await bus.drain(timeout=20)
        await bus.emit(Refund(n=2))
        await bus.drain(timeout=20)
        letters = await bus.dead_letters()
        assert [(d.event_type, d.error_message) for d in letters] == [
            ("cluster.parcel", "accounting down"),
            ("cluster.donation", "accounting down"),
        ]
        assert all("/" in d.id for d in letters)
        failing["parcel"] = False
        await bus.retry_dead_letter(letters[0])
        await bus.drain(timeout=20)
        await bus.discard_dead_letter(letters[1])
        assert await bus.dead_letters() == []
        for wrong in (letters[1].id, letters[0].id.partition("/")[0], "0-1/cluster.nothing"):
            with pytest.raises(DeadLetterNotFoundError):
                await bus.discard_dead_letter(wrong)
    assert handled == ["parcel 1"]


async def test_live_listeners_see_both_kinds_from_every_master(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    assert on_other_masters(redis_cluster, redis_prefix, "cluster.parcel", "cluster.donation")
    emitter = redis_bus(redis_cluster.url, redis_prefix)
    watcher = redis_bus(redis_cluster.url, redis_prefix)
    seen: list[str] = []
    async with emitter, watcher, watcher.listen(Parcel, Refund, Presence) as feed:
        await emitter.emit(Parcel(n=1))
        await emitter.emit(Presence(who="till 2"))
        await emitter.emit(Refund(n=3))
        async with asyncio.timeout(10):
            async for envelope in feed:
                seen.append(envelope.type)
                if len(seen) == 3:
                    break
    # Messages announced by different masters may arrive in either order.
    assert sorted(seen) == ["cluster.donation", "cluster.parcel", "cluster.presence"]


async def test_sse_resume_with_last_event_id(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    await _resume_without_gap_or_duplicate(redis_bus(redis_cluster.url, redis_prefix))
