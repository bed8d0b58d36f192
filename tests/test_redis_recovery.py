"""Crash recovery: reclaiming a dead consumer's entries, poison entries, lost entries,
missing groups, leases of slow handlers, and the clean-up of dead consumers' names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hookbus import Event, RetryPolicy, current_delivery
from hookbus.testing import Recorder
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis

STREAM = "{prefix}:stream:recovery.parcel"


class Parcel(Event, name="recovery.parcel"):
    n: int


async def _declare_and_emit(url: str, prefix: str, group: str, count: int) -> list[str]:
    """Create the group (as a declaring process would) and store ``count`` events."""
    bus = redis_bus(url, prefix, consume=False)
    bus.subscribe(Parcel, Recorder[Parcel](), name=group)
    async with bus:
        return [await bus.emit(Parcel(n=n)) for n in range(count)]


async def _crashed_consumer_reads(client: Any, stream: str, group: str, times: int = 1) -> None:
    """A consumer reads everything and dies without acknowledging (``times`` deliveries)."""
    await client.xreadgroup(group, "crashed-worker", {stream: ">"}, count=1000)
    for _ in range(times - 1):
        pending = await client.xpending_range(stream, group, "-", "+", 1000)
        ids = [p["message_id"] for p in pending]
        await client.xclaim(stream, group, "crashed-worker", 0, ids)


async def test_entries_of_a_dead_consumer_are_reclaimed(redis_url: str, redis_prefix: str) -> None:
    stream = STREAM.format(prefix=redis_prefix)
    await _declare_and_emit(redis_url, redis_prefix, "sorting", 5)
    client = raw_client(redis_url)
    try:
        await _crashed_consumer_reads(client, stream, "sorting")
        bus = redis_bus(redis_url, redis_prefix, claim_idle=0.2, claim_interval=0.1)
        attempts: list[int] = []

        @bus.on(Parcel, name="sorting")
        async def sort(event: Parcel) -> None:
            delivery = current_delivery()
            assert delivery is not None
            attempts.append(delivery.attempt)

        async with bus:
            await bus.drain(timeout=10)
        summary = await client.xpending(stream, "sorting")
    finally:
        await client.aclose()
    assert attempts == [2] * 5  # the crash counts as the first delivery
    assert summary["pending"] == 0


async def test_entry_that_crashed_its_consumers_too_often_is_dead_lettered(
    redis_url: str, redis_prefix: str
) -> None:
    stream = STREAM.format(prefix=redis_prefix)
    await _declare_and_emit(redis_url, redis_prefix, "labels", 1)
    client = raw_client(redis_url)
    try:
        await _crashed_consumer_reads(client, stream, "labels", times=3)
        bus = redis_bus(redis_url, redis_prefix, claim_idle=0.2, claim_interval=0.1)
        rec = Recorder[Parcel]()
        bus.subscribe(Parcel, rec, name="labels", max_attempts=3)
        async with bus:
            await bus.drain(timeout=10)
            (letter,) = await bus.dead_letters()
    finally:
        await client.aclose()
    assert rec.calls == 0  # never run a fourth time
    assert letter.attempts == 3
    assert "without being acknowledged" in letter.error_message


async def test_entries_deleted_while_pending_are_counted_as_lost(
    redis_url: str, redis_prefix: str
) -> None:
    stream = STREAM.format(prefix=redis_prefix)
    await _declare_and_emit(redis_url, redis_prefix, "weighing", 3)
    client = raw_client(redis_url)
    try:
        await _crashed_consumer_reads(client, stream, "weighing")
        first = (await client.xrange(stream, count=1))[0][0]
        await client.xdel(stream, first)  # someone deletes a pending entry by hand
        bus = redis_bus(redis_url, redis_prefix, claim_idle=0.2, claim_interval=0.1)
        rec = Recorder[Parcel]()
        bus.subscribe(Parcel, rec, name="weighing")
        async with bus:
            events = await rec.wait_for(2)
            await bus.drain(timeout=10)
            (stats,) = bus.statistics()
        lost = await client.hget(f"{redis_prefix}:lost", stream)
    finally:
        await client.aclose()
    assert sorted(e.n for e in events) == [1, 2]
    assert stats.lost == 1
    assert lost == b"1"


async def test_slow_handler_keeps_its_entry(redis_url: str, redis_prefix: str) -> None:
    options: dict[str, Any] = {"claim_idle": 0.3, "claim_interval": 0.05}
    calls: list[tuple[int, int]] = []
    buses = [redis_bus(redis_url, redis_prefix, **options) for _ in range(2)]
    for index, bus in enumerate(buses):

        async def pack(event: Parcel, index: int = index) -> None:
            calls.append((index, event.n))
            await asyncio.sleep(1.0)  # three times claim_idle

        bus.subscribe(Parcel, pack, name="packing")
        await bus.start()
    try:
        await buses[0].emit(Parcel(n=1))
        await buses[0].drain(timeout=10)
    finally:
        for bus in buses:
            await bus.stop()
    assert len(calls) == 1  # the lease was renewed: nobody took it over


async def test_missing_group_is_recreated_without_skipping(
    redis_url: str, redis_prefix: str
) -> None:
    stream = STREAM.format(prefix=redis_prefix)
    bus = redis_bus(redis_url, redis_prefix)
    rec = Recorder[Parcel]()
    bus.subscribe(Parcel, rec, name="scanning")
    client = raw_client(redis_url)
    try:
        async with bus:
            await bus.emit(Parcel(n=1))
            await rec.wait_for(1)
            await client.delete(stream)  # as if Redis restarted without its data
            emitter = redis_bus(redis_url, redis_prefix)
            async with emitter:
                async with asyncio.timeout(10):
                    while len(rec.events) < 3:  # emit until the consumer is back
                        await emitter.emit(Parcel(n=len(rec.events) + 1))
                        await asyncio.sleep(0.05)
                        await emitter.emit(Parcel(n=99))
                        await emitter.drain(timeout=10)
        ns = [e.n for e in rec.events]
    finally:
        await client.aclose()
    assert ns[0] == 1
    assert 99 in ns
    assert ns.count(1) == 1  # nothing replayed


async def test_idle_consumers_holding_nothing_are_removed(
    redis_url: str, redis_prefix: str
) -> None:
    stream = STREAM.format(prefix=redis_prefix)
    await _declare_and_emit(redis_url, redis_prefix, "shelving", 2)
    client = raw_client(redis_url)
    try:
        await client.xreadgroup("shelving", "gone-empty", {stream: ">"}, count=1)
        await client.xack(stream, "shelving", (await client.xrange(stream, count=1))[0][0])
        await client.xreadgroup("shelving", "gone-holding", {stream: ">"}, count=1)
        await asyncio.sleep(0.3)  # both consumers go idle beyond the expiry below
        bus = redis_bus(redis_url, redis_prefix, consume=False, consumer_expiry=0.2)
        bus.subscribe(Parcel, Recorder[Parcel](), name="shelving")
        async with bus:
            await bus._backend.maintenance.sweep_consumers()  # type: ignore[attr-defined]
        names = {c["name"] for c in await client.xinfo_consumers(stream, "shelving")}
    finally:
        await client.aclose()
    assert b"gone-empty" not in names
    assert b"gone-holding" in names  # it still holds an entry: never deleted


async def test_entry_waiting_for_a_retry_is_handed_over_when_its_process_stops(
    redis_url: str, redis_prefix: str
) -> None:
    failing = redis_bus(redis_url, redis_prefix, bus_options={"retry": RetryPolicy(3, 30.0, 30.0)})

    def down(event: Parcel, attempt: int) -> None:
        raise OSError("sealing machine down")

    tried = Recorder[Parcel](fail=down)
    failing.subscribe(Parcel, tried, name="sealing")
    async with failing:
        await failing.emit(Parcel(n=1))
        await tried.wait_for(1, calls=True)  # failed once; its retry is 15-30 s away
    # claim_idle stays 30 s: only the hand-over makes the entry available at once.
    other = redis_bus(redis_url, redis_prefix, claim_interval=0.1)
    rec = Recorder[Parcel]()
    other.subscribe(Parcel, rec, name="sealing")
    async with other:
        (event,) = await rec.wait_for(1, timeout=10)
    assert event.n == 1
