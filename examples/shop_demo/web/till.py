"""The cash register (caisse): open the till, close sales, close the till.

It knows nothing of accounting: it records the sale in its own tables and
emits ``SaleClosed``. Whoever needs to react subscribes.

Each change and the event announcing it are written in one transaction:
the event goes to hookbus's outbox table in the shop's database
(``bus.emit(event, session=db)``), and the bus's relay publishes it once the
transaction has committed. A sale is never committed without its
``sale_closed``, and a transaction that rolls back emits nothing.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookbus import EventBus
from hookbus.fastapi import get_bus

from ..events import CashSessionClosed, CashSessionOpened, SaleClosed
from .store import create_tables

__all__ = ["PAYMENT_METHODS", "SaleIn", "SaleOut", "TillState", "record_sale", "routes"]

#: ``voucher`` exists at the till but not in accounting: such a sale ends as a dead letter.
PAYMENT_METHODS = ("cash", "card", "cheque", "voucher")
DEFAULT_CASHIER = "Caisse 1"
BusDep = Annotated[EventBus, Depends(get_bus)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS till_sessions (
    id INTEGER PRIMARY KEY,
    cashier TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sales (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES till_sessions(id),
    label TEXT NOT NULL,
    total TEXT NOT NULL,
    payment_method TEXT NOT NULL
);
"""


class SaleIn(BaseModel):
    """A sale to close at the till."""

    label: str = Field(default="Article", min_length=1, max_length=80)
    total: Decimal = Field(gt=0, le=10_000, max_digits=7, decimal_places=2)
    payment_method: Literal["cash", "card", "cheque", "voucher"] = "cash"


class SaleOut(BaseModel):
    """A closed sale and the id of the event that announced it."""

    sale_id: int
    session_id: int
    total: Decimal
    event_id: str


class TillState(BaseModel):
    """The till's open session, if any, and its figures so far."""

    session_id: int | None
    cashier: str | None
    sales: int
    total: Decimal


class OpenIn(BaseModel):
    """Who opens the till."""

    cashier: str = Field(default=DEFAULT_CASHIER, min_length=1, max_length=40)


async def _session(db: AsyncConnection, bus: EventBus, cashier: str) -> int:
    """In ``db``'s transaction: the open session's id, opening one if needed (and
    emitting ``cash_session_opened`` through the outbox)."""
    row = (await db.execute(text("SELECT id FROM till_sessions WHERE closed = 0"))).first()
    if row is not None:
        return int(row.id)
    result = await db.execute(
        text("INSERT INTO till_sessions (cashier) VALUES (:cashier)"), {"cashier": cashier}
    )
    session_id = int(result.lastrowid)
    await bus.emit(CashSessionOpened(session_id=session_id, cashier=cashier), session=db)
    return session_id


async def record_sale(db: AsyncConnection, bus: EventBus, sale: SaleIn) -> SaleOut:
    """In ``db``'s open transaction: the sale (opening the till if needed) and its
    ``sale_closed`` event, in the outbox. Both exist once the transaction commits;
    neither if it rolls back."""
    session_id = await _session(db, bus, DEFAULT_CASHIER)
    result = await db.execute(
        text(
            "INSERT INTO sales (session_id, label, total, payment_method) "
            "VALUES (:session_id, :label, :total, :payment_method)"
        ),
        {
            "session_id": session_id,
            "label": sale.label,
            "total": str(sale.total),
            "payment_method": sale.payment_method,
        },
    )
    sale_id = int(result.lastrowid)
    event = SaleClosed(
        session_id=session_id,
        sale_id=sale_id,
        total=sale.total,
        payment_method=sale.payment_method,
    )
    event_id = await bus.emit(event, session=db)
    return SaleOut(sale_id=sale_id, session_id=session_id, total=sale.total, event_id=event_id)


async def _state(db: AsyncConnection) -> TillState:
    query = text("SELECT id, cashier FROM till_sessions WHERE closed = 0")
    row = (await db.execute(query)).first()
    if row is None:
        return TillState(session_id=None, cashier=None, sales=0, total=Decimal("0.00"))
    totals = [
        Decimal(t)
        for (t,) in await db.execute(
            text("SELECT total FROM sales WHERE session_id = :id"), {"id": row.id}
        )
    ]
    return TillState(
        session_id=row.id,
        cashier=row.cashier,
        sales=len(totals),
        total=sum(totals, Decimal("0.00")),
    )


def routes(db_path: Path, engine: AsyncEngine) -> APIRouter:
    """The till's JSON routes, under ``/api/till``; ``engine`` is on ``db_path``, the
    database of the bus's outbox."""
    create_tables(db_path, SCHEMA)
    router = APIRouter(prefix="/api/till", tags=["till"])

    @router.get("")
    async def till_state() -> TillState:
        """The open session and its sales so far."""
        async with engine.connect() as db:
            return await _state(db)

    @router.post("/open")
    async def open_till(bus: BusDep, body: OpenIn | None = None) -> TillState:
        """Open the till (does nothing if it is open already)."""
        async with engine.begin() as db:
            await _session(db, bus, (body or OpenIn()).cashier)
            return await _state(db)

    @router.post("/sales", status_code=201)
    async def close_sale(sale: SaleIn, bus: BusDep) -> SaleOut:
        """Close a sale (the till opens itself if needed): emits ``sale_closed``."""
        async with engine.begin() as db:
            return await record_sale(db, bus, sale)

    @router.post("/close")
    async def close_till(bus: BusDep) -> TillState:
        """Close the till: emits ``cash_session_closed`` with the session's figures."""
        async with engine.begin() as db:
            state = await _state(db)
            if state.session_id is None:
                raise HTTPException(status_code=409, detail="the till is not open")
            await db.execute(
                text("UPDATE till_sessions SET closed = 1 WHERE id = :id"),
                {"id": state.session_id},
            )
            closed = CashSessionClosed(
                session_id=state.session_id, sales=state.sales, total=state.total
            )
            await bus.emit(closed, session=db)
        return TillState(session_id=None, cashier=None, sales=0, total=Decimal("0.00"))

    return router
