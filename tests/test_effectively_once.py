"""Effectively-once subscribers against real databases and a real Redis: an inbox-backed
handler's effect happens once whatever is delivered again (replay, reclaim after a killed
worker, retry after a partial failure, a row relayed twice), and durable local mode
delivers after a restart what a crash interrupted."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import hookbus.outbox
from hookbus import Delivery, Event, EventBus, current_delivery
from hookbus._envelope import Envelope
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import create_tables, inbox_table, outbox_table
from hookbus.testing import Recorder, test_settings
from redis_bus import redis_bus

TESTS = Path(__file__).parent

books = MetaData()
journal = Table(
    "journal",
    books,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sale_id", Integer, nullable=False),  # no UNIQUE: the inbox alone prevents doubles
    Column("event_id", String(64), nullable=False),
)


class SaleBooked(Event, name="once.sale_closed"):
    sale_id: int


async def prepared(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(books.create_all)
    await create_tables(engine)
    return engine


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'books.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The books' database: a SQLite file, or a PostgreSQL database."""
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


def inbox_handler(engine: AsyncEngine, fail_first: bool = False) -> Any:
    """The accounting: books the sale and records the completion in one transaction."""
    outcomes: Counter[str] = Counter()

    async def book(event: SaleBooked) -> None:
        delivery = current_delivery()
        assert delivery is not None
        async with engine.begin() as db:
            if not await hookbus.outbox.record_completion(db):
                outcomes["already"] += 1
                return
            await db.execute(
                insert(journal).values(sale_id=event.sale_id, event_id=delivery.envelope.id)
            )
            if fail_first and delivery.attempt == 1:
                outcomes["failed"] += 1
                raise ConnectionError("the accounting server hung up after the insert")
        outcomes["booked"] += 1

    return book, outcomes


async def journal_counts(engine: AsyncEngine) -> Counter[int]:
    async with engine.connect() as db:
        rows = (await db.execute(select(journal.c.sale_id))).scalars().all()
    return Counter(rows)


async def inbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int((await db.execute(select(func.count()).select_from(inbox_table))).scalar_one())


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition`` (a database or the bus's counters) until true, for ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            while not await condition():  # noqa: ASYNC110 - polling a table
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


# -- a partial failure -----------------------------------------------------------------


async def test_a_transaction_that_fails_after_partial_work_is_retried_and_books_once(
    database_url: str,
) -> None:
    engine = await prepared(database_url)
    book, outcomes = inbox_handler(engine, fail_first=True)
    bus = EventBus(mode="local", settings=test_settings())
    bus.subscribe(SaleBooked, book, name="accounting", idempotent=True)
    try:
        async with bus:
            for n in range(5):
                await bus.emit(SaleBooked(sale_id=n))
            await bus.drain(10)
        assert outcomes == {"failed": 5, "booked": 5}
        assert await journal_counts(engine) == Counter(range(5))  # the failed inserts rolled back
        assert await inbox_rows(engine) == 5
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_concurrent_deliveries_of_one_event_record_it_once_on_postgresql(
    postgres_url: str,
) -> None:
    """The second transaction waits for the first's record, then sees it."""
    engine = await prepared(postgres_url)
    envelope = Envelope("01JDELIVEREDTWICE0000000000", SaleBooked(sale_id=1), "test")
    delivery = Delivery(envelope, "accounting", 1, 3)
    first_inserted = asyncio.Event()
    results: dict[str, bool] = {}

    async def first() -> None:
        async with engine.begin() as db:
            results["first"] = await hookbus.outbox.record_completion(db, delivery)
            await db.execute(insert(journal).values(sale_id=1, event_id=envelope.id))
            first_inserted.set()
            await asyncio.sleep(0.3)  # the other delivery arrives while this one is open

    async def second() -> None:
        await first_inserted.wait()
        async with engine.begin() as db:
            results["second"] = await hookbus.outbox.record_completion(db, delivery)
            if results["second"]:
                await db.execute(insert(journal).values(sale_id=1, event_id=envelope.id))

    try:
        await asyncio.gather(first(), second())
        assert results == {"first": True, "second": False}
        assert await journal_counts(engine) == Counter({1: 1})
    finally:
        await engine.dispose()


async def test_record_completion_outside_a_handler_needs_a_delivery(sqlite_url: str) -> None:
    engine = await prepared(sqlite_url)
    try:
        async with engine.begin() as db:
            with pytest.raises(hookbus.ConfigurationError, match="delivery"):
                await hookbus.outbox.record_completion(db)
    finally:
        await engine.dispose()


# -- redelivery in redis mode --------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "inbox-only"])
async def test_a_replay_to_an_inbox_backed_subscriber_books_nothing_twice(
    idempotent: bool, sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    """With ``idempotent=True`` the broker's records skip the replayed events; without,
    the handler runs again and its inbox finds every event booked already."""
    engine = await prepared(sqlite_url)
    book, outcomes = inbox_handler(engine)
    bus = redis_bus(redis_url, redis_prefix)
    bus.subscribe(SaleBooked, book, name="accounting", idempotent=idempotent)
    try:
        async with bus:
            ids = [await bus.emit(SaleBooked(sale_id=n)) for n in range(20)]
            await bus.drain(10)
            await bus.replay("accounting", since=ids[0])
            await wait_for(
                lambda: _stat(
                    bus, "skipped" if idempotent else "handled", 20 if idempotent else 40
                ),
                10,
                "the replayed events",
            )
        assert await journal_counts(engine) == Counter(range(20))
        assert outcomes == ({"booked": 20} if idempotent else {"booked": 20, "already": 20})
    finally:
        await engine.dispose()


async def _stat(bus: EventBus, name: str, value: int) -> bool:
    return any(getattr(s, name) >= value for s in bus.statistics())


WORKER = """
import asyncio, os, signal, sys
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
import hookbus.outbox
from hookbus import current_delivery
from redis_bus import redis_bus
from test_effectively_once import SaleBooked, journal

async def main(redis_url, prefix, db_url, crash_at):
    engine = create_async_engine(db_url)
    bus = redis_bus(redis_url, prefix, claim_idle=0.5, claim_interval=0.2)

    @bus.on(SaleBooked, name="accounting", idempotent=True)
    async def book(event):
        delivery = current_delivery()
        async with engine.begin() as db:
            if not await hookbus.outbox.record_completion(db):
                print("already", event.sale_id, flush=True)
                return
            await db.execute(insert(journal).values(sale_id=event.sale_id,
                                                    event_id=delivery.envelope.id))
        print("booked", event.sale_id, flush=True)
        if event.sale_id == crash_at:  # committed, not acknowledged yet
            os.kill(os.getpid(), signal.SIGKILL)

    async with bus:
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def start_worker(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """A worker process, once its bus runs; and the lines it printed until then."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert worker.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while (line := (await worker.stdout.readline()).decode().strip()) != "ready":
            assert line, "the worker exited before it was ready"
            lines.append(line)
    return worker, lines


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_worker_killed_between_its_commit_and_its_ack_books_the_sale_once(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    """The first worker commits sale 7 and dies before acknowledging it (and the sales
    before it, acknowledged with their batch); the second reclaims them, and the inbox
    finds them booked."""
    url = database_url
    engine = await prepared(url)
    emitter = redis_bus(redis_url, redis_prefix)
    emitter.register(SaleBooked)
    first, _ = await start_worker(redis_url, redis_prefix, url, "7")
    second: asyncio.subprocess.Process | None = None
    try:
        async with emitter:
            for n in range(20):
                await emitter.emit(SaleBooked(sale_id=n))
            assert await asyncio.wait_for(first.wait(), 30) == -signal.SIGKILL
            second, lines = await start_worker(redis_url, redis_prefix, url, "-1")
            assert second.stdout is not None
            async with asyncio.timeout(30):
                while len(await journal_counts(engine)) < 20 or "already 7" not in lines:
                    lines.append((await second.stdout.readline()).decode().strip())
        counts = await journal_counts(engine)
        assert counts == Counter(range(20))  # sale 7 once, though handled twice
        assert await inbox_rows(engine) == 20
    finally:
        for worker in (first, second):
            if worker is not None and worker.returncode is None:
                worker.kill()
                await worker.wait()
        await engine.dispose()


# -- the outbox's duplicates, and durable local mode ----------------------------------------


@pytest.mark.redis
async def test_rows_relayed_twice_reach_an_idempotent_subscriber_once(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    """A relay that published rows and died before deleting them publishes them again."""
    engine = await prepared(sqlite_url)
    writer = EventBus(
        mode="local",
        outbox_url=sqlite_url,
        settings=test_settings(outbox=OutboxOptions(relay=False)),
    )
    async with writer, engine.begin() as db:
        for n in range(10):
            await writer.emit(SaleBooked(sale_id=n), session=db)
    async with engine.connect() as db:
        rows = [dict(row._mapping) for row in (await db.execute(select(outbox_table))).all()]
    once: Recorder[SaleBooked] = Recorder()
    every: Recorder[SaleBooked] = Recorder()
    bus = redis_bus(
        redis_url,
        redis_prefix,
        bus_options={"outbox_url": sqlite_url, "outbox": OutboxOptions(poll_interval=0.02)},
    )
    bus.subscribe(SaleBooked, once, name="once", idempotent=True)
    bus.subscribe(SaleBooked, every, name="every")
    try:
        async with bus:
            await once.wait_for(10)
            await wait_for(_outbox_empty(bus), 10, "the outbox relayed")
            async with engine.begin() as db:  # what the dead relay had not deleted
                await db.execute(insert(outbox_table), rows)
            await every.wait_for(20)
            await bus.drain(10)
        assert sorted(e.sale_id for e in once.events) == list(range(10))
        assert Counter(e.sale_id for e in every.events) == Counter(list(range(10)) * 2)
        [stats] = [s for s in bus.statistics() if s.subscriber == "once"]
        assert (stats.handled, stats.skipped) == (10, 10)
    finally:
        await engine.dispose()


def _outbox_empty(bus: EventBus) -> Any:
    async def empty() -> bool:
        return bool((await bus.outbox_statistics()).waiting == 0)

    return empty


DURABLE_LOCAL = """
import asyncio, sys
from sqlalchemy.ext.asyncio import create_async_engine
from hookbus import EventBus
from hookbus._outbox_options import OutboxOptions
from hookbus.testing import test_settings
from test_effectively_once import SaleBooked

async def main(url):
    engine = create_async_engine(url)
    bus = EventBus(mode="local", outbox_url=url,
                   settings=test_settings(outbox=OutboxOptions(poll_interval=0.02)))
    @bus.on(SaleBooked, name="receipts", idempotent=True)
    async def receipt(event):
        pass

    @bus.on(SaleBooked, name="accounting")
    async def book(event):
        await asyncio.Event().wait()  # the accounting hangs: killed here

    async with bus:
        async with engine.begin() as db:
            for n in range(10):
                await bus.emit(SaleBooked(sale_id=n), session=db)
        print("committed", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_durable_local_mode_delivers_after_a_crash_what_was_not_finished(
    sqlite_url: str,
) -> None:
    engine = await prepared(sqlite_url)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DURABLE_LOCAL,
        sqlite_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert child.stdout is not None
    async with asyncio.timeout(30):
        assert (await child.stdout.readline()).decode().strip() == "committed"
    # "receipts" has completed (and recorded) every sale; "accounting" hangs on the first.
    await wait_for(lambda: _inbox_has(engine, 10), 20, "the receipts' completions")
    await engine.dispose()
    child.kill()
    assert await child.wait() == -signal.SIGKILL

    bus = EventBus(
        mode="local",
        outbox_url=sqlite_url,
        settings=test_settings(outbox=OutboxOptions(poll_interval=0.02)),
    )
    receipts: Recorder[SaleBooked] = Recorder()
    accounting: Recorder[SaleBooked] = Recorder()
    bus.subscribe(SaleBooked, receipts, name="receipts", idempotent=True)
    bus.subscribe(SaleBooked, accounting, name="accounting")
    async with bus:
        await accounting.wait_for(10)
        await wait_for(_outbox_empty(bus), 10, "the outbox emptied")
        await bus.drain(10)
        stats = {s.subscriber: s for s in bus.statistics()}
    assert sorted(e.sale_id for e in accounting.events) == list(range(10))
    assert receipts.events == []  # finished before the crash: not run again
    assert stats["receipts"].skipped == 10


async def _inbox_has(engine: AsyncEngine, count: int) -> bool:
    return await inbox_rows(engine) >= count


async def test_durable_local_mode_keeps_rows_until_every_subscriber_finished(
    sqlite_url: str,
) -> None:
    release = asyncio.Event()
    bus = EventBus(
        mode="local",
        outbox_url=sqlite_url,
        settings=test_settings(outbox=OutboxOptions(poll_interval=0.02)),
    )
    fast: Recorder[SaleBooked] = Recorder()

    @bus.on(SaleBooked, name="slow")
    async def slow(event: SaleBooked) -> None:
        await release.wait()

    bus.subscribe(SaleBooked, fast, name="fast")
    engine = await prepared(sqlite_url)
    try:
        async with bus:
            async with engine.begin() as db:
                await bus.emit(SaleBooked(sale_id=1), session=db)
            await fast.wait_for(1)
            assert (await bus.outbox_statistics()).waiting == 1  # "slow" is not done
            release.set()
            await wait_for(_outbox_empty(bus), 10, "the row deleted once both finished")
    finally:
        await engine.dispose()


def test_the_outbox_lease_is_configurable_from_the_environment() -> None:
    options = OutboxOptions.from_env({"HOOKBUS_OUTBOX_LEASE": "12.5"})
    assert options.lease == 12.5
    with pytest.raises(hookbus.ConfigurationError, match="lease"):
        OutboxOptions(lease=0)


@pytest.mark.redis
async def test_a_duplicate_in_the_same_batch_runs_once(redis_url: str, redis_prefix: str) -> None:
    """Two entries of one event read together: the records read ahead for the batch say
    "not done" for both; the first completion must still stop the second."""
    from hookbus._ids import new_event_id
    from redis_bus import raw_client

    def new_bus() -> tuple[EventBus, Recorder[SaleBooked]]:
        bus = redis_bus(redis_url, redis_prefix)
        once: Recorder[SaleBooked] = Recorder()
        bus.subscribe(SaleBooked, once, name="once", idempotent=True)
        return bus, once

    first, _ = new_bus()
    async with first:  # creates the consumer group
        pass
    payload = Envelope(new_event_id(), SaleBooked(sale_id=5), "test").encode()
    client = raw_client(redis_url)
    try:
        for _ in range(2):
            await client.xadd(f"{redis_prefix}:stream:once.sale_closed", {"e": payload})
    finally:
        await client.aclose()
    bus, once = new_bus()
    async with bus:
        await wait_for(lambda: _stat(bus, "skipped", 1), 10, "the duplicate skipped")
        await bus.drain(10)
    assert [e.sale_id for e in once.events] == [5]
