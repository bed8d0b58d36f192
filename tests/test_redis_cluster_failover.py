"""A cluster master killed (SIGKILL) while events flow: its replica takes over, and
consumption resumes with nothing lost that ``emit`` accepted with ``min_replicas=1``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hookbus import BusUnavailableError, Event
from hookbus._redis.keys import Keys
from hookbus.testing.redis_cluster import RedisCluster
from redis_bus import redis_bus

pytestmark = [pytest.mark.redis, pytest.mark.cluster, pytest.mark.slow]


class Booked(Event, name="failover.booked"):
    n: int


async def test_a_killed_master_loses_no_event_that_waited_for_its_replica(
    fresh_redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    cluster = fresh_redis_cluster
    stream = Keys(redis_prefix, cluster=True).stream("failover.booked")
    options: dict[str, Any] = {"claim_idle": 1.0, "claim_interval": 0.2, "emit_timeout": 10.0}
    emitter = redis_bus(cluster.url, redis_prefix, consume=False, min_replicas=1, **options)
    emitter.subscribe(Booked, lambda event: None, name="books")
    consumer = redis_bus(cluster.url, redis_prefix, **options)
    handled: set[int] = set()

    @consumer.on(Booked, name="books")
    async def book(event: Booked) -> None:
        handled.add(event.n)

    accepted: list[int] = []
    refused = 0
    async with emitter, consumer:
        n = 0

        async def emit_some(count: int) -> None:
            nonlocal n, refused
            for _ in range(count):
                n += 1
                try:
                    await emitter.emit(Booked(n=n))
                    accepted.append(n)
                except BusUnavailableError:
                    refused += 1  # not accepted: the caller knows and may emit again

        await emit_some(200)
        killed = await asyncio.to_thread(cluster.kill_master_of, stream)
        started = time.monotonic()
        emits = asyncio.create_task(emit_some(30))  # during the failover
        promoted = await asyncio.to_thread(cluster.wait_failover, killed)
        failover = time.monotonic() - started
        await emits
        # The new master has no replica until the old one comes back as one.
        await asyncio.to_thread(cluster.restart, killed)
        before = len(accepted)
        await emit_some(200)
        async with asyncio.timeout(60):
            while not set(accepted) <= handled:  # noqa: ASYNC110 - handled by the consumer
                await asyncio.sleep(0.05)
    assert promoted is not killed
    assert failover < 30
    assert len(accepted) - before == 200  # emits work again once a replica is back
    assert set(accepted) <= handled
    assert 0 <= refused <= 30
