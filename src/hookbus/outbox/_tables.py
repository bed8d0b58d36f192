"""The outbox's tables, as SQLAlchemy Core metadata (usable with Alembic)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["create_tables", "inbox_table", "metadata", "outbox_table"]

#: The outbox's tables, for ``metadata.create_all`` or Alembic's ``target_metadata``.
metadata = MetaData()

#: One row per event emitted with ``bus.emit(event, session=...)``, waiting for the relay.
outbox_table = Table(
    "hookbus_outbox",
    metadata,
    # BIGINT on every database, INTEGER on SQLite (only that one auto-increments there).
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(255), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    #: Set once published (rows are deleted then, unless kept for a while).
    Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    #: Why a row could not be published (a poison row: skipped, kept for inspection).
    Column("error", Text, nullable=True),
    #: Durable local mode: the row is being handled by a relay's process until then
    #: (renewed while it is; a crashed process's rows are taken again after it).
    Column("claimed_until", DateTime(timezone=True), nullable=True),
)

#: One row per (subscriber, event) an inbox-backed handler completed, written in the
#: handler's own transaction.
inbox_table = Table(
    "hookbus_inbox",
    metadata,
    Column("subscriber", String(200), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("done_at", DateTime(timezone=True), nullable=False),
)


async def create_tables(engine_or_url: AsyncEngine | str) -> None:
    """Create the outbox's tables (and nothing else) if they do not exist."""
    engine = create_async_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
    finally:
        if isinstance(engine_or_url, str):
            await engine.dispose()
