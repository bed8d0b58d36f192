"""The cash register (caisse): open the till, close sales, close the till.

It knows nothing of accounting: it records the sale in its own tables and
emits ``SaleClosed``. Whoever needs to react subscribes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from hookbus import EventBus
from hookbus.fastapi import get_bus

from ..events import CashSessionClosed, CashSessionOpened, SaleClosed
from .store import connect, create_tables

__all__ = ["PAYMENT_METHODS", "SaleIn", "SaleOut", "TillState", "routes"]

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


def _session(conn: sqlite3.Connection, cashier: str) -> tuple[int, bool]:
    """In a transaction: the open session's id, opening one if needed (True if opened)."""
    row = conn.execute("SELECT id FROM till_sessions WHERE closed = 0").fetchone()
    if row is not None:
        return int(row["id"]), False
    cursor = conn.execute("INSERT INTO till_sessions (cashier) VALUES (?)", (cashier,))
    return int(cursor.lastrowid or 0), True


def _open(db_path: Path, cashier: str) -> tuple[int, bool]:
    with connect(db_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        opened = _session(conn, cashier)
        conn.execute("COMMIT")
        return opened


def _record_sale(db_path: Path, sale: SaleIn) -> tuple[int, bool, int]:
    """(session id, session just opened, sale id), in one transaction."""
    with connect(db_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        session_id, opened = _session(conn, DEFAULT_CASHIER)
        cursor = conn.execute(
            "INSERT INTO sales (session_id, label, total, payment_method) VALUES (?, ?, ?, ?)",
            (session_id, sale.label, str(sale.total), sale.payment_method),
        )
        conn.execute("COMMIT")
        return session_id, opened, int(cursor.lastrowid or 0)


def _state(db_path: Path) -> TillState:
    with connect(db_path) as conn:
        row = conn.execute("SELECT id, cashier FROM till_sessions WHERE closed = 0").fetchone()
        if row is None:
            return TillState(session_id=None, cashier=None, sales=0, total=Decimal("0.00"))
        totals = [
            Decimal(t)
            for (t,) in conn.execute("SELECT total FROM sales WHERE session_id = ?", (row["id"],))
        ]
    return TillState(
        session_id=row["id"],
        cashier=row["cashier"],
        sales=len(totals),
        total=sum(totals, Decimal("0.00")),
    )


def _close_session(db_path: Path, session_id: int) -> bool:
    with connect(db_path) as conn:
        cursor = conn.execute(
            "UPDATE till_sessions SET closed = 1 WHERE id = ? AND closed = 0", (session_id,)
        )
        return cursor.rowcount == 1


def routes(db_path: Path) -> APIRouter:
    """The till's JSON routes, under ``/api/till``."""
    create_tables(db_path, SCHEMA)
    router = APIRouter(prefix="/api/till", tags=["till"])

    async def opened(bus: EventBus, session_id: int, cashier: str) -> None:
        await bus.emit(CashSessionOpened(session_id=session_id, cashier=cashier))

    @router.get("")
    async def till_state() -> TillState:
        """The open session and its sales so far."""
        return await asyncio.to_thread(_state, db_path)

    @router.post("/open")
    async def open_till(bus: BusDep, body: OpenIn | None = None) -> TillState:
        """Open the till (does nothing if it is open already)."""
        cashier = (body or OpenIn()).cashier
        session_id, just_opened = await asyncio.to_thread(_open, db_path, cashier)
        if just_opened:
            await opened(bus, session_id, cashier)
        return await asyncio.to_thread(_state, db_path)

    @router.post("/sales", status_code=201)
    async def close_sale(sale: SaleIn, bus: BusDep) -> SaleOut:
        """Close a sale (the till opens itself if needed): emits ``sale_closed``."""
        session_id, just_opened, sale_id = await asyncio.to_thread(_record_sale, db_path, sale)
        if just_opened:
            await opened(bus, session_id, DEFAULT_CASHIER)
        event = SaleClosed(
            session_id=session_id,
            sale_id=sale_id,
            total=sale.total,
            payment_method=sale.payment_method,
        )
        event_id = await bus.emit(event)
        return SaleOut(sale_id=sale_id, session_id=session_id, total=sale.total, event_id=event_id)

    @router.post("/close")
    async def close_till(bus: BusDep) -> TillState:
        """Close the till: emits ``cash_session_closed`` with the session's figures."""
        state = await asyncio.to_thread(_state, db_path)
        if state.session_id is None or not await asyncio.to_thread(
            _close_session, db_path, state.session_id
        ):
            raise HTTPException(status_code=409, detail="the till is not open")
        await bus.emit(
            CashSessionClosed(session_id=state.session_id, sales=state.sales, total=state.total)
        )
        return TillState(session_id=None, cashier=None, sales=0, total=Decimal("0.00"))

    return router
