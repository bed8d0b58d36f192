"""The shop demo's till writes each sale and its ``sale_closed`` in one transaction (the
outbox, in the shop's SQLite file), and the accounting books each sale once (its inbox):
what a closed sale leaves in the database, what a redelivery and a rollback do."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import hookbus.outbox
from examples.shop_demo import accounting
from examples.shop_demo.database import open_engine
from examples.shop_demo.events import SaleClosed
from examples.shop_demo.web import create_app
from examples.shop_demo.web.till import SaleIn, SaleOut, record_sale
from hookbus import Envelope, EventBus, SubscriberStats
from hookbus.testing.redis_server import RedisServer

WAIT = 15.0  # seconds: the accounting's retry waits 0.5 s, the relay polls every 0.5 s
DB_NAME = "shop.sqlite3"


@pytest.fixture
def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environ: None
) -> Iterator[TestClient]:
    monkeypatch.setenv("SHOP_IMPORT_PACE", "0")
    with TestClient(create_app(tmp_path)) as test_client:
        yield test_client


def rows(db_path: Path, query: str) -> list[tuple[Any, ...]]:
    """What ``query`` reads from the shop's database (a connection of the test's own)."""
    with closing(sqlite3.connect(db_path, timeout=10.0)) as conn:
        return conn.execute(query).fetchall()


def outbox_rows(db_path: Path) -> int:
    return int(rows(db_path, "SELECT count(*) FROM hookbus_outbox")[0][0])


def bus_of(client: TestClient) -> EventBus:
    bus = cast(FastAPI, client.app).state.hookbus
    assert isinstance(bus, EventBus)
    return bus


def on_loop(client: TestClient, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` on the app's event loop (awaited if it is async)."""
    assert client.portal is not None, "the client is not started"
    return client.portal.call(function, *args)


def accounting_stats(client: TestClient) -> SubscriberStats:
    """The accounting's counters, read on the app's event loop."""
    stats: list[SubscriberStats] = on_loop(client, bus_of(client).statistics)
    (accounting_sale,) = [
        s for s in stats if (s.subscriber, s.event_type) == ("accounting", "sale_closed")
    ]
    return accounting_sale


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Check ``condition`` until it holds, for at most ``WAIT`` seconds (the app runs in
    the client's own thread meanwhile)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT:g}s waiting for {what}")
        time.sleep(0.02)


def close_sale(client: TestClient, total: str, payment_method: str = "cash") -> dict[str, Any]:
    answer = client.post("/api/till/sales", json={"total": total, "payment_method": payment_method})
    assert answer.status_code == 201, answer.text
    sale: dict[str, Any] = answer.json()
    return sale


def test_each_sale_leaves_one_entry_one_inbox_row_and_an_empty_outbox(
    client: TestClient, tmp_path: Path
) -> None:
    db_path = tmp_path / DB_NAME
    # The third sale's first attempt writes its entry, then fails (SHOP_FLAKY_EVERY=3):
    # its transaction rolls back, and the retry books it.
    sales = [close_sale(client, total) for total in ("4.50", "12.00", "7.20")]

    def all_booked() -> bool:
        return accounting_stats(client).handled == len(sales) and outbox_rows(db_path) == 0

    wait_for(all_booked, "every sale booked and the outbox empty")
    entries = rows(db_path, "SELECT sale_id, event_id, amount FROM entries ORDER BY sale_id")
    assert entries == [(s["sale_id"], s["event_id"], s["total"]) for s in sales]
    inbox = rows(db_path, "SELECT subscriber, event_id FROM hookbus_inbox")
    assert sorted(inbox) == sorted(("accounting", s["event_id"]) for s in sales)
    stats = accounting_stats(client)
    assert (stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (3, 1, 1, 0)
    assert [r[0] for r in rows(db_path, "SELECT id FROM sales ORDER BY id")] == [1, 2, 3]


def test_a_refused_sale_leaves_no_entry_and_no_inbox_row(
    client: TestClient, tmp_path: Path
) -> None:
    db_path = tmp_path / DB_NAME
    close_sale(client, "15.00", "voucher")

    def dead_letter() -> bool:
        return accounting_stats(client).dead_lettered == 1 and outbox_rows(db_path) == 0

    wait_for(dead_letter, "the voucher sale to become a dead letter")
    assert rows(db_path, "SELECT count(*) FROM entries") == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM hookbus_inbox") == [(0,)]
    assert accounting_stats(client).failed == accounting.MAX_ATTEMPTS


def _envelope_of(sale: dict[str, Any], payment_method: str, source: str) -> Envelope:
    """The envelope the till emitted for ``sale`` (same event id, same event)."""
    event = SaleClosed(
        session_id=sale["session_id"],
        sale_id=sale["sale_id"],
        total=Decimal(sale["total"]),
        payment_method=payment_method,
    )
    return Envelope(sale["event_id"], event, source)


async def _publish(bus: EventBus, envelope: Envelope) -> None:
    """Deliver ``envelope`` to the bus's subscribers again, as a redelivery would."""
    pending = bus._backend.publish(envelope)
    if pending is not None:
        await pending


def test_the_same_sale_closed_delivered_again_books_nothing_more(
    client: TestClient, tmp_path: Path
) -> None:
    db_path = tmp_path / DB_NAME
    sale = close_sale(client, "9.90", "card")
    wait_for(lambda: accounting_stats(client).handled == 1, "the sale to be booked")

    bus = bus_of(client)
    on_loop(client, _publish, bus, _envelope_of(sale, "card", bus.settings.source))
    wait_for(lambda: accounting_stats(client).skipped == 1, "the redelivery to be skipped")

    assert rows(db_path, "SELECT sale_id, event_id FROM entries") == [
        (sale["sale_id"], sale["event_id"])
    ]
    assert rows(db_path, "SELECT event_id FROM hookbus_inbox") == [(sale["event_id"],)]
    assert accounting_stats(client).handled == 1


@pytest.mark.usefixtures("clean_environ")
async def test_the_inbox_refuses_a_sale_another_process_booked(tmp_path: Path) -> None:
    """A bus that never saw the event (no completion record of its own: another
    process, or one restarted) runs the handler, whose inbox record says it is done."""
    db_path = tmp_path / DB_NAME
    engine = open_engine(db_path)
    try:
        await hookbus.outbox.create_tables(engine)
        await accounting.create_tables(engine)
        event = SaleClosed(session_id=1, sale_id=1, total=Decimal("5.00"), payment_method="cash")
        envelope = Envelope(str(uuid.uuid4()), event, "test")
        for _process in range(2):
            bus = EventBus(mode="local")  # completion records in memory: none yet
            accounting.install(bus, engine)
            async with bus:
                await _publish(bus, envelope)
                await bus.drain(timeout=WAIT)
                (stats,) = bus.statistics()
            assert (stats.handled, stats.failed, stats.skipped) == (1, 0, 0)  # the handler ran
            assert await accounting.booked(engine) == (1, Decimal("5.00"))
    finally:
        await engine.dispose()
    assert rows(db_path, "SELECT subscriber, event_id FROM hookbus_inbox") == [
        ("accounting", envelope.id)
    ]


class RefusedError(Exception):
    """Raised in the till's transaction, after the sale is written."""


def test_a_sale_whose_transaction_rolls_back_emits_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    db_path = tmp_path / DB_NAME
    bus = bus_of(client)

    engine = open_engine(db_path)
    sales: list[SaleOut] = []

    async def close_then_fail() -> None:
        async with engine.begin() as db:
            sales.append(await record_sale(db, bus, SaleIn(total=Decimal("8.00"))))
            written = await db.exec_driver_sql("SELECT count(*) FROM hookbus_outbox")
            assert written.scalar_one() == 2  # cash_session_opened, sale_closed
            raise RefusedError

    async def in_a_transaction_that_fails() -> None:
        try:
            with pytest.raises(RefusedError):
                await close_then_fail()
        finally:
            await engine.dispose()

    on_loop(client, in_a_transaction_that_fails)
    (rolled_back,) = sales
    for table in ("sales", "till_sessions", "hookbus_outbox"):
        assert rows(db_path, f"SELECT count(*) FROM {table}") == [(0,)], table

    # The next sale goes out; had the rolled-back one existed, it would have gone first.
    kept = close_sale(client, "3.00")
    assert kept["event_id"] != rolled_back.event_id

    def booked() -> bool:
        return accounting_stats(client).handled == 1 and outbox_rows(db_path) == 0

    wait_for(booked, "the committed sale to be booked")
    assert rows(db_path, "SELECT sale_id, event_id FROM entries") == [
        (kept["sale_id"], kept["event_id"])
    ]
    stats = accounting_stats(client)
    assert (stats.handled, stats.failed, stats.skipped) == (1, 0, 0)


async def _replay(bus: EventBus, since: str) -> None:
    await bus.replay("accounting", since=since)


@pytest.mark.redis
def test_a_replay_books_nothing_more_in_redis_mode(
    redis_server: RedisServer,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_environ: None,
) -> None:
    monkeypatch.setenv("EVENT_BUS_MODE", "redis")
    monkeypatch.setenv("HOOKBUS_REDIS_URL", redis_server.url)
    monkeypatch.setenv("HOOKBUS_REDIS_PREFIX", redis_prefix)
    db_path = tmp_path / DB_NAME
    with TestClient(create_app(tmp_path)) as client:
        sales = [close_sale(client, total) for total in ("2.00", "6.50")]

        def booked() -> bool:
            return accounting_stats(client).handled == len(sales) and outbox_rows(db_path) == 0

        wait_for(booked, "both sales booked and the outbox empty")
        on_loop(client, _replay, bus_of(client), sales[0]["event_id"])
        wait_for(lambda: accounting_stats(client).skipped == len(sales), "the replay")
        assert accounting_stats(client).handled == len(sales)
    entries = rows(db_path, "SELECT sale_id, event_id FROM entries ORDER BY sale_id")
    assert entries == [(s["sale_id"], s["event_id"]) for s in sales]
    assert rows(db_path, "SELECT count(*) FROM hookbus_inbox") == [(len(sales),)]
