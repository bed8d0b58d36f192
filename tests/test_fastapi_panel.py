"""The web panel's JSON against a real Redis: the status reflects lag, consumers and dead
letters made for real; the dead letters are listed, filtered and shown; retry and discard
change what Redis keeps.

The panel serves an admin bus (``consume=False``) reporting on two subscribers:
``accounting`` is consumed by a worker bus in the same process, whose handler fails on
the sales listed in ``failing`` (one attempt, then a dead letter); ``invoices`` has no
consumer, so its lag grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hookbus import Event, EventBus
from hookbus.fastapi import panel_router
from redis_bus import redis_bus

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

TYPE = "panel.sale_closed"
ACTION = {"X-Hookbus-Panel": "1"}


class Sale(Event, name=TYPE):
    sale_id: int


async def never(sale: Sale) -> None:
    raise AssertionError("consume=False: no handler runs here")


class Shop:
    """The admin bus behind the panel, the worker consuming ``accounting``, and what the
    worker handled."""

    def __init__(self, url: str, prefix: str) -> None:
        self.failing: set[int] = set()
        self.handled: list[int] = []
        self.admin = redis_bus(url, prefix, consume=False)
        for name in ("accounting", "invoices"):
            self.admin.subscribe(Sale, never, name=name)
        self.worker = redis_bus(url, prefix)

        @self.worker.on(Sale, name="accounting", max_attempts=1)
        async def book(sale: Sale) -> None:
            if sale.sale_id in self.failing:
                raise RuntimeError(f"accounting refused sale {sale.sale_id}")
            self.handled.append(sale.sale_id)

    async def emit(self, *sale_ids: int) -> None:
        for sale_id in sale_ids:
            await self.admin.emit(Sale(sale_id=sale_id))
        await self.worker.drain(timeout=10)


@asynccontextmanager
async def panel(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[Shop, httpx.AsyncClient]]:
    shop = Shop(redis_url, redis_prefix)
    app = FastAPI()
    app.include_router(panel_router(shop.admin, public=True, refresh=0.2), prefix="/hookbus")
    transport = httpx.ASGITransport(app=app)
    async with (
        shop.admin,
        shop.worker,
        httpx.AsyncClient(transport=transport, base_url="http://panel") as client,
    ):
        yield shop, client


def rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["subscriber"]: row for row in status["subscribers"]}


def problems(status: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(problem["kind"], problem["subscriber"]) for problem in status["problems"]]


async def fresh_status(client: httpx.AsyncClient) -> dict[str, Any]:
    """The status once the panel's latest sample is out of date (``refresh / 2``)."""
    await asyncio.sleep(0.15)
    response = await client.get("/hookbus/api/status")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    status: dict[str, Any] = response.json()
    return status


async def test_status_shows_lag_consumers_dead_letters_and_growth(
    redis_url: str, redis_prefix: str
) -> None:
    async with panel(redis_url, redis_prefix) as (shop, client):
        shop.failing.add(2)
        await shop.emit(1, 2, 3)
        status = await fresh_status(client)

        expected = (await shop.admin.status()).to_dict()  # hookbus status --json
        assert status.keys() == expected.keys()
        assert [row.keys() for row in status["subscribers"]] == [
            row.keys() for row in expected["subscribers"]
        ]
        assert status["mode"] == "redis"
        assert status["healthy"] is False
        assert status["event_types"] == [{"name": TYPE, "durable": True, "stored": 3}]
        accounting, invoices = rows(status)["accounting"], rows(status)["invoices"]
        assert (accounting["lag"], accounting["pending"], accounting["consumers"]) == (0, 0, 1)
        assert accounting["dead_letters"] == 1
        assert (invoices["lag"], invoices["consumers"], invoices["dead_letters"]) == (3, 0, 0)
        severities = {(p["kind"], p["subscriber"]): p["severity"] for p in status["problems"]}
        assert severities == {
            ("dead_letters", "accounting"): "warning",
            ("no_consumer", "invoices"): "error",
        }

        # Pages polling within half the refresh interval share one sample.
        again = (await client.get("/hookbus/api/status")).json()
        assert again["taken_at"] == status["taken_at"]

        # The next sample is compared with the previous one: invoices' lag grows.
        await shop.emit(4, 5)
        status = await fresh_status(client)
        assert rows(status)["invoices"]["lag"] == 5
        assert ("lag_growing", "invoices") in problems(status)
        growing = [p for p in status["problems"] if p["kind"] == "lag_growing"]
        assert growing[0]["message"] == "lag grew from 3 to 5"
        status = await fresh_status(client)  # nothing emitted since: no longer growing
        assert ("lag_growing", "invoices") not in problems(status)


async def test_dead_letters_listed_filtered_shown_retried_and_discarded(
    redis_url: str, redis_prefix: str
) -> None:
    async with panel(redis_url, redis_prefix) as (shop, client):
        shop.failing.update({2, 3})
        await shop.emit(1, 2, 3)

        listed = (await client.get("/hookbus/api/dead-letters")).json()
        assert listed["total"] == 2
        first, second = listed["dead_letters"]
        assert (first["subscriber"], first["event_type"], first["attempts"]) == (
            "accounting",
            TYPE,
            1,
        )
        assert first["error_type"] == "RuntimeError"
        assert first["error_message"] == "accounting refused sale 2"
        assert first["source"] == f"{redis_prefix}:stream:{TYPE}"
        assert first["position"]
        assert "envelope" not in first  # the list leaves the event out; the detail has it

        by_filter = {
            "subscriber=accounting": 2,
            "subscriber=invoices": 0,
            f"type={TYPE}": 2,
            "type=other.type": 0,
            "subscriber=accounting&limit=1": 2,
        }
        for query, total in by_filter.items():
            found = (await client.get(f"/hookbus/api/dead-letters?{query}")).json()
            assert found["total"] == total, query
        limited = (await client.get("/hookbus/api/dead-letters?limit=1")).json()
        assert [letter["id"] for letter in limited["dead_letters"]] == [first["id"]]

        detail = (await client.get(f"/hookbus/api/dead-letters/{first['id']}")).json()
        assert detail["envelope"]["data"] == {"sale_id": 2}
        assert detail["envelope"]["type"] == TYPE
        assert detail["event_id"] == detail["envelope"]["id"]
        assert (await client.get("/hookbus/api/dead-letters/0-1")).status_code == 404

        # Retry: the event goes back to accounting, which now books it.
        shop.failing.clear()
        status = await fresh_status(client)
        assert rows(status)["accounting"]["dead_letters"] == 2
        url = f"/hookbus/api/dead-letters/{first['id']}/retry"
        assert (await client.post(url)).status_code == 403  # not from the page: refused
        response = await client.post(url, headers=ACTION)
        assert response.status_code == 200, response.text
        assert response.json() == {"retried": first["id"]}
        await shop.worker.drain(timeout=10)
        assert shop.handled == [1, 2]
        # The action made the next request sample again, at once.
        status = (await client.get("/hookbus/api/status")).json()
        assert rows(status)["accounting"]["dead_letters"] == 1
        assert (await client.get(f"/hookbus/api/dead-letters/{first['id']}")).status_code == 404
        assert (await client.post(url, headers=ACTION)).status_code == 404

        # Discard: the dead letter is deleted, the event never handled.
        url = f"/hookbus/api/dead-letters/{second['id']}"
        assert (await client.delete(url)).status_code == 403
        assert (await client.delete(url, headers=ACTION)).status_code == 204
        assert (await client.delete(url, headers=ACTION)).status_code == 404
        assert await shop.admin.dead_letters() == []
        status = (await client.get("/hookbus/api/status")).json()
        assert rows(status)["accounting"]["dead_letters"] == 0
        assert problems(status) == [("no_consumer", "invoices")]
        await shop.worker.drain(timeout=10)
        assert shop.handled == [1, 2]


async def test_the_page_and_its_files(redis_url: str, redis_prefix: str) -> None:
    async with panel(redis_url, redis_prefix) as (_, client):
        page = await client.get("/hookbus/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<meta name="hookbus-refresh" content="0.2">' in page.text
        assert "http://" not in page.text  # nothing external
        assert "https://" not in page.text
        for name, kind in [
            ("panel.js", "text/javascript"),
            ("panel.css", "text/css"),
            ("icon.svg", "image/svg+xml"),
        ]:
            response = await client.get(f"/hookbus/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(kind)
            assert b"http://" not in response.content or name == "icon.svg"  # the SVG namespace
        assert (await client.get("/hookbus/static/index.html")).status_code == 404
        assert (await client.get("/hookbus/static/../_panel.py")).status_code == 404
        redirect = await client.get("/hookbus")
        assert redirect.status_code == 307
        assert redirect.headers["location"].endswith("/hookbus/")


async def test_a_bus_given_by_a_dependency(redis_url: str, redis_prefix: str) -> None:
    shop = Shop(redis_url, redis_prefix)

    async def admin_bus() -> EventBus:
        return shop.admin

    app = FastAPI()
    app.include_router(panel_router(admin_bus, public=True, prefix="/ops"))
    transport = httpx.ASGITransport(app=app)
    async with shop.admin, httpx.AsyncClient(transport=transport, base_url="http://p") as client:
        await shop.admin.emit(Sale(sale_id=1))
        status = (await client.get("/ops/api/status")).json()
        assert rows(status)["invoices"]["lag"] == 1
