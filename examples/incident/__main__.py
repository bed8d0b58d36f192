"""``python -m examples.incident emit N``: close N sales (emit N ``SaleClosed``)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from decimal import Decimal

from hookbus import EventBus

from . import SaleClosed, bus


async def emit(count: int) -> None:
    settings = bus.settings
    till = EventBus(settings=settings.with_options(redis=replace(settings.redis, consume=False)))
    till.register(SaleClosed)
    async with till:
        for sale_id in range(1, count + 1):
            await till.emit(SaleClosed(sale_id=sale_id, total=Decimal("12.50")))
    print(f"{count} sales closed")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "emit":
        sys.exit("usage: python -m examples.incident emit N")
    asyncio.run(emit(int(sys.argv[2])))
