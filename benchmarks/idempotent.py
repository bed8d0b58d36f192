"""Effectively-once subscribers: what ``idempotent=True`` costs a subscriber's throughput.

Run with ``python -m benchmarks.idempotent`` (``make bench-idempotent``). In one
run, one subscriber that counts its events, subscribed plainly (the baseline)
and with ``idempotent=True``; events per second, medians of ``--rounds`` rounds
in which the contenders of each mode take turns (each round starts with another
one), so that machine noise hits all of them alike:

1. local mode, completion records in memory: ``--events`` emitted one await
   at a time, from the first emit until ``drain()`` returned;
2. redis mode, on one server started for the run (``RedisServer``, no
   persistence; each run has its own key prefix, the database is flushed
   after it): the same ``--events``, emits gathered ``--chunk`` at a time so
   that they pipeline, as ``benchmarks.redis`` does, from the first emit until
   the subscriber saw every event and ``drain()`` returned. Records are a
   sorted set written in the script that acknowledges;
3. durable local mode (local mode with an outbox), on a SQLite file and on a
   throw-away PostgreSQL server (skipped, with a note, when PostgreSQL is not
   installed): ``--durable-events`` committed through the outbox, 50 per
   transaction, to one relay, from the first commit until every event was
   handled and ``drain()`` returned (``benchmarks.outbox``'s relay
   throughput). Records are rows of ``hookbus_inbox``. A third contender is an
   inbox-backed subscriber (``idempotent=True``): its async handler opens a
   transaction, calls ``record_completion(db)`` and inserts one sale. Each run
   gets a fresh database (a new SQLite file, a new PostgreSQL database).

The ``x plain`` column is each contender's rate over the plain subscriber's
of the same mode and database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks import _redis_baselines as raw
from benchmarks._redis_baselines import med
from benchmarks.outbox import Sold, Subscribe, relay_throughput, sales, subscribe_plain
from benchmarks.redis import SaleClosed, Tally, hookbus_throughput, sale_fields
from hookbus import EventBus, Settings
from hookbus.outbox import record_completion
from hookbus.testing.postgres_server import PostgresServer, find_postgres
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name

PLAIN = "plain"
IDEMPOTENT = "idempotent=True"
INBOX = "inbox (record_completion)"

#: One contender's measurement: events per second.
Measure = Callable[[], Awaitable[float]]


# -- local mode -------------------------------------------------------------------


async def local_throughput(events: list[SaleClosed], *, idempotent: bool) -> float:
    """Events per second to one subscriber, local mode, from the first emit until
    ``drain()`` returned."""
    bus = EventBus(settings=Settings(mode="local"))
    tally = Tally(len(events))
    bus.subscribe(SaleClosed, tally.handler, name="bench-0", idempotent=idempotent)
    await bus.start()
    try:
        start = time.perf_counter()
        for event in events:
            await bus.emit(event)
        await bus.drain(60)
        elapsed = time.perf_counter() - start
        assert tally.count == len(events), (tally.count, len(events))
        return len(events) / elapsed
    finally:
        await bus.stop(5.0)


# -- durable local mode -----------------------------------------------------------


def subscribe_idempotent(
    bus: EventBus, engine: AsyncEngine, book: Callable[[Sold], Awaitable[None]]
) -> None:
    bus.subscribe(Sold, book, name="books", idempotent=True)


def subscribe_inbox(
    bus: EventBus, engine: AsyncEngine, book: Callable[[Sold], Awaitable[None]]
) -> None:
    """An inbox-backed handler: its effect (one sale) and its record in one transaction."""

    async def handler(event: Sold) -> None:
        async with engine.begin() as db:
            if await record_completion(db):
                await db.execute(insert(sales).values(id=event.sale_id, till="inbox"))
        await book(event)

    bus.subscribe(Sold, handler, name="books", idempotent=True)


DURABLE: dict[str, Subscribe] = {
    PLAIN: subscribe_plain,
    IDEMPOTENT: subscribe_idempotent,
    INBOX: subscribe_inbox,
}


class Databases:
    """A fresh database for each durable run: a new SQLite file, or a new PostgreSQL database."""

    def __init__(self, scratch: str, postgres: PostgresServer | None) -> None:
        self._scratch = Path(scratch)
        self._postgres = postgres
        self._numbers: Iterator[int] = itertools.count()

    @property
    def labels(self) -> list[str]:
        return ["SQLite"] + (["PostgreSQL"] if self._postgres is not None else [])

    def fresh(self, label: str) -> str:
        n = next(self._numbers)
        if label == "SQLite":
            return f"sqlite+aiosqlite:///{self._scratch / f'bench-{n}.db'}"
        assert self._postgres is not None
        return self._postgres.create_database(f"bench_idempotent_{n}")


# -- the rounds -------------------------------------------------------------------


def rotated(items: list[Any], r: int) -> list[Any]:
    """Start each round with another contender: no one always runs first."""
    shift = r % len(items)
    return items[shift:] + items[:shift]


async def run(args: argparse.Namespace, redis_url: str, databases: Databases) -> None:
    sales_events = [SaleClosed(**sale_fields(i)) for i in range(args.events)]  # type: ignore[arg-type]
    timeout = 60 + args.events / 250
    redis_admin = raw.connect(redis_url)

    async def redis_run(idempotent: bool) -> float:
        prefix = f"benchidem{uuid.uuid4().hex[:8]}"
        try:
            return await hookbus_throughput(
                redis_url,
                prefix,
                1,
                events=sales_events,
                chunk=args.chunk,
                timeout=timeout,
                idempotent=idempotent,
            )
        finally:
            await redis_admin.flushdb()

    async def durable_run(label: str, subscribe: Subscribe) -> float:
        return await relay_throughput(databases.fresh(label), args.durable_events, 1, subscribe)

    # (mode, database): its contenders, plain first.
    groups: dict[tuple[str, str], list[tuple[str, Measure]]] = {
        ("local", "memory"): [
            (PLAIN, partial(local_throughput, sales_events, idempotent=False)),
            (IDEMPOTENT, partial(local_throughput, sales_events, idempotent=True)),
        ],
        ("redis", "Redis"): [
            (PLAIN, partial(redis_run, False)),
            (IDEMPOTENT, partial(redis_run, True)),
        ],
    }
    for label in databases.labels:
        groups[("durable local", label)] = [
            (name, partial(durable_run, label, subscribe)) for name, subscribe in DURABLE.items()
        ]
    rates: dict[tuple[str, str, str], list[float]] = {}
    load = os.getloadavg()[0]
    try:
        for r in range(args.rounds):
            began = time.perf_counter()
            for (mode, store), contenders in groups.items():
                for name, measure in rotated(contenders, r):
                    rates.setdefault((mode, store, name), []).append(await measure())
            took = time.perf_counter() - began
            print(f"round {r + 1}/{args.rounds} done in {took:.1f} s", flush=True)
    finally:
        await redis_admin.aclose()
    print(
        f"\n1-min load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"median of {args.rounds} rounds (same process, interleaved)"
    )
    print(
        f"local and redis: {args.events} events (redis: {args.chunk} emits gathered); "
        f"durable local: {args.durable_events} events, 50 per transaction\n"
    )
    print(f"{'mode':<15}{'records':<12}{'subscriber':<27}{'events/s':>10}{'x plain':>9}")
    print("-" * 73)
    for (mode, store), contenders in groups.items():
        plain = med(rates[(mode, store, PLAIN)])
        for name, _ in contenders:
            rate = med(rates[(mode, store, name)])
            print(f"{mode:<15}{store:<12}{name:<27}{rate:>10,.0f}{rate / plain:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="local and redis mode")
    parser.add_argument("--durable-events", type=int, default=1_000, help="durable local mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500, help="redis emits gathered at once")
    parser.add_argument("--server", default=None, help="redis server binary (default: found)")
    args = parser.parse_args()
    if min(args.events, args.durable_events, args.rounds, args.chunk) < 1:
        parser.error("--events, --durable-events, --rounds and --chunk must be >= 1")
    binary = args.server or find_server_binaries()[0]
    with contextlib.ExitStack() as stack:
        try:
            find_postgres()
        except RuntimeError as exc:
            print(f"durable local mode on PostgreSQL skipped: {exc}")
            postgres = None
        else:
            postgres = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer(binary, appendonly=False))
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        pg = f"PostgreSQL {postgres.version}" if postgres is not None else "no PostgreSQL"
        print(f"{os.cpu_count()} CPUs; {server_name(binary)}; {pg}; SQLite file", flush=True)
        asyncio.run(run(args, redis.url, Databases(scratch, postgres)))


if __name__ == "__main__":
    main()
