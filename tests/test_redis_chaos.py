"""Chaos: workers SIGKILLed mid-stream, Redis crashing and restarting, a subscriber that
never succeeds. Every test checks what was handled, not what was logged."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest

from apps.shop import SUBSCRIBERS, SaleClosed
from hookbus import BusUnavailableError, EventBus
from hookbus.testing.redis_server import RedisServer
from redis_bus import redis_bus
from redis_helpers import (
    WorkerPool,
    all_caught_up,
    caught_up,
    emitter_bus,
    handled,
    raw_redis,
    sale,
    shop_env,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def emit_range(bus: EventBus, first: int, end: int) -> list[str]:
    """Emit sales ``first`` .. ``end - 1`` concurrently (pipelined by the bus)."""
    return await asyncio.gather(*(bus.emit(sale(i)) for i in range(first, end)))


def counting(into: Counter[int], delay: float = 0.0) -> Callable[[SaleClosed], Awaitable[None]]:
    """An in-process handler counting the sales it handled."""

    async def handle(event: SaleClosed) -> None:
        if delay:
            await asyncio.sleep(delay)
        into[event.sale_id] += 1

    return handle


def consumer_bus(
    url: str,
    prefix: str,
    counts: dict[str, Counter[int]],
    *,
    delay: float = 0.0,
    claim_idle: float = 30.0,
) -> EventBus:
    """An in-process consumer of the shop's two subscribers (same subscriber ids)."""
    bus = redis_bus(url, prefix, claim_idle=claim_idle)
    for subscriber in SUBSCRIBERS:
        bus.subscribe(SaleClosed, counting(counts[subscriber], delay), name=subscriber)
    return bus


# --------------------------------------------------------------------------- killed workers

SALES = 20_000
KILLS = 6


@pytest.mark.timeout(150)
async def test_three_workers_one_killed_repeatedly_every_sale_handled_by_both(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    env = shop_env(redis_url, redis_prefix, HOOKBUS_CLAIM_IDLE="1")
    rng = random.Random(20_000)
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        pool = [workers.start(env, name=f"worker{i}") for i in range(3)]
        for worker in pool:
            await worker.wait_ready()
        victim = pool[0]
        emitting = True

        async def emit_all() -> None:
            nonlocal emitting
            for first in range(0, SALES, 250):
                await emit_range(bus, first, min(SALES, first + 250))
                await asyncio.sleep(0.05)  # pacing: the emission spans several kills
            emitting = False

        async def kill_repeatedly() -> int:
            kills = 0
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(1.0, 2.0))
                victim.kill()  # SIGKILL, mid-batch: handled but unacknowledged entries
                kills += 1
                victim.start()
                await victim.wait_ready()
            return kills

        began = time.monotonic()
        _, kills = await asyncio.gather(emit_all(), kill_repeatedly())
        assert not emitting
        assert victim.starts == KILLS + 1

        await wait_until(
            all_caught_up(client, redis_prefix),
            90,
            "both groups to handle and acknowledge every sale",
            0.5,
        )
        took = time.monotonic() - began
        for subscriber in SUBSCRIBERS:
            counts = await handled(client, redis_prefix, subscriber)
            missing = set(range(SALES)) - set(counts)
            assert not missing, f"{subscriber} never handled {len(missing)} sales"
            duplicates = sum(counts.values()) - SALES
            print(
                f"{subscriber}: {SALES} sales, {kills} SIGKILLs, {duplicates} duplicate "
                f"handlings ({sum(1 for c in counts.values() if c > 1)} sales), {took:.1f}s"
            )
        assert await client.xlen(f"{redis_prefix}:dead") == 0
        assert await client.hgetall(f"{redis_prefix}:lost") == {}

    for worker in pool:  # the survivors still stop gracefully
        worker.send(signal.SIGTERM)
    for worker in pool:
        assert await worker.wait_exit(15) == 0, worker.log()[-2000:]


# --------------------------------------------------------------------------- Redis crashes


@pytest.fixture
def fsync_always_server(redis_server_binary: str) -> Iterator[RedisServer]:
    """A server that acknowledges a write only once it is on disk."""
    with RedisServer(redis_server_binary, appendonly=True, appendfsync="always") as server:
        yield server


@pytest.mark.timeout(120)
async def test_every_accepted_emit_survives_redis_crashes(
    fsync_always_server: RedisServer, redis_prefix: str
) -> None:
    server = fsync_always_server
    counts: dict[str, Counter[int]] = {s: Counter() for s in SUBSCRIBERS}
    consumer = consumer_bus(server.url, redis_prefix, counts, claim_idle=2.0)
    emitter = emitter_bus(server.url, redis_prefix, emit_timeout=1.0)
    accepted: set[int] = set()
    refused = 0
    crashes_done = asyncio.Event()

    def at_least(count: int) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return len(accepted) >= count

        return reached

    async def emit_loop() -> None:
        nonlocal refused
        next_id, stop_at = 0, 100_000
        while next_id < stop_at:
            if crashes_done.is_set() and stop_at == 100_000:
                stop_at = next_id + 200  # a few more once Redis is back for good
            batch = range(next_id, next_id + 20)
            next_id += 20
            results = await asyncio.gather(
                *(emitter.emit(sale(i)) for i in batch), return_exceptions=True
            )
            for sale_id, result in zip(batch, results, strict=True):
                if isinstance(result, str):
                    accepted.add(sale_id)
                elif isinstance(result, BusUnavailableError):
                    refused += 1
                else:
                    raise result
        assert stop_at < 100_000, "the crashes never finished"

    async def crash_twice() -> None:
        for round_ in (1, 2):
            await wait_until(at_least(500 * round_), 30, f"{500 * round_} accepted emits")
            await asyncio.to_thread(server.kill)  # SIGKILL: no shutdown, no final fsync
            await asyncio.sleep(1.5)  # the outage: emits time out meanwhile
            await asyncio.to_thread(server.start)  # same port, same append-only file
        crashes_done.set()

    async with consumer, emitter, raw_redis(server.url) as client:
        await asyncio.gather(emit_loop(), crash_twice())

        async def everything_handled() -> bool:
            return all(accepted <= set(counts[s]) for s in SUBSCRIBERS)

        await wait_until(everything_handled, 60, "every accepted emit to be handled by both")

        await wait_until(
            all_caught_up(client, redis_prefix), 30, "both groups to acknowledge everything"
        )
    print(f"{len(accepted)} emits accepted, {refused} refused during 2 crashes of Redis")
    assert refused > 0  # the outages were long enough to be seen by emit


# --------------------------------------------------------------------------- failing subscriber


@pytest.mark.timeout(120)
async def test_always_failing_subscriber_ends_in_dead_letters_others_unaffected(
    redis_url: str, redis_prefix: str
) -> None:
    sales, max_attempts = 400, 3
    ok: Counter[int] = Counter()
    attempts: Counter[int] = Counter()

    async def fails(event: SaleClosed) -> None:
        attempts[event.sale_id] += 1
        raise RuntimeError(f"cannot invoice sale {event.sale_id}")

    buses = []
    for _ in range(2):  # two processes share each group
        bus = redis_bus(redis_url, redis_prefix)
        bus.subscribe(SaleClosed, counting(ok), name="accounting")
        bus.subscribe(SaleClosed, fails, name="invoices", max_attempts=max_attempts)
        buses.append(bus)
    async with buses[0], buses[1], emitter_bus(redis_url, redis_prefix) as emitter:
        ids = await emit_range(emitter, 0, sales)
        for bus in buses:
            await bus.drain(60)
        letters = await buses[0].dead_letters("invoices")
        assert await buses[1].dead_letters("accounting") == []
    assert sorted(letter.event_id for letter in letters) == sorted(ids)
    assert {letter.attempts for letter in letters} == {max_attempts}
    assert {letter.error_type for letter in letters} == {"RuntimeError"}
    assert {letter.subscriber for letter in letters} == {"invoices"}
    assert attempts == Counter(dict.fromkeys(range(sales), max_attempts))  # not one more
    assert ok == Counter(dict.fromkeys(range(sales), 1))
    stats = [s for bus in buses for s in bus.statistics() if s.subscriber == "invoices"]
    assert sum(s.dead_lettered for s in stats) == sales
    assert sum(s.failed for s in stats) == sales * max_attempts


# --------------------------------------------------------------------------- Redis stopped


@pytest.fixture
def persistent_server(redis_server_binary: str) -> Iterator[RedisServer]:
    """Append-only file on: a clean stop loses nothing."""
    with RedisServer(redis_server_binary, appendonly=True) as server:
        yield server


@pytest.mark.timeout(120)
async def test_consumers_resume_by_themselves_after_an_outage_without_spinning(
    persistent_server: RedisServer, redis_prefix: str
) -> None:
    server = persistent_server
    counts: dict[str, Counter[int]] = {s: Counter() for s in SUBSCRIBERS}
    consumer = consumer_bus(server.url, redis_prefix, counts, delay=0.004)
    emitter = emitter_bus(server.url, redis_prefix)
    async with consumer, emitter, raw_redis(server.url) as client:
        await emit_range(emitter, 0, 400)

        async def started() -> bool:
            return len(counts["accounting"]) >= 50

        await wait_until(started, 30, "consumption to be under way")
        assert len(counts["accounting"]) < 400  # Redis goes away in the middle of it
        await asyncio.to_thread(server.stop)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(3.0)  # the outage
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        await asyncio.to_thread(server.start)

        await emit_range(emitter, 400, 600)  # emitted after the restart

        async def everything_handled() -> bool:
            if not all(set(counts[s]) == set(range(600)) for s in SUBSCRIBERS):
                return False
            return all([await caught_up(client, redis_prefix, s) for s in SUBSCRIBERS])

        await wait_until(everything_handled, 60, "both subscribers to handle all 600 sales")
    print(f"outage: {wall:.2f}s wall, {cpu:.3f}s CPU in this process")
    assert cpu < 0.5 * wall, f"{cpu:.2f}s of CPU during a {wall:.2f}s outage: spinning?"
