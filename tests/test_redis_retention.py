"""Retention never deletes an entry some group has not acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hookbus import Event
from hookbus.testing import Recorder
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis


class Ticket(Event, name="retention.ticket"):
    n: int


async def _wait_for_length(client: Any, stream: str, at_most: int, timeout: float) -> int:
    """Poll the server (bounded by ``timeout``) until the stream is short enough."""
    async with asyncio.timeout(timeout):
        while (length := await client.xlen(stream)) > at_most:  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.05)
    return int(length)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_offline_subscriber_gets_all_50000_events_despite_a_retention_of_1000(
    redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:stream:retention.ticket"
    total = 50_000
    options: dict[str, Any] = {"retention_maxlen": 1000, "trim_interval": 0.2}
    emitter = redis_bus(redis_url, redis_prefix, consume=False, **options)
    emitter.subscribe(Ticket, Recorder[Ticket](), name="offline")  # declares the group
    client = raw_client(redis_url)
    try:
        async with emitter:
            for start in range(0, total, 1000):
                await asyncio.gather(
                    *(emitter.emit(Ticket(n=n)) for n in range(start, start + 1000))
                )
            trimmed = await emitter._backend.maintenance.trim()  # type: ignore[attr-defined]
            assert trimmed == 0
            assert await client.xlen(stream) == total  # nothing unacknowledged was trimmed

            seen = bytearray(total)
            done = asyncio.Event()
            count = 0
            consumer = redis_bus(redis_url, redis_prefix, read_count=500, **options)

            @consumer.on(Ticket, name="offline")
            async def back(event: Ticket) -> None:
                nonlocal count
                if not seen[event.n]:
                    seen[event.n] = 1
                    count += 1
                    if count == total:
                        done.set()

            async with consumer:
                await asyncio.wait_for(done.wait(), 120)
                await consumer.drain(timeout=30)
                # Everyone caught up: the stream shrinks back to the retention.
                length = await _wait_for_length(client, stream, 1000, timeout=20)
    finally:
        await client.aclose()
    assert count == total
    assert length <= 1000


async def test_retention_by_age_keeps_what_a_lagging_group_needs(
    redis_url: str, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:stream:retention.ticket"
    fast = Recorder[Ticket]()
    bus = redis_bus(redis_url, redis_prefix, retention_max_age=0.2, trim_interval=0.1)
    bus.subscribe(Ticket, fast, name="fast")
    lagging = redis_bus(redis_url, redis_prefix, consume=False)
    lagging.subscribe(Ticket, Recorder[Ticket](), name="lagging")
    client = raw_client(redis_url)
    try:
        async with lagging, bus:
            for n in range(20):
                await bus.emit(Ticket(n=n))
            await fast.wait_for(20)
            await asyncio.sleep(0.3)  # every entry is now older than the retention age
            await bus._backend.maintenance.trim()  # type: ignore[attr-defined]
            assert await client.xlen(stream) == 20  # "lagging" has read none of them
            await client.xgroup_destroy(stream, "lagging")  # that subscriber is retired
            length = await _wait_for_length(client, stream, 0, timeout=10)
    finally:
        await client.aclose()
    assert length == 0
