"""The shop app behind a web server: ``uvicorn tests.apps.web:app`` (redis mode from the
environment, see tests.apps.shop). ``POST /sales/{id}`` emits a SaleClosed and answers
with the event id and the serving process's pid; ``GET /pid`` answers the pid alone;
``GET /events/stream`` is the feed, ``/events/ws`` the same over WebSocket."""

from __future__ import annotations

import os
from decimal import Decimal

from fastapi import FastAPI

from hookbus.fastapi import bus_lifespan, event_feed, event_feed_websocket

from .shop import SaleClosed, bus

app = FastAPI(lifespan=bus_lifespan(bus))
app.include_router(event_feed(bus, public=True, heartbeat=1.0))
app.include_router(event_feed_websocket(bus, public=True, heartbeat=1.0))


@app.post("/sales/{sale_id}")
async def close_sale(sale_id: int) -> dict[str, str | int]:
    event_id = await bus.emit(SaleClosed(sale_id=sale_id, total=Decimal("9.90")))
    return {"id": event_id, "pid": os.getpid()}


@app.get("/pid")
async def pid() -> int:
    return os.getpid()
