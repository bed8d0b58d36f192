"""Chaos in rabbitmq mode: a worker SIGKILLed again and again while 20,000 sales flow,
and a RabbitMQ cluster losing the node that leads the subscribers' quorum queues.
Every test checks what was handled, not what was logged."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from apps.shop import SUBSCRIBERS, SaleClosed
from hookbus import BusUnavailableError, EventBus
from hookbus.testing import Recorder
from hookbus.testing.rabbitmq_server import RabbitMQCluster, RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus
from redis_helpers import (
    WorkerPool,
    clean_env,
    sale,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SALES = 20_000
KILLS = 6


def handled_by(record_dir: Path) -> dict[str, set[int]]:
    """The sales each subscriber handled, from the files the shop's handlers create."""
    found: dict[str, set[int]] = {s: set() for s in SUBSCRIBERS}
    for entry in os.scandir(record_dir):
        subscriber, sale_id, what = entry.name.split(".")
        if what == "handled":
            found[subscriber].add(int(sale_id))
    return found


@pytest.mark.timeout(240)
async def test_three_workers_one_killed_repeatedly_every_sale_handled_by_both(
    rabbitmq_server: RabbitMQServer, workers: WorkerPool, tmp_path: Path
) -> None:
    prefix = new_prefix()
    record_dir = tmp_path / "handled"
    record_dir.mkdir()
    env = clean_env(
        EVENT_BUS_MODE="rabbitmq",
        HOOKBUS_AMQP_URL=rabbitmq_server.url,
        HOOKBUS_AMQP_PREFIX=prefix,
        HOOKBUS_STOP_TIMEOUT="5",
        HOOKBUS_RETRY_BASE_DELAY="0.001",
        HOOKBUS_RETRY_MAX_DELAY="0.005",
        SHOP_RECORD_DIR=str(record_dir),
    )
    rng = random.Random(20_000)
    emitter = rabbitmq_bus(rabbitmq_server.url, prefix, consume=False)
    for subscriber in SUBSCRIBERS:  # declares the queues, as the workers' app does
        emitter.subscribe(SaleClosed, Recorder[SaleClosed](), name=subscriber)
    async with emitter:
        pool = [workers.start(env, name=f"worker{i}") for i in range(3)]
        for worker in pool:
            await worker.wait_ready()
        victim = pool[0]

        async def emit_all() -> None:
            for first in range(0, SALES, 250):
                await asyncio.gather(
                    *(emitter.emit(sale(i)) for i in range(first, min(SALES, first + 250)))
                )
                await asyncio.sleep(0.05)  # pacing: the emission spans several kills

        async def kill_repeatedly() -> int:
            kills = 0
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(1.0, 2.0))
                victim.kill()  # SIGKILL, mid-batch: handled but unacknowledged messages
                kills += 1
                victim.start()
                await victim.wait_ready()
            return kills

        began = time.monotonic()
        _, kills = await asyncio.gather(emit_all(), kill_repeatedly())
        assert victim.starts == KILLS + 1

        async def everything_handled() -> bool:
            found = await asyncio.to_thread(handled_by, record_dir)
            return all(len(sales) == SALES for sales in found.values())

        await wait_until(everything_handled, 120, "both subscribers to handle every sale", 0.5)
        took = time.monotonic() - began
        letters = await emitter.dead_letters()
    found = handled_by(record_dir)
    for subscriber in SUBSCRIBERS:
        assert found[subscriber] == set(range(SALES)), subscriber
    print(
        f"{SALES} sales, {kills} SIGKILLs of one of 3 workers, "
        f"every sale handled by both in {took:.1f}s"
    )
    assert letters == []


@pytest.mark.timeout(240)
async def test_killing_the_queue_leader_loses_no_confirmed_event(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    cluster = rabbitmq_cluster
    leader_node, client_node = cluster.nodes[0], cluster.nodes[1]
    prefix = new_prefix()
    # Quorum queues get their leader on the node of the client that declares them.
    declarer = rabbitmq_bus(leader_node.url, prefix, consume=False)
    declarer.subscribe(SaleClosed, Recorder[SaleClosed](), name="books")
    async with declarer:
        pass
    queue = f"{prefix}.q.shop.sale_closed.books"
    assert cluster.node_of_queue_leader(queue) is leader_node

    emitter: EventBus = rabbitmq_bus(client_node.url, prefix, consume=False, emit_timeout=20.0)
    emitter.subscribe(SaleClosed, Recorder[SaleClosed](), name="books")
    consumer = rabbitmq_bus(client_node.url, prefix, emit_timeout=20.0)
    books = Counter[int]()

    @consumer.on(SaleClosed, name="books")
    async def book(event: SaleClosed) -> None:
        books[event.sale_id] += 1

    confirmed: list[int] = []
    refused = 0
    async with emitter, consumer:

        async def emit_some(first: int, count: int) -> None:
            nonlocal refused
            for n in range(first, first + count):
                try:
                    await emitter.emit(sale(n))
                    confirmed.append(n)
                except BusUnavailableError:
                    refused += 1

        await emit_some(0, 300)
        killing = asyncio.create_task(asyncio.to_thread(cluster.kill, leader_node))
        await emit_some(300, 300)  # while the leader dies and another is elected
        await killing
        new_leader = await asyncio.to_thread(cluster.wait_queue_leader, queue, not_on=leader_node)
        await emit_some(600, 300)

        async def all_confirmed_handled() -> bool:
            return set(confirmed) <= set(books)

        await wait_until(all_confirmed_handled, 60, "every confirmed sale to be handled", 0.1)
    await asyncio.to_thread(cluster.restart, leader_node)
    assert new_leader is not leader_node
    assert set(confirmed) <= set(books)
    assert len(confirmed) >= 600  # emits went on around the failover
    assert refused <= 300
