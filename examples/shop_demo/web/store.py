"""The shop's SQLite file, shared by every web process: one connection per call.

Routes run these blocking calls in a thread (``asyncio.to_thread``), so the
event loop keeps serving feeds while a query waits for the file lock.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

__all__ = ["DB_NAME", "connect", "create_tables"]

DB_NAME = "shop.sqlite3"


def connect(db_path: Path) -> closing[sqlite3.Connection]:
    """A connection that waits up to 10 s for another process's write to finish."""
    conn = sqlite3.connect(db_path, timeout=10.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return closing(conn)


def create_tables(db_path: Path, schema: str) -> None:
    """Run ``schema`` (``CREATE TABLE IF NOT EXISTS`` statements)."""
    with connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(schema)
