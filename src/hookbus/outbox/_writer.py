"""Writing an event to the outbox, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from .._envelope import Envelope
from .._exceptions import ConfigurationError
from ._tables import outbox_table

__all__ = ["NOTIFY_CHANNEL", "dialect_name", "write"]

#: PostgreSQL channel the relay listens to: a row committed wakes it at once.
NOTIFY_CHANNEL = "hookbus_outbox"


async def write(session: Any, envelope: Envelope) -> None:
    """Insert ``envelope`` into the outbox through ``session`` (an ``AsyncSession`` or
    ``AsyncConnection`` in an open transaction): it exists once that transaction
    commits, and never if it rolls back."""
    execute = getattr(session, "execute", None)
    if execute is None:
        raise ConfigurationError(
            f"session= must be an SQLAlchemy AsyncSession or AsyncConnection, got "
            f"{type(session).__name__}"
        )
    row = {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "payload": envelope.encode(),
        "created_at": datetime.now(UTC),
    }
    await execute(insert(outbox_table).values(**row))
    if await dialect_name(session) == "postgresql":
        # Delivered when the transaction commits, not before (and not on rollback).
        await execute(select(_pg_notify()))


async def dialect_name(session: Any) -> str:
    """The database kind (``"postgresql"``, ``"sqlite"``...) behind a session or connection."""
    dialect = getattr(session, "dialect", None)  # AsyncConnection
    if dialect is None:
        connection = await session.connection()  # AsyncSession
        dialect = connection.dialect
    return str(dialect.name)


def _pg_notify() -> Any:
    from sqlalchemy import func, literal

    return func.pg_notify(literal(NOTIFY_CHANNEL), literal(""))
