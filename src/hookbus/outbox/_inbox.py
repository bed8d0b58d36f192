"""The inbox: completions recorded in a database, in the handler's own transaction.

:func:`record_completion` is what an inbox-backed handler calls: it inserts
"subscriber S completed event X" into ``hookbus_inbox`` through the handler's
session, so the handler's effect and that record commit (or roll back)
together. The first delivery to commit wins; any later one — a redelivery
after a crash between the commit and the acknowledgement, a replay, a
retry after a partial failure — finds the record and does nothing.

:class:`InboxCompletions` keeps the completions of idempotent subscribers in
the same table for durable local mode (local mode with an outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .._context import Delivery, current_delivery
from .._envelope import Envelope
from .._exceptions import ConfigurationError
from .._subscription import Subscription
from ._tables import inbox_table
from ._writer import dialect_name

__all__ = ["InboxCompletions", "record_completion"]


async def record_completion(session: Any, delivery: Delivery | None = None) -> bool:
    """Record, in ``session``'s open transaction, that the current delivery is done.

    Call it from an idempotent handler, in the transaction that holds the
    handler's effect, before (or after) writing that effect. Returns
    ``True`` when this is the first record of (subscriber, event id): go on
    and commit; ``False`` when a committed transaction recorded it already:
    the handler must not do its work again (return, or roll back). On
    PostgreSQL a concurrent delivery of the same event waits for the first
    transaction and then sees its record (or, if it rolled back, takes over).

    ``session`` is an SQLAlchemy ``AsyncSession`` or ``AsyncConnection`` on a
    database that has the outbox's tables (:func:`create_tables`);
    ``delivery`` defaults to :func:`hookbus.current_delivery` (outside a
    handler, pass one).
    """
    delivery = delivery if delivery is not None else current_delivery()
    if delivery is None:
        raise ConfigurationError(
            "record_completion() is called from a handler (or with delivery=): "
            "there is no delivery in progress here"
        )
    execute = getattr(session, "execute", None)
    if execute is None:
        raise ConfigurationError(
            "record_completion() needs an SQLAlchemy AsyncSession or AsyncConnection, got "
            f"{type(session).__name__}"
        )
    statement = _insert_once(
        await dialect_name(session),
        {
            "subscriber": delivery.subscriber,
            "event_id": delivery.envelope.id,
            "done_at": datetime.now(UTC),
        },
    )
    result = await execute(statement)
    return bool(result.rowcount == 1)


def _insert_once(dialect: str, row: dict[str, Any]) -> Any:
    """``INSERT`` that does nothing when the (subscriber, event id) row exists."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(inbox_table).values(**row).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(inbox_table).values(**row).on_conflict_do_nothing()
    # Elsewhere: insert where absent (a concurrent insert fails on the primary key).
    absent = ~exists().where(
        inbox_table.c.subscriber == row["subscriber"],
        inbox_table.c.event_id == row["event_id"],
    )
    names = ["subscriber", "event_id", "done_at"]
    values = select(*(literal(row[name]) for name in names)).where(absent)
    return insert(inbox_table).from_select(names, values)


class InboxCompletions:
    """Idempotent subscribers' completions in the outbox database's inbox table."""

    def __init__(self, engine: AsyncEngine, retention: float) -> None:
        self._engine = engine
        self._retention = retention

    async def done(self, sub: Subscription, envelope: Envelope) -> bool:
        horizon = datetime.now(UTC) - timedelta(seconds=self._retention)
        query = select(inbox_table.c.done_at).where(
            inbox_table.c.subscriber == sub.id, inbox_table.c.event_id == envelope.id
        )
        async with self._engine.connect() as connection:
            done_at = (await connection.execute(query)).scalar_one_or_none()
        if done_at is None:
            return False
        if done_at.tzinfo is None:  # SQLite keeps no time zone
            done_at = done_at.replace(tzinfo=UTC)
        return bool(done_at >= horizon)

    async def record(self, sub: Subscription, envelope: Envelope) -> None:
        row = {"subscriber": sub.id, "event_id": envelope.id, "done_at": datetime.now(UTC)}
        async with self._engine.begin() as connection:
            await connection.execute(_insert_once(self._engine.dialect.name, row))

    async def forget_old(self) -> int:
        """Delete records past the retention; how many."""
        horizon = datetime.now(UTC) - timedelta(seconds=self._retention)
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(inbox_table).where(inbox_table.c.done_at < horizon)
            )
        return int(result.rowcount or 0)
