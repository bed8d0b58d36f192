"""The transactional outbox on SQLite: an event exists only if the caller's transaction
commits, rows survive a process that stops before relaying them and a backend that is
down, and a row that cannot be decoded blocks nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookbus import ConfigurationError, Event, EventBus, InvalidEventError, current_envelope
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import create_tables, metadata, outbox_table
from hookbus.testing import Recorder, test_settings
from hookbus.testing.redis_server import RedisServer
from redis_bus import redis_bus

shop = MetaData()
sales = Table("sales", shop, Column("id", Integer, primary_key=True), Column("till", String(20)))


class SaleClosed(Event, name="outbox.sale_closed"):
    sale_id: int


@pytest.fixture
async def database(tmp_path: Path) -> Any:
    """A SQLite file with the shop's table and the outbox's; its URL and an engine."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(shop.create_all)
    await create_tables(engine)
    yield url, engine
    await engine.dispose()


def local_bus(url: str, **outbox: Any) -> EventBus:
    options = {"poll_interval": 0.02, **outbox}
    return EventBus(
        mode="local", outbox_url=url, settings=test_settings(outbox=OutboxOptions(**options))
    )


async def settled(bus: EventBus) -> Any:
    """The outbox's statistics once nothing waits (the relay commits after publishing)."""
    async with asyncio.timeout(10):
        while (stats := await bus.outbox_statistics()).waiting:  # noqa: ASYNC110 - a table
            await asyncio.sleep(0.01)
    await bus.drain(timeout=10)
    return stats


async def close_sale(
    engine: AsyncEngine, bus: EventBus, sale_id: int, *, fail: bool = False
) -> str:
    """The till: the sale and its event in one transaction."""
    async with engine.begin() as connection:
        await connection.execute(insert(sales).values(id=sale_id, till="A"))
        event_id = await bus.emit(SaleClosed(sale_id=sale_id), session=connection)
        if fail:
            raise RuntimeError("the till crashed before the commit")
    return event_id


async def test_a_committed_sale_is_delivered_and_a_rolled_back_one_never(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        kept = await close_sale(engine, bus, 1)
        with pytest.raises(RuntimeError):
            await close_sale(engine, bus, 2, fail=True)
        await books.wait_for(1)
        stats = await settled(bus)
    assert books.ids == [kept]
    assert [e.sale_id for e in books.events] == [1]
    assert stats.waiting == 0
    async with engine.connect() as connection:
        assert (await connection.execute(select(sales.c.id))).scalars().all() == [1]
        assert (await connection.execute(select(outbox_table.c.id))).all() == []


async def test_an_orm_session_works_too_and_bad_events_fail_at_the_call(
    database: tuple[str, AsyncEngine],
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    url, engine = database
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus, AsyncSession(engine) as session:
        async with session.begin():
            event_id = await bus.emit(SaleClosed(sale_id=7), session=session)
        with pytest.raises(InvalidEventError):
            await bus.emit("outbox.sale_closed", sale_id="seven", session=session)
        await books.wait_for(1)
    assert books.ids == [event_id]


async def test_emit_many_in_a_transaction_writes_all_or_nothing(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        async with engine.begin() as connection:
            ids = await bus.emit_many(
                [SaleClosed(sale_id=i) for i in range(1, 4)], session=connection
            )

        async def failed_import() -> None:
            async with engine.begin() as connection:
                await bus.emit_many(
                    [SaleClosed(sale_id=i) for i in range(4, 7)], session=connection
                )
                raise RuntimeError("the import failed before the commit")

        with pytest.raises(RuntimeError):
            await failed_import()
        await books.wait_for(3)
        await settled(bus)
    assert sorted(books.ids) == sorted(ids)
    assert sorted(e.sale_id for e in books.events) == [1, 2, 3]


async def test_session_without_an_outbox_is_a_configuration_error(
    database: tuple[str, AsyncEngine],
) -> None:
    _, engine = database
    bus = EventBus(mode="local", settings=test_settings())
    async with bus, engine.begin() as connection:
        with pytest.raises(ConfigurationError, match="outbox_url"):
            await bus.emit(SaleClosed(sale_id=1), session=connection)


async def test_rows_left_by_a_process_that_stopped_are_relayed_by_the_next(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    writer = local_bus(url, relay=False)  # commits, never relays (as if killed before)
    async with writer:
        ids = [await close_sale(engine, writer, n) for n in range(20)]
        assert (await writer.outbox_statistics()).waiting == 20
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        await books.wait_for(20)
        stats = await settled(bus)
    assert books.ids == ids  # oldest first
    assert (stats.waiting, stats.relayed) == (0, 20)


async def test_a_row_that_cannot_be_decoded_blocks_nothing(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    async with engine.begin() as connection:
        await connection.execute(
            insert(outbox_table).values(
                event_id="garbage-1",
                event_type="outbox.sale_closed",
                payload=b"\xff not json",
                created_at=datetime.now(UTC),
            )
        )
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        event_id = await close_sale(engine, bus, 1)
        await books.wait_for(1)
        stats = await settled(bus)
    assert books.ids == [event_id]
    assert (stats.waiting, stats.poisoned) == (0, 1)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_commits_while_redis_is_down_are_delivered_once_it_is_back(
    database: tuple[str, AsyncEngine], redis_server_binary: str, redis_prefix: str
) -> None:
    url, engine = database
    # Redis keeps what it stored across the restart (as production Redis must).
    with RedisServer(redis_server_binary, appendonly=True, appendfsync="always") as server:
        bus = redis_bus(
            server.url,
            redis_prefix,
            emit_timeout=0.5,
            bus_options={"outbox_url": url, "outbox": OutboxOptions(poll_interval=0.02)},
        )
        books = Counter[int]()
        once = Counter[int]()

        @bus.on(SaleClosed, name="books")
        async def book(event: SaleClosed) -> None:
            books[event.sale_id] += 1

        @bus.on(SaleClosed, name="books-once", idempotent=True)
        async def book_once(event: SaleClosed) -> None:
            once[event.sale_id] += 1

        async with bus:
            await close_sale(engine, bus, 0)
            async with asyncio.timeout(10):
                while not books:  # noqa: ASYNC110 - handled by the subscriber
                    await asyncio.sleep(0.01)
            await asyncio.to_thread(server.stop)
            for n in range(1, 1001):  # the till never fails while Redis is down
                await close_sale(engine, bus, n)
            assert (await bus.outbox_statistics()).waiting >= 900
            await asyncio.to_thread(server.start)
            async with asyncio.timeout(60):
                while len(books) < 1001 or len(once) < 1001:  # noqa: ASYNC110 - handlers
                    await asyncio.sleep(0.05)
            stats = await settled(bus)
    assert set(books) == set(range(1001))
    assert once == Counter(range(1001))  # the effectively-once subscriber: nothing twice
    assert stats.waiting == 0
    print(f"1000 sales committed while Redis was down, {sum(books.values()) - 1001} handled twice")


def test_the_metadata_holds_the_outbox_and_inbox_tables() -> None:
    assert set(metadata.tables) == {"hookbus_outbox", "hookbus_inbox"}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_two_relays_on_postgresql_send_each_of_10000_rows_once(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(shop.create_all)
    await create_tables(engine)
    handled: Counter[str] = Counter()

    async def book(event: SaleClosed) -> None:
        envelope = current_envelope()
        assert envelope is not None
        handled[envelope.id] += 1

    relays = [local_bus(postgres_url, batch=100) for _ in range(2)]
    for relay in relays:
        relay.subscribe(SaleClosed, book, name="books")
    writer = local_bus(postgres_url, relay=False)
    try:
        async with writer, relays[0], relays[1]:
            ids: list[str] = []
            for first in range(0, 10_000, 500):
                async with engine.begin() as connection:  # 500 sales per transaction
                    for n in range(first, first + 500):
                        ids.append(await writer.emit(SaleClosed(sale_id=n), session=connection))
            async with asyncio.timeout(120):
                while len(handled) < 10_000:  # noqa: ASYNC110 - handled by the relays' buses
                    await asyncio.sleep(0.05)
            for relay in relays:
                await settled(relay)
            shares = [(await relay.outbox_statistics()).relayed for relay in relays]
    finally:
        await engine.dispose()
    assert set(handled) == set(ids)
    assert set(handled.values()) == {1}  # no row sent twice
    assert sum(shares) == 10_000
    print(f"two relays shared 10,000 rows: {shares}")


@pytest.mark.postgres
async def test_a_commit_wakes_the_relay_at_once_on_postgresql(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(shop.create_all)
    await create_tables(engine)
    bus = EventBus(
        mode="local",
        outbox_url=postgres_url,
        settings=test_settings(outbox=OutboxOptions(poll_interval=30.0)),  # no polling help
    )
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    latencies: list[float] = []
    try:
        async with bus:
            for n in range(20):
                started = time.perf_counter()
                await close_sale(engine, bus, n)
                await books.wait_for(n + 1, timeout=5)
                latencies.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1  # milliseconds, not the 30 s poll
    print(f"commit -> handler on PostgreSQL: median {latencies[10] * 1000:.1f} ms")


CHILD = """
import asyncio, sys
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
from hookbus import EventBus
from hookbus._outbox_options import OutboxOptions
from hookbus.testing import test_settings
from test_outbox import SaleClosed, sales

async def main(url):
    engine = create_async_engine(url)
    bus = EventBus(mode="local", outbox_url=url,
                   settings=test_settings(outbox=OutboxOptions(relay=False)))
    async with bus:
        for n in range(50):
            async with engine.begin() as connection:
                await connection.execute(insert(sales).values(id=n, till="A"))
                print(await bus.emit(SaleClosed(sale_id=n), session=connection), flush=True)
        print("committed", flush=True)
        await asyncio.sleep(60)  # killed here, before any relay ran

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_commits_of_a_process_killed_before_relaying_are_delivered_after_restart(
    database: tuple[str, AsyncEngine],
) -> None:
    url, _ = database
    tests_dir = Path(__file__).parent
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        stdout=asyncio.subprocess.PIPE,
        cwd=tests_dir,
        env={**os.environ, "PYTHONPATH": str(tests_dir)},
    )
    assert child.stdout is not None
    ids: list[str] = []
    async with asyncio.timeout(30):
        while (line := (await child.stdout.readline()).decode().strip()) != "committed":
            assert line, "the child exited early"
            ids.append(line)
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    once = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    bus.subscribe(SaleClosed, once, name="books-once", idempotent=True)
    async with bus:
        await books.wait_for(50)
        await once.wait_for(50)
        await settled(bus)
    assert books.ids == ids
    assert once.ids == ids


async def test_a_growing_backlog_is_logged(
    database: tuple[str, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    url, engine = database
    writer = local_bus(url, relay=False)
    async with writer:
        for n in range(10):
            await close_sale(engine, writer, n)
    release = asyncio.Event()
    bus = local_bus(url, backlog_warning=3)

    @bus.on(SaleClosed, name="stuck")
    async def stuck(event: SaleClosed) -> None:
        await release.wait()  # durable local mode: the rows wait for this subscriber

    with caplog.at_level("WARNING", logger="hookbus"):
        async with bus:
            async with asyncio.timeout(10):
                while "10 rows waiting" not in caplog.text:  # noqa: ASYNC110 - the log
                    await asyncio.sleep(0.02)
            release.set()
            await settled(bus)
    assert "the backlog grows" in caplog.text


async def test_one_relay_at_a_time_on_a_sqlite_file_and_another_takes_over(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    first, second = local_bus(url), local_bus(url)
    books = Counter[int]()

    async def book(event: SaleClosed) -> None:
        books[event.sale_id] += 1

    for bus in (first, second):
        bus.subscribe(SaleClosed, book, name="books")
    async with first, second:
        for n in range(20):
            await close_sale(engine, first, n)
        async with asyncio.timeout(10):
            while len(books) < 20:  # noqa: ASYNC110 - handled by whichever relays
                await asyncio.sleep(0.01)
        shares = [(await bus.outbox_statistics()).relayed for bus in (first, second)]
        assert sorted(shares) == [0, 20]  # one relay did it all
        relaying, standing_by = (first, second) if shares[0] else (second, first)
        await relaying.stop()
        for n in range(20, 30):
            await close_sale(engine, standing_by, n)
        async with asyncio.timeout(10):
            while len(books) < 30:  # noqa: ASYNC110 - handled by the one left
                await asyncio.sleep(0.01)
        assert (await standing_by.outbox_statistics()).relayed == 10
    assert books == Counter(range(30))


async def test_a_commit_in_this_process_is_relayed_without_waiting_for_the_poll(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    bus = local_bus(url, poll_interval=30.0)  # SQLite has no NOTIFY: only polling
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        started = time.perf_counter()
        await close_sale(engine, bus, 1)
        await books.wait_for(1, timeout=5)
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # not the 30 s poll
    print(f"commit -> handler on SQLite, same process: {elapsed * 1000:.1f} ms")
