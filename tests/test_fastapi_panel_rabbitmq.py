"""The web panel in rabbitmq mode: ready messages are the lag, pending is unknown (``null``,
"?" on the page), dead letters come from the dead-letter log and can be discarded."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from hookbus import Event
from hookbus.fastapi import panel_router
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

TYPE = "panel_rabbitmq.sale_closed"


class Sale(Event, name=TYPE):
    sale_id: int


async def never(sale: Sale) -> None:
    raise AssertionError("consume=False: no handler runs here")


async def test_status_and_dead_letters_in_rabbitmq_mode(rabbitmq_server: RabbitMQServer) -> None:
    prefix = new_prefix()
    admin = rabbitmq_bus(rabbitmq_server.url, prefix, consume=False)
    for name in ("accounting", "invoices"):
        admin.subscribe(Sale, never, name=name)
    worker = rabbitmq_bus(rabbitmq_server.url, prefix)

    @worker.on(Sale, name="accounting", max_attempts=1)
    async def book(sale: Sale) -> None:
        if sale.sale_id == 2:
            raise RuntimeError("refused")

    app = FastAPI()
    app.include_router(panel_router(admin, public=True, refresh=0.2), prefix="/hookbus")
    transport = httpx.ASGITransport(app=app)
    async with admin, worker, httpx.AsyncClient(transport=transport, base_url="http://p") as client:
        for sale_id in (1, 2):
            await admin.emit(Sale(sale_id=sale_id))
        await worker.drain(timeout=30)

        status = (await client.get("/hookbus/api/status")).json()
        assert status["mode"] == "rabbitmq"
        rows = {row["subscriber"]: row for row in status["subscribers"]}
        assert rows["invoices"]["lag"] == 2
        assert rows["invoices"]["pending"] is None
        assert rows["accounting"]["consumers"] == 1
        assert rows["accounting"]["dead_letters"] == 1

        listed = (await client.get("/hookbus/api/dead-letters?subscriber=accounting")).json()
        [letter] = listed["dead_letters"]
        assert letter["error_message"] == "refused"
        detail = (await client.get(f"/hookbus/api/dead-letters/{letter['id']}")).json()
        assert detail["envelope"]["data"] == {"sale_id": 2}
        url = f"/hookbus/api/dead-letters/{letter['id']}"
        response = await client.delete(url, headers={"X-Hookbus-Panel": "1"})
        assert response.status_code == 204
        assert (await client.get("/hookbus/api/dead-letters")).json()["total"] == 0
