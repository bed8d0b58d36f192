"""Consumer groups: one per subscriber, shared by processes, created at start."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from hookbus import Event
from hookbus.testing import Recorder
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis


class Booked(Event, name="groups.booked"):
    n: int


async def test_processes_share_a_subscriber_and_each_event_is_handled_once(
    redis_url: str, redis_prefix: str
) -> None:
    handled: Counter[int] = Counter()
    per_bus: list[int] = [0, 0]
    buses = [redis_bus(redis_url, redis_prefix, read_count=5) for _ in range(2)]
    for index, bus in enumerate(buses):

        async def book(event: Booked, index: int = index) -> None:
            handled[event.n] += 1
            per_bus[index] += 1
            await asyncio.sleep(0.001)  # let the other process take its share

        bus.subscribe(Booked, book, name="accounting")
        await bus.start()
    try:
        for n in range(200):
            await buses[0].emit(Booked(n=n))
        await buses[0].drain(timeout=20)
    finally:
        for bus in buses:
            await bus.stop()
    assert sorted(handled) == list(range(200))
    assert set(handled.values()) == {1}
    assert all(share > 0 for share in per_bus), per_bus


async def test_group_exists_from_the_first_start_of_any_declaring_process(
    redis_url: str, redis_prefix: str
) -> None:
    # The web process declares the subscriber but does not consume.
    web = redis_bus(redis_url, redis_prefix, consume=False)
    web.subscribe(Booked, Recorder[Booked](), name="invoices")
    async with web:
        for n in range(10):
            await web.emit(Booked(n=n))
        # The worker starts later and still gets everything emitted since.
        worker = redis_bus(redis_url, redis_prefix)
        rec = Recorder[Booked]()
        worker.subscribe(Booked, rec, name="invoices")
        async with worker:
            events = await rec.wait_for(10)
            await web.drain(timeout=10)
    assert sorted(e.n for e in events) == list(range(10))


@pytest.mark.parametrize(("start", "expected"), [("new", [2]), ("all", [1, 2])])
async def test_where_a_brand_new_group_starts(
    redis_url: str, redis_prefix: str, start: Any, expected: list[int]
) -> None:
    emitter = redis_bus(redis_url, redis_prefix)
    async with emitter:
        await emitter.emit(Booked(n=1))  # before any process declared the subscriber
        bus = redis_bus(redis_url, redis_prefix, group_start=start)
        rec = Recorder[Booked]()
        bus.subscribe(Booked, rec, name="late-subscriber")
        async with bus:
            await emitter.emit(Booked(n=2))
            await bus.drain(timeout=10)
    assert [e.n for e in rec.events] == expected


async def test_every_key_lives_under_the_prefix(redis_url: str, redis_prefix: str) -> None:
    bus = redis_bus(redis_url, redis_prefix)

    @bus.on(Booked, name="refuses", max_attempts=1)
    async def refuses(event: Booked) -> None:
        raise ValueError("no")

    async with bus:
        await bus.emit(Booked(n=1))
        await bus.drain(timeout=10)
    client = raw_client(redis_url)
    try:
        keys = {k.decode() async for k in client.scan_iter(match=f"{redis_prefix}*")}
        groups = await client.xinfo_groups(f"{redis_prefix}:stream:groups.booked")
    finally:
        await client.aclose()
    assert keys == {
        f"{redis_prefix}:stream:groups.booked",
        f"{redis_prefix}:requeue:groups.booked:refuses",
        f"{redis_prefix}:dead",
    }
    assert [g["name"] for g in groups] == [b"refuses"]


async def test_hash_tag_puts_every_key_in_one_slot(redis_url: str, redis_prefix: str) -> None:
    bus = redis_bus(redis_url, redis_prefix, hash_tag=True)
    rec = Recorder[Booked]()
    bus.subscribe(Booked, rec, name="tagged")
    async with bus:
        await bus.emit(Booked(n=1))
        await rec.wait_for(1)
    client = raw_client(redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{{{redis_prefix}}}*")]
    finally:
        await client.aclose()
    assert keys
    assert all(k.startswith(f"{{{redis_prefix}}}:") for k in keys)
