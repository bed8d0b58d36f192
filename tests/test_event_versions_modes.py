"""Stored version-1 events handled as version 2, in every mode: local mode's outbox,
redis (consumer, replay, events_after) and rabbitmq (consumer, replay, history); a
version-3 event read by the version-2 class is a dead letter naming both versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from evolving_events import NAME, SaleClosed, SaleClosedV1, SaleClosedV3, legacy_envelope
from hookbus import DeadLetter, EventBus
from hookbus._ids import new_event_id
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import create_tables, outbox_table
from hookbus.testing import Recorder, test_settings
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus, raw_channel
from redis_bus import raw_client, redis_bus

AS_V2 = SaleClosed(sale_id=0, total=Decimal("9.90"), currency="EUR")


def as_v2(sale_id: int) -> SaleClosed:
    return AS_V2.model_copy(update={"sale_id": sale_id})


def v1(sale_id: int) -> SaleClosedV1:
    return SaleClosedV1(sale_id=sale_id, total=Decimal("9.90"))


def v3(sale_id: int) -> SaleClosedV3:
    return SaleClosedV3(sale_id=sale_id, amount=Decimal(5), currency="CHF")


def assert_names_both_versions(letter: DeadLetter) -> None:
    assert letter.error_type == "hookbus.InvalidEnvelopeError"
    assert "version 3 is newer than SaleClosed (version 2)" in letter.error_message


# -- local mode: the outbox -----------------------------------------------------------


@pytest.fixture
async def database(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engine = create_async_engine(url)
    await create_tables(engine)
    yield url, engine
    await engine.dispose()


def local_bus(url: str, **outbox: Any) -> EventBus:
    return EventBus(
        mode="local",
        outbox_url=url,
        settings=test_settings(outbox=OutboxOptions(poll_interval=0.02, **outbox)),
    )


async def test_local_outbox_rows_of_version_1_are_handled_as_version_2(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    writer = local_bus(url, relay=False)  # the first release: commits, never relays
    async with writer:
        ids = []
        for n in (1, 2):
            async with engine.begin() as connection:
                ids.append(await writer.emit(v1(n), session=connection))
        legacy_id = new_event_id()
        async with engine.begin() as connection:
            await connection.execute(
                insert(outbox_table).values(
                    event_id=legacy_id,
                    event_type=NAME,
                    payload=legacy_envelope(3, legacy_id),
                    created_at=datetime.now(UTC),
                )
            )
            ids.append(legacy_id)
            ids.append(await writer.emit(v3(4), session=connection))  # a later release's
    bus = local_bus(url)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        await books.wait_for(3)
        async with asyncio.timeout(10):
            while (stats := await bus.outbox_statistics()).waiting:  # noqa: ASYNC110 - a table
                await asyncio.sleep(0.01)
        await bus.drain(timeout=10)
    assert books.events == [as_v2(1), as_v2(2), as_v2(3)]
    assert books.ids == ids[:3]
    assert stats.poisoned == 1  # the version-3 row: set aside, nothing stalled


# -- redis mode -------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_entries_of_version_1_are_handled_as_version_2(
    redis_url: str, redis_prefix: str
) -> None:
    writer = redis_bus(redis_url, redis_prefix, consume=False)  # the first release
    writer.register(SaleClosedV1)
    client = raw_client(redis_url)
    async with writer:
        ids = [await writer.emit(v1(n)) for n in (1, 2)]
    legacy_id = new_event_id()
    await client.xadd(f"{redis_prefix}:stream:{NAME}", {"e": legacy_envelope(3, legacy_id)})
    await client.aclose()
    ids.append(legacy_id)
    bus = redis_bus(redis_url, redis_prefix, group_start="all")  # the new release
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus:
        await books.wait_for(3)
        await bus.drain(timeout=10)
        after = await bus.events_after(ids[0], SaleClosed)
        await bus.replay("books", since=ids[0])
        await books.wait_for(6)
        await bus.drain(timeout=10)
        letters = await bus.dead_letters()
    assert books.events == [as_v2(1), as_v2(2), as_v2(3)] * 2
    assert books.ids == ids * 2
    assert after is not None
    assert [e.event for e in after] == [as_v2(2), as_v2(3)]
    assert letters == []


@pytest.mark.redis
async def test_a_redis_entry_of_a_newer_version_is_a_dead_letter_naming_both(
    redis_url: str, redis_prefix: str
) -> None:
    writer = redis_bus(redis_url, redis_prefix, consume=False)  # a later release
    writer.register(SaleClosedV3)
    bus = redis_bus(redis_url, redis_prefix)
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    async with bus, writer:
        newer = await writer.emit(v3(1))
        after = await bus.emit(as_v2(2))
        await books.wait_for(1)
        await bus.drain(timeout=10)
        (letter,) = await bus.dead_letters()
    assert books.ids == [after]  # nothing stalled behind it
    assert_names_both_versions(letter)
    assert (letter.subscriber, letter.event_id) == ("books", newer)


def fail_first_attempt(event: SaleClosed, attempt: int) -> None:
    if attempt == 1:
        raise RuntimeError("the books are closed")


@pytest.mark.redis
async def test_a_redis_dead_letter_of_version_1_is_retried_as_version_2(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    books = Recorder[SaleClosed](fail=fail_first_attempt)
    bus.subscribe(SaleClosed, books, name="books", max_attempts=1)
    client = raw_client(redis_url)
    async with bus:
        legacy_id = new_event_id()
        await client.xadd(f"{redis_prefix}:stream:{NAME}", {"e": legacy_envelope(1, legacy_id)})
        await client.aclose()
        await books.wait_for(1, calls=True)
        await bus.drain(timeout=10)
        (letter,) = await bus.dead_letters()
        assert letter.envelope is not None
        assert letter.envelope.event == as_v2(1)  # listed as version 2
        await bus.retry_dead_letter(letter)
        await books.wait_for(1)
        await bus.drain(timeout=10)
        assert await bus.dead_letters() == []
    assert books.events == [as_v2(1)]
    assert books.ids == [legacy_id]


# -- rabbitmq mode ----------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_rabbitmq_messages_of_version_1_are_handled_as_version_2(
    rabbitmq_server: RabbitMQServer,
) -> None:
    prefix = new_prefix()
    bus = rabbitmq_bus(rabbitmq_server.url, prefix)  # the new release, consuming
    books = Recorder[SaleClosed]()
    bus.subscribe(SaleClosed, books, name="books")
    writer = rabbitmq_bus(rabbitmq_server.url, prefix)  # the first release, emitting
    writer.register(SaleClosedV1)
    async with bus, writer, raw_channel(rabbitmq_server.url) as channel:
        ids = [await writer.emit(v1(n)) for n in (1, 2)]
        legacy_id = new_event_id()
        exchange = await channel.get_exchange(f"{prefix}.events.{NAME}")
        await exchange.publish(aio_pika.Message(legacy_envelope(3, legacy_id)), routing_key="")
        ids.append(legacy_id)
        newer = await writer.emit(v3(4))
        await books.wait_for(3)
        await bus.drain(timeout=30)
        history = await bus.events_after(ids[0], SaleClosed)
        await bus.replay("books", since=ids[0])
        await books.wait_for(6)
        await bus.drain(timeout=30)
        (letter,) = await bus.dead_letters()
    assert books.events == [as_v2(1), as_v2(2), as_v2(3)] * 2
    assert books.ids == ids * 2
    assert history is not None
    assert [e.event for e in history] == [as_v2(2), as_v2(3)]
    assert_names_both_versions(letter)
    assert letter.subscriber == "books"
    assert newer in (letter.payload or b"").decode()
