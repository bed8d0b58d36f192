"""The transactional outbox: what it adds to a commit, and how fast relays deliver.

Run with ``python -m benchmarks.outbox`` (``make bench-outbox``). In one run,
on a throw-away PostgreSQL server and a SQLite file, local mode:

1. commit latency: a transaction inserting one sale, then a plain ``emit``
   after the commit, against the same transaction with ``emit(...,
   session=)`` inside it (the outbox row), p50 and p99 over ``--commits``;
2. relay throughput, commit → handler: ``--events`` committed by 50 per
   transaction while 1 or 2 relays (buses in this process) deliver them,
   events per second from the first commit until every event was handled
   and the relays' ``drain()`` returned.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookbus import Event, EventBus
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import create_tables
from hookbus.testing import test_settings
from hookbus.testing.postgres_server import PostgresServer

shop = MetaData()
sales = Table("sales", shop, Column("id", Integer, primary_key=True), Column("till", String(20)))


class Sold(Event, name="bench.outbox.sold"):
    sale_id: int


def new_bus(url: str, relay: bool = True) -> EventBus:
    return EventBus(
        mode="local",
        outbox_url=url,
        settings=test_settings(outbox=OutboxOptions(relay=relay, poll_interval=0.05, batch=200)),
    )


async def prepare(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(shop.create_all)
        await connection.execute(delete(sales))
    await create_tables(engine)
    return engine


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def commit_latency(url: str, commits: int) -> dict[str, tuple[float, float]]:
    engine = await prepare(url)
    bus = new_bus(url)
    bus.subscribe(Sold, lambda event: None, name="books")
    results: dict[str, tuple[float, float]] = {}
    next_id = 0

    async def plain() -> None:
        nonlocal next_id
        next_id += 1
        async with engine.begin() as connection:
            await connection.execute(insert(sales).values(id=next_id, till="A"))
        await bus.emit(Sold(sale_id=next_id))

    async def outbox() -> None:
        nonlocal next_id
        next_id += 1
        async with engine.begin() as connection:
            await connection.execute(insert(sales).values(id=next_id, till="A"))
            await bus.emit(Sold(sale_id=next_id), session=connection)

    contenders: dict[str, Callable[[], Awaitable[None]]] = {
        "commit, then emit": plain,
        "commit with outbox emit": outbox,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    async with bus:
        for _ in range(commits):
            for name, run in contenders.items():  # interleaved
                started = time.perf_counter()
                await run()
                samples[name].append(time.perf_counter() - started)
        await bus.drain(timeout=60)
    await engine.dispose()
    for name, values in samples.items():
        results[name] = (statistics.median(values) * 1000, percentile(values, 0.99) * 1000)
    return results


#: How a run subscribes its handler: (relay's bus, the engine of the run's database, the
#: counting handler); the default is a plain ``bus.subscribe(Sold, book, name="books")``.
Subscribe = Callable[[EventBus, AsyncEngine, Callable[[Sold], Awaitable[None]]], None]


def subscribe_plain(
    bus: EventBus, engine: AsyncEngine, book: Callable[[Sold], Awaitable[None]]
) -> None:
    bus.subscribe(Sold, book, name="books")


async def relay_throughput(
    url: str, events: int, relays: int, subscribe: Subscribe = subscribe_plain
) -> float:
    """Events per second, from the first commit until every event was handled (and the
    relays' ``drain()`` returned)."""
    engine = await prepare(url)
    handled = 0
    done = asyncio.Event()

    async def book(event: Sold) -> None:
        nonlocal handled
        handled += 1
        if handled == events:
            done.set()

    buses = [new_bus(url) for _ in range(relays)]
    for bus in buses:
        subscribe(bus, engine, book)
    writer = new_bus(url, relay=False)
    for bus in (*buses, writer):
        await bus.start()
    try:
        started = time.perf_counter()
        for first in range(0, events, 50):
            async with engine.begin() as connection:
                for n in range(first, min(events, first + 50)):
                    await writer.emit(Sold(sale_id=n), session=connection)
        await asyncio.wait_for(done.wait(), timeout=300)
        for bus in buses:
            await bus.drain(timeout=60)
        took = time.perf_counter() - started
    finally:
        for bus in (*buses, writer):
            await bus.stop()
        await engine.dispose()
    return events / took


async def run(args: argparse.Namespace) -> None:
    with PostgresServer() as server, tempfile.TemporaryDirectory() as scratch:
        databases = {
            "PostgreSQL": server.create_database("bench_outbox"),
            "SQLite": f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}",
        }
        print(
            f"{os.cpu_count()} CPUs; PostgreSQL {server.version}; SQLite file; local mode; "
            f"{args.commits} commits for latency, {args.events} events for throughput"
        )
        print("\n1. commit latency (one sale per transaction)\n")
        print(f"{'database':<12}{'contender':<28}{'p50 ms':>9}{'p99 ms':>9}")
        print("-" * 58)
        for label, url in databases.items():
            for name, (p50, p99) in (await commit_latency(url, args.commits)).items():
                print(f"{label:<12}{name:<28}{p50:>9.2f}{p99:>9.2f}")
        print("\n2. relay throughput, commit -> handler (50 events per transaction)\n")
        print(f"{'database':<12}{'relays':>7}{'events/s':>12}")
        print("-" * 31)
        for label, url in databases.items():
            counts = (1, 2) if label == "PostgreSQL" else (1,)  # SQLite: one relay per file
            for relays in counts:
                rate = await relay_throughput(url, args.events, relays)
                print(f"{label:<12}{relays:>7}{rate:>12,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
