"""Receipt printer: prints a ticket per sale and the day's Z report.

The printer jams on the first try of every 5th sale; hookbus retries the
delivery and the second try succeeds. Attempts are counted by event id,
which ``current_envelope()`` gives to the handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hookbus import EventBus, current_envelope

from .events import CashSessionClosed, SaleClosed

__all__ = ["SUBSCRIBER", "PrinterJamError", "install"]

SUBSCRIBER = "receipts"
JAM_EVERY = 5


class PrinterJamError(RuntimeError):
    """The (simulated) thermal printer jammed."""


def install(bus: EventBus, out: Callable[[str], None] = print) -> None:
    """Subscribe the printer to ``SaleClosed`` and ``CashSessionClosed``."""
    attempts: dict[str, int] = {}

    @bus.on(SaleClosed, name=SUBSCRIBER)
    async def print_receipt(event: SaleClosed) -> None:
        envelope = current_envelope()
        key = envelope.id if envelope is not None else f"sale-{event.sale_id}"
        attempts[key] = attempt = attempts.get(key, 0) + 1
        if event.sale_id % JAM_EVERY == 0 and attempt == 1:
            raise PrinterJamError(f"paper jam on receipt of sale {event.sale_id}")
        await asyncio.sleep(0.001)  # the ticket comes out
        del attempts[key]

    @bus.on(CashSessionClosed, name=SUBSCRIBER)
    async def print_z_report(event: CashSessionClosed) -> None:
        day = f"{event.sales} sales, {event.total} EUR"
        out(f"  receipts: Z report of till session {event.session_id}: {day}")
