"""Accounting sync (the "Paheko" export): one journal entry per sale, in SQLite.

The handler is a plain function because ``sqlite3`` blocks: hookbus runs it in
a worker thread. Each call opens its own connection. ``UNIQUE(sale_id)`` with
``INSERT OR IGNORE`` makes a redelivered sale harmless.

``flaky_every=n`` simulates an unreliable accounting server: the first attempt
at every n-th sale fails with :class:`PahekoUnavailableError`, and the retry
books it. A payment method accounting has no account for (``voucher``) is
refused on every attempt and ends as a dead letter.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from hookbus import EventBus, current_delivery, current_envelope

from .events import SaleClosed

__all__ = ["SUBSCRIBER", "PahekoUnavailableError", "booked", "install"]

SUBSCRIBER = "accounting"
MAX_ATTEMPTS = 3
SALES_ACCOUNT = "707"  # ventes de marchandises
DEBIT_ACCOUNTS = {"cash": "530", "card": "512", "cheque": "5112"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    sale_id INTEGER NOT NULL UNIQUE,
    session_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    label TEXT NOT NULL,
    amount TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL
)
"""
_INSERT = """
INSERT OR IGNORE INTO entries (sale_id, session_id, event_id, label, amount, debit, credit)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


class PahekoUnavailableError(ConnectionError):
    """The (simulated) accounting server did not answer."""


def _connect(db_path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(db_path, timeout=5.0))


def install(bus: EventBus, db_path: Path, *, flaky_every: int = 0) -> None:
    """Create the journal table and subscribe the sync to ``SaleClosed``."""
    with _connect(db_path) as conn, conn:
        conn.execute(_SCHEMA)

    @bus.on(SaleClosed, name=SUBSCRIBER, max_attempts=MAX_ATTEMPTS)
    def record_sale(event: SaleClosed) -> None:
        if event.total <= 0:
            raise ValueError(f"sale {event.sale_id}: total {event.total} is not a sale amount")
        delivery = current_delivery()
        first_try = delivery is None or delivery.attempt == 1
        if flaky_every and event.sale_id % flaky_every == 0 and first_try:
            raise PahekoUnavailableError(f"sale {event.sale_id}: Paheko did not answer in time")
        debit = DEBIT_ACCOUNTS.get(event.payment_method)
        if debit is None:
            raise ValueError(f"sale {event.sale_id}: unknown payment {event.payment_method!r}")
        envelope = current_envelope()
        event_id = envelope.id if envelope is not None else ""
        label = f"Vente {event.sale_id} (caisse {event.session_id})"
        row = (event.sale_id, event.session_id, event_id, label, str(event.total), debit)
        with _connect(db_path) as conn, conn:
            conn.execute(_INSERT, (*row, SALES_ACCOUNT))


def booked(db_path: Path) -> tuple[int, Decimal]:
    """How many entries the journal holds, and their total."""
    with _connect(db_path) as conn:
        amounts = [Decimal(a) for (a,) in conn.execute("SELECT amount FROM entries")]
    return len(amounts), sum(amounts, Decimal("0.00"))
