"""The cash register: keys in a day of sales and emits them.

It knows nothing of accounting or printers; it only emits events.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from hookbus import EventBus

from .events import CashSessionClosed, ProgressUpdated, SaleClosed

__all__ = ["PAYMENT_METHODS", "run_day"]

PAYMENT_METHODS = ("cash", "card", "cheque")
_WEIGHTS = (6, 3, 1)
_STEP = Decimal("0.50")


async def run_day(
    bus: EventBus,
    *,
    session_id: int = 1,
    sales: int = 40,
    seed: int = 2024,
    refund_keyed_as_sale: int | None = 27,
    pace: float = 0.005,
) -> CashSessionClosed:
    """Open a till session, emit one ``SaleClosed`` per sale, then close the session.

    Totals are pseudo-random but deterministic (``seed``). Sale number
    ``refund_keyed_as_sale`` is a cashier's mistake: a refund keyed in as a
    sale, with a negative total. The event is valid; accounting will refuse it.
    ``pace`` seconds pass between two customers, so handlers work meanwhile.
    """
    rng = random.Random(seed)
    job_id = f"till-{session_id}"
    day_total = Decimal("0.00")
    for sale_id in range(1, sales + 1):
        total = rng.randint(1, 120) * _STEP
        method = rng.choices(PAYMENT_METHODS, weights=_WEIGHTS)[0]
        if sale_id == refund_keyed_as_sale:
            total = -total
        day_total += total
        await bus.emit(
            SaleClosed(session_id=session_id, sale_id=sale_id, total=total, payment_method=method)
        )
        await bus.emit(ProgressUpdated(job_id=job_id, percent=100.0 * sale_id / sales))
        await asyncio.sleep(pace)
    closed = CashSessionClosed(session_id=session_id, sales=sales, total=day_total)
    await bus.emit(closed)
    return closed
