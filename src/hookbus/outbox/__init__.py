"""The transactional outbox: events that exist only if the caller's transaction commits.

``await bus.emit(event, session=db)`` writes the event to the outbox table in
``db``'s open transaction instead of sending it; the relay, started with the
bus when ``outbox_url`` is set, publishes committed rows through the bus's
backend. Needs ``pip install 'hookbus[outbox]'`` (SQLAlchemy 2 with aiosqlite
or asyncpg); without it, importing this module raises a
:class:`~hookbus.ConfigurationError` that says so.

* :func:`create_tables` creates the outbox's tables;
* :data:`metadata` is their SQLAlchemy ``MetaData`` (for Alembic);
* :func:`record_completion` records, in an idempotent handler's own
  transaction, that its event is done (the inbox): the handler's effect
  then happens once, whatever is redelivered.

In local mode, an outbox makes the bus durable: rows stay in the outbox
until every subscriber finished them (see :mod:`._durable_local`).
"""

from __future__ import annotations

import importlib.util

from .._exceptions import ConfigurationError

if importlib.util.find_spec("sqlalchemy") is None:  # pragma: no cover - depends on the environment
    raise ConfigurationError("the outbox needs SQLAlchemy: pip install 'hookbus[outbox]'")

from ._durable_local import DurableLocalRelay
from ._inbox import InboxCompletions, record_completion
from ._relay import OutboxRelay, OutboxStatistics
from ._tables import create_tables, inbox_table, metadata, outbox_table
from ._writer import write

__all__ = [
    "DurableLocalRelay",
    "InboxCompletions",
    "OutboxRelay",
    "OutboxStatistics",
    "create_tables",
    "inbox_table",
    "metadata",
    "outbox_table",
    "record_completion",
    "write",
]
