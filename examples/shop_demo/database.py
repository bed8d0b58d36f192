"""The shop's SQLite file through SQLAlchemy's async engine (aiosqlite).

The till writes a sale and its ``SaleClosed`` event (hookbus's outbox table)
in one transaction; the accounting books the entry and its completion
record (hookbus's inbox table) in one transaction. Both go through an
engine from :func:`open_engine`, whose every transaction starts with
``BEGIN IMMEDIATE``: it takes the file's write lock at once (waiting up to
10 s for another process's write), so a transaction that reads and then
writes never fails half-way because another process wrote in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["BUSY_TIMEOUT", "open_engine", "outbox_url"]

#: Seconds a transaction waits for another connection's write to finish.
BUSY_TIMEOUT = 10.0


def outbox_url(db_path: Path) -> str:
    """The SQLAlchemy async URL of ``db_path`` (the bus's ``outbox_url``)."""
    url = URL.create("sqlite+aiosqlite", database=str(db_path.resolve()))
    return url.render_as_string()


def open_engine(db_path: Path) -> AsyncEngine:
    """An async engine on ``db_path`` whose transactions begin with ``BEGIN IMMEDIATE``.

    Dispose of it (``await engine.dispose()``) when done.
    """
    engine = create_async_engine(outbox_url(db_path), connect_args={"timeout": BUSY_TIMEOUT})

    @event.listens_for(engine.sync_engine, "connect")
    def no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        # The driver would begin a transaction itself, and only at the first write.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
