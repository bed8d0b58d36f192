"""One event type through three releases, for the tests of versions and upcasters.

``SaleClosedV1`` is the first release's declaration, ``SaleClosedV3`` a later
release's that this process does not run yet; ``SaleClosed`` (version 2,
declared last, so the registry's) is the current one. Version 1 had no
currency; the upcaster from 1 to 2 adds the shop's.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hookbus import Event, upcaster

NAME = "evolve.sale_closed"


class SaleClosedV1(Event, name=NAME):
    sale_id: int
    total: Decimal


class SaleClosedV3(Event, name=NAME, version=3):
    sale_id: int
    amount: Decimal
    currency: str


class SaleClosed(Event, name=NAME, version=2):
    sale_id: int
    total: Decimal
    currency: str


@upcaster(NAME, from_version=1)
def sale_closed_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


def legacy_envelope(sale_id: int, event_id: str) -> bytes:
    """A version-1 envelope as hookbus wrote them before events had versions:
    no ``eventversion`` attribute."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "till",
            "type": NAME,
            "time": "2026-01-02T10:00:00.000Z",
            "datacontenttype": "application/json",
            "data": {"sale_id": sale_id, "total": "9.90"},
        }
    ).encode()
