"""Accounting sync (the "Paheko" export): one journal entry per sale, in SQLite.

An effectively-once subscriber backed by hookbus's inbox
(``idempotent=True``): the handler opens its own transaction on the shop's
database, records that it completed the event
(:func:`hookbus.outbox.record_completion`) and books the entry, in that one
transaction. Both commit or neither does. A ``SaleClosed`` delivered again
(a redelivery after a crash between the commit and the acknowledgement, a
replay, a retried dead letter that was booked meanwhile) finds its
completion record and books nothing. ``UNIQUE(sale_id)`` stays as a safety
net: a second entry for one sale would fail, not be booked.

``flaky_every=n`` simulates an unreliable accounting server: the first attempt
at every n-th sale writes the entry, then fails with
:class:`PahekoUnavailableError`; its transaction rolls back (entry and
completion record alike) and the retry books the sale. A payment method
accounting has no account for (``voucher``) is refused on every attempt and
ends as a dead letter, with nothing of it in the journal or the inbox.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import hookbus.outbox
from hookbus import EventBus, current_delivery

from .events import SaleClosed

__all__ = ["SUBSCRIBER", "PahekoUnavailableError", "booked", "create_tables", "install"]

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
_INSERT = text(
    "INSERT INTO entries (sale_id, session_id, event_id, label, amount, debit, credit) "
    "VALUES (:sale_id, :session_id, :event_id, :label, :amount, :debit, :credit)"
)


class PahekoUnavailableError(ConnectionError):
    """The (simulated) accounting server did not answer."""


async def create_tables(engine: AsyncEngine) -> None:
    """Create the journal, if it does not exist (hookbus's inbox is created by
    :func:`hookbus.outbox.create_tables`)."""
    async with engine.begin() as db:
        await db.exec_driver_sql(_SCHEMA)


def install(bus: EventBus, engine: AsyncEngine, *, flaky_every: int = 0) -> None:
    """Subscribe the sync to ``SaleClosed``; it books through ``engine``, on a database
    that has the journal (:func:`create_tables`) and hookbus's inbox
    (:func:`hookbus.outbox.create_tables`)."""

    @bus.on(SaleClosed, name=SUBSCRIBER, idempotent=True, max_attempts=MAX_ATTEMPTS)
    async def record_sale(event: SaleClosed) -> None:
        if event.total <= 0:
            raise ValueError(f"sale {event.sale_id}: total {event.total} is not a sale amount")
        debit = DEBIT_ACCOUNTS.get(event.payment_method)
        if debit is None:
            raise ValueError(f"sale {event.sale_id}: unknown payment {event.payment_method!r}")
        delivery = current_delivery()
        if delivery is None:
            raise RuntimeError("record_sale is a hookbus handler: call it through the bus")
        async with engine.begin() as db:
            if not await hookbus.outbox.record_completion(db):
                return  # a committed delivery of this event booked it already
            entry = {
                "sale_id": event.sale_id,
                "session_id": event.session_id,
                "event_id": delivery.envelope.id,
                "label": f"Vente {event.sale_id} (caisse {event.session_id})",
                "amount": str(event.total),
                "debit": debit,
                "credit": SALES_ACCOUNT,
            }
            await db.execute(_INSERT, entry)
            if flaky_every and event.sale_id % flaky_every == 0 and delivery.attempt == 1:
                # Raised in the transaction: the entry and the completion roll back.
                raise PahekoUnavailableError(f"sale {event.sale_id}: Paheko did not answer in time")


async def booked(engine: AsyncEngine) -> tuple[int, Decimal]:
    """How many entries the journal holds, and their total."""
    async with engine.connect() as db:
        amounts = [Decimal(a) for (a,) in await db.execute(text("SELECT amount FROM entries"))]
    return len(amounts), sum(amounts, Decimal("0.00"))
