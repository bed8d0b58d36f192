"""``bus.status()`` on a Redis Cluster: types on several shards, per-type dead-letter
streams, live consumers from their heartbeats, groups of undeclared subscribers."""

from __future__ import annotations

import asyncio

import pytest

from hookbus import Event
from hookbus.testing import Recorder
from hookbus.testing.redis_cluster import RedisCluster
from redis_bus import redis_bus

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


class Crate(Event, name="status_cluster.crate"):
    number: int


class Pallet(Event, name="status_cluster.pallet"):
    number: int


async def test_status_on_a_cluster(redis_cluster: RedisCluster, redis_prefix: str) -> None:
    worker = redis_bus(redis_cluster.url, redis_prefix)
    crates = Recorder[Crate]()
    worker.subscribe(Crate, crates, name="crates")

    async def refuse(pallet: Pallet) -> None:
        raise RuntimeError("no room")

    worker.subscribe(Pallet, refuse, name="pallets", max_attempts=1)
    retired = redis_bus(redis_cluster.url, redis_prefix, consume=False)
    retired.subscribe(Crate, Recorder[Crate](), name="retired")
    async with retired:
        pass  # its group exists from now on; nobody consumes it
    admin = redis_bus(redis_cluster.url, redis_prefix, consume=False)
    async with worker, admin:
        for number in range(3):
            await worker.emit(Crate(number=number))
            await worker.emit(Pallet(number=number))
        await crates.wait_for(3, timeout=20)
        async with asyncio.timeout(20):
            while len(await worker.dead_letters("pallets")) < 3:  # noqa: ASYNC110 - polls
                await asyncio.sleep(0.05)
        await worker.drain(20)
        status = await admin.status(subscriptions=worker.subscriptions)
    rows = {row.subscriber: row for row in status.subscribers}
    assert {t.name: t.stored for t in status.event_types} == {
        "status_cluster.crate": 3,
        "status_cluster.pallet": 3,
    }
    assert (rows["crates"].lag, rows["crates"].pending, rows["crates"].consumers) == (0, 0, 1)
    assert (rows["pallets"].dead_letters, rows["pallets"].consumers) == (3, 1)
    assert rows["retired"].declared is False
    assert rows["retired"].lag == 3
    assert sorted((p.kind, p.subscriber) for p in status.problems) == [
        ("dead_letters", "pallets"),
        ("no_consumer", "retired"),
    ]
