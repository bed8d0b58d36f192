"""The plain redis-py contenders of ``benchmarks.redis`` (no hookbus involved).

* seed pattern: what a first hand-written version looks like. The producer
  awaits one ``XADD`` per event; each subscriber is a consumer group read with
  ``XREADGROUP COUNT 10 BLOCK`` and acknowledged with one ``XACK`` per message.
* hand-pipelined: the practical ceiling of redis-py. ``XADD`` in pipelines of
  ``BATCH`` entries; consumers read ``COUNT BATCH`` and acknowledge each batch
  with a single ``XACK``.
* latency: one awaited ``XADD`` per event, paced; a consumer doing
  ``XREADGROUP BLOCK COUNT 10`` and one ``XACK`` per batch.
* Pub/Sub: ``PUBLISH`` of a JSON payload, one await each or pipelined, to one
  subscriber that decodes every message.

Producers and consumers run concurrently in one event loop on one client (one
connection pool). Every loop is bounded by a deadline; a durable run that
misses it raises ``TimeoutError`` with the counts reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio

from benchmarks._pacing import paced

__all__ = [
    "BATCH",
    "Fields",
    "hand_pipelined",
    "med",
    "paced",
    "percentile",
    "raw_latency",
    "raw_pubsub",
    "seed_pattern",
]

#: redis-py types each reply as a union of every RESP shape; replies are handled untyped.
Client: TypeAlias = Any
Fields = dict[str, str | int | float]

BATCH = 500
SEED_COUNT = 10
BLOCK_MS = 100
GROUP_PREFIX = "bench-"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def med(values: list[float]) -> float:
    """Median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def connect(url: str) -> Client:
    """One client (one connection pool) per contender run."""
    return redis.asyncio.Redis.from_url(url, decode_responses=False, socket_timeout=30.0)


def entries_of(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREADGROUP reply (RESP2 list of pairs, or RESP3 map)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    for _stream, entries in pairs:
        found.extend(entries)
    return found


async def _create_groups(client: Client, stream: str, subscribers: int) -> list[str]:
    groups = [f"{GROUP_PREFIX}{i}" for i in range(subscribers)]
    for group in groups:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    return groups


async def _consume(
    client: Client, stream: str, group: str, target: int, deadline: float, *, batch: int
) -> int:
    """Read ``target`` entries as ``group``: seed style (``batch`` 0: XACK each message)
    or pipelined style (one XACK per batch of up to ``BATCH``)."""
    loop = asyncio.get_running_loop()
    seen = 0
    count = batch or SEED_COUNT
    while seen < target:
        if loop.time() > deadline:
            raise TimeoutError(f"consumer {group} saw {seen} of {target} entries of {stream}")
        entries = entries_of(
            await client.xreadgroup(group, "c", {stream: ">"}, count=count, block=BLOCK_MS)
        )
        if not entries:
            continue
        if batch:
            await client.xack(stream, group, *(entry_id for entry_id, _ in entries))
        else:
            for entry_id, _ in entries:
                await client.xack(stream, group, entry_id)
        seen += len(entries)
    return seen


async def _produce_one_by_one(client: Client, stream: str, fields: Sequence[Fields]) -> None:
    for entry in fields:
        await client.xadd(stream, entry)


async def _produce_pipelined(client: Client, stream: str, fields: Sequence[Fields]) -> None:
    for start in range(0, len(fields), BATCH):
        pipe = client.pipeline(transaction=False)
        for entry in fields[start : start + BATCH]:
            pipe.xadd(stream, entry)
        await pipe.execute()


async def _streams_run(
    url: str,
    prefix: str,
    subscribers: int,
    *,
    fields: Sequence[Fields],
    timeout: float,
    pipelined: bool,
) -> float:
    client = connect(url)
    stream = f"{prefix}:stream:sale_closed"
    tasks: list[asyncio.Task[int]] = []
    try:
        groups = await _create_groups(client, stream, subscribers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        batch = BATCH if pipelined else 0
        start = time.perf_counter()
        tasks = [
            loop.create_task(_consume(client, stream, g, len(fields), deadline, batch=batch))
            for g in groups
        ]
        produce = _produce_pipelined if pipelined else _produce_one_by_one
        await asyncio.wait_for(produce(client, stream, fields), timeout)
        seen = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        assert seen == [len(fields)] * subscribers, (seen, len(fields))
        return len(fields) / elapsed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()


async def seed_pattern(
    url: str, prefix: str, subscribers: int, *, fields: Sequence[Fields], timeout: float
) -> float:
    """Events per second, naive redis-py (see the module docs)."""
    return await _streams_run(
        url, prefix, subscribers, fields=fields, timeout=timeout, pipelined=False
    )


async def hand_pipelined(
    url: str, prefix: str, subscribers: int, *, fields: Sequence[Fields], timeout: float
) -> float:
    """Events per second, pipelined redis-py (see the module docs)."""
    return await _streams_run(
        url, prefix, subscribers, fields=fields, timeout=timeout, pipelined=True
    )


async def raw_latency(
    url: str, prefix: str, *, count: int, rate: float, timeout: float
) -> tuple[list[float], float]:
    """Emit-to-consumer delays (seconds) of ``count`` paced XADDs, and the rate achieved."""
    client = connect(url)
    stream = f"{prefix}:stream:latency_probe"
    group = f"{GROUP_PREFIX}0"
    samples: list[float] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def consume(target: int) -> None:
        seen = 0
        while seen < target:
            if loop.time() > deadline:
                raise TimeoutError(f"latency consumer saw {seen} of {target} entries")
            entries = entries_of(
                await client.xreadgroup(group, "c", {stream: ">"}, count=SEED_COUNT, block=BLOCK_MS)
            )
            now = time.perf_counter()
            for _, entry in entries:
                if entry[b"seq"] != b"-1":
                    samples.append(now - float(entry[b"sent"]))
            if entries:
                await client.xack(stream, group, *(entry_id for entry_id, _ in entries))
            seen += len(entries)

    async def send(i: int) -> None:
        await client.xadd(stream, {"seq": i, "sent": time.perf_counter()})

    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        # Warm-up: one event through, not measured (seq -1).
        await client.xadd(stream, {"seq": -1, "sent": time.perf_counter()})
        await asyncio.wait_for(consume(1), timeout)
        reader = loop.create_task(consume(count))
        try:
            achieved = await asyncio.wait_for(paced(count, rate, send), timeout)
            await asyncio.wait_for(asyncio.shield(reader), max(1.0, deadline - loop.time()))
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        assert len(samples) == count, (len(samples), count)
        return samples, achieved
    finally:
        await client.aclose()


async def raw_pubsub(
    url: str, prefix: str, *, fields: Sequence[Fields], timeout: float, pipelined: bool
) -> tuple[float, int]:
    """Messages per second to one subscriber, and how many arrived within ``timeout``.

    The publisher encodes each payload as JSON; the subscriber decodes it.
    """
    client = connect(url)
    pubsub = client.pubsub()
    channel = f"{prefix}:live:ping"
    target = len(fields)
    received = 0
    done = asyncio.Event()

    async def listen() -> None:
        nonlocal received
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            json.loads(message["data"])
            received += 1
            if received >= target:
                done.set()
                return

    reader: asyncio.Task[None] | None = None
    try:
        await pubsub.subscribe(channel)
        confirmation = await pubsub.get_message(timeout=5.0)
        assert confirmation is not None, "no subscribe confirmation"
        assert confirmation["type"] == "subscribe", confirmation
        loop = asyncio.get_running_loop()
        reader = loop.create_task(listen())
        start = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # then report what arrived
            async with asyncio.timeout(timeout):
                if pipelined:
                    for first in range(0, target, BATCH):
                        pipe = client.pipeline(transaction=False)
                        for entry in fields[first : first + BATCH]:
                            pipe.publish(channel, json.dumps(entry))
                        await pipe.execute()
                else:
                    for entry in fields:
                        await client.publish(channel, json.dumps(entry))
                await done.wait()
        elapsed = time.perf_counter() - start
        return received / elapsed, received
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()
