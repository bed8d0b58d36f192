"""The incident of docs/incident.md: the accounting sync fails, is seen, fixed, repaired.

``python -m examples.incident emit N`` closes N sales; ``hookbus worker
examples.incident:bus`` runs the handlers. ``PAHEKO_DOWN=1`` in the worker's
environment makes the accounting sync fail (the accounting server is down).
The bus is configured from the environment (``EVENT_BUS_MODE=redis``,
``HOOKBUS_REDIS_URL``...).
"""

from __future__ import annotations

import os
from decimal import Decimal

from hookbus import Event, EventBus, RetryPolicy

__all__ = ["PahekoUnavailableError", "SaleClosed", "bus"]


class SaleClosed(Event, name="sale_closed"):
    """A sale was closed at the till."""

    sale_id: int
    total: Decimal


class PahekoUnavailableError(ConnectionError):
    """The accounting server did not answer."""


bus = EventBus(retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1.0))
booked: list[int] = []


@bus.on(SaleClosed, name="accounting", idempotent=True)
async def sync_to_paheko(event: SaleClosed) -> None:
    if os.environ.get("PAHEKO_DOWN") == "1":
        raise PahekoUnavailableError("paheko.example.org:443: connection refused")
    booked.append(event.sale_id)


@bus.on(SaleClosed, name="receipts")
async def print_receipt(event: SaleClosed) -> None:
    pass
