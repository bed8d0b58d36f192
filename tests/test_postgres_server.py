"""The helper that runs a throw-away PostgreSQL server, used through SQLAlchemy and asyncpg."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookbus.testing import postgres_server as helper
from hookbus.testing.postgres_server import (
    POSTGRES_BIN_ENV,
    PostgresServer,
    PostgresServerError,
    find_postgres,
)


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists at all (not even as a zombie)."""
    return not Path(f"/proc/{pid}").exists()


def _zombies_of(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            found.append(pid)
    return found


async def _create_items(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL)")
        )


# --------------------------------------------------------------------------- no server needed


def test_find_postgres_reports_a_bad_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POSTGRES_BIN_ENV, "/nonexistent/postgresql/bin")
    with pytest.raises(RuntimeError, match=POSTGRES_BIN_ENV):
        find_postgres()


def test_find_postgres_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POSTGRES_BIN_ENV, raising=False)
    monkeypatch.setattr(helper, "_DEBIAN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(RuntimeError, match="apt-get install --no-install-recommends postgresql"):
        find_postgres()


def test_urls_name_the_port_and_database() -> None:
    server = PostgresServer(bin_dir="/nonexistent", port=54321)  # nothing runs until start()
    assert server.url == "postgresql+asyncpg://postgres@127.0.0.1:54321/postgres"
    assert server.dsn == "postgresql://postgres@127.0.0.1:54321/postgres"
    assert server.url_for("a b") == "postgresql+asyncpg://postgres@127.0.0.1:54321/a%20b"


# --------------------------------------------------------------------------- the shared server


@pytest.mark.postgres
async def test_insert_and_select_in_a_transaction(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    engine = create_async_engine(postgres_url)
    try:
        await _create_items(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO items VALUES (:id, :name)"),
                [{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}],
            )
            rows = (await connection.execute(text("SELECT id, name FROM items ORDER BY id"))).all()
            assert [tuple(row) for row in rows] == [(1, "apple"), (2, "pear")]
        async with engine.connect() as connection:
            version = (await connection.execute(text("SHOW server_version"))).scalar_one()
            encoding = (await connection.execute(text("SHOW server_encoding"))).scalar_one()
        assert str(version).split()[0] == postgres_server.version
        assert encoding == "UTF8"
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_two_connections_see_each_others_committed_rows(postgres_url: str) -> None:
    first = create_async_engine(postgres_url)
    second = create_async_engine(postgres_url)
    count = text("SELECT count(*) FROM items")
    try:
        await _create_items(first)
        async with first.connect() as writer, second.connect() as reader:
            await writer.execute(text("INSERT INTO items VALUES (1, 'from first')"))
            # Not committed yet: the other connection does not see it.
            assert (await reader.execute(count)).scalar_one() == 0
            await reader.rollback()
            await writer.commit()
            assert (await reader.execute(count)).scalar_one() == 1
            await reader.execute(text("INSERT INTO items VALUES (2, 'from second')"))
            await reader.commit()
            names = await writer.execute(text("SELECT name FROM items ORDER BY id"))
            assert names.scalars().all() == ["from first", "from second"]
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.postgres
async def test_skip_locked_skips_a_row_locked_by_another_transaction(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    claim = text("SELECT id FROM items ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
    try:
        await _create_items(engine)
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO items VALUES (1, 'a'), (2, 'b')"))
        async with engine.connect() as first, engine.connect() as second:
            assert (await first.execute(claim)).scalar_one() == 1  # row 1 stays locked
            assert (await second.execute(claim)).scalar_one() == 2
            # Both rows are locked now: a third claim finds nothing, without waiting.
            async with engine.connect() as third:
                assert (await third.execute(claim)).scalar_one_or_none() is None
            await first.rollback()  # row 1 is free again
            async with engine.connect() as fourth:
                assert (await fourth.execute(claim)).scalar_one() == 1
            await second.rollback()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_listen_notify_delivers_a_notification(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    dsn = postgres_server.dsn_for(postgres_url.rsplit("/", 1)[1])
    received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_notify(connection: object, pid: int, channel: str, payload: str) -> None:
        received.put_nowait((channel, payload))

    listener = await asyncpg.connect(dsn)
    notifier = await asyncpg.connect(dsn)
    try:
        await listener.add_listener("outbox_events", on_notify)
        await notifier.execute("SELECT pg_notify('outbox_events', 'order 42')")
        async with asyncio.timeout(10):
            assert await received.get() == ("outbox_events", "order 42")
        # Inside a transaction, the notification waits for the commit.
        async with notifier.transaction():
            await notifier.execute("NOTIFY outbox_events, 'after commit'")
            assert received.empty()
        async with asyncio.timeout(10):
            assert await received.get() == ("outbox_events", "after commit")
    finally:
        await listener.close()
        await notifier.close()


@pytest.mark.postgres
def test_create_database_twice_is_an_error(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("twice_db")
    try:
        with pytest.raises(PostgresServerError, match="already exists") as caught:
            postgres_server.create_database("twice_db")
        assert caught.value.code == "42P04"
    finally:
        postgres_server.drop_database("twice_db")


# --------------------------------------------------------------------------- servers of their own


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_server")  # fails or skips, with the reason, if not installed
async def test_kill_then_restart_keeps_committed_rows_and_leaves_no_zombie() -> None:
    with PostgresServer() as server:
        engine = create_async_engine(server.url)
        try:
            await _create_items(engine)
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO items VALUES (1, 'kept')"))
        finally:
            await engine.dispose()
        port, pids = server.port, server.pids
        assert len(pids) > 1  # the postmaster and its helpers (checkpointer, walwriter...)

        server.kill()
        assert not server.running
        assert all(_gone(pid) for pid in pids), _zombies_of(pids)

        server.restart()
        assert server.port == port
        engine = create_async_engine(server.url)
        try:
            async with engine.connect() as connection:
                names = await connection.execute(text("SELECT name FROM items"))
                assert names.scalars().all() == ["kept"]
        finally:
            await engine.dispose()


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_server")
def test_close_leaves_no_process_and_no_directory() -> None:
    server = PostgresServer()
    server.start()
    pids, base_dir = server.pids, server.base_dir
    assert base_dir is not None
    assert server.data_dir is not None
    assert (server.data_dir / "PG_VERSION").is_file()
    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as the postgres user
        assert Path(f"/proc/{server.pid}").stat().st_uid == base_dir.stat().st_uid != 0
    # An open session: a fast shutdown cuts it instead of waiting for it.
    session = helper._Connection(server.port, "postgres", timeout=5.0)
    try:
        server.close()
    finally:
        session.close()

    assert not server.running
    assert all(_gone(pid) for pid in pids), _zombies_of(pids)
    assert not base_dir.exists()
    server.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        server.start()


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_server")
def test_a_server_that_cannot_start_says_why() -> None:
    server = PostgresServer(settings={"shared_buffers": "lots"})
    try:
        with pytest.raises(RuntimeError, match="exited with code") as caught:
            server.start()
        assert "shared_buffers" in str(caught.value)  # from the tail of the log
    finally:
        server.close()
