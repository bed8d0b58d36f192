"""A small application for ``hookbus events tests.apps.catalogue:bus``: an event at its
second version with the upcaster from the first, an ephemeral one, two subscribers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hookbus import Event, EventBus, upcaster


class Sale(Event, name="cli.sale", version=2):
    """A sale was paid at the till."""

    sale_id: int
    total: Decimal
    currency: str
    note: str = ""


@upcaster(Sale, from_version=1)
def sale_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


class Seen(Event, name="cli.seen", durable=False):
    who: str


bus = EventBus(mode="local")


@bus.on(Sale, name="books")
async def book(event: Sale) -> None:
    """Books the sale."""


@bus.on(Sale, name="receipts")
def print_receipt(event: Sale) -> None:
    """Prints the receipt."""


bus.register(Seen)
