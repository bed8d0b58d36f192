"""FastAPI integration and the SSE feed, through a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from hookbus import ConfigurationError, Event, EventBus
from hookbus.fastapi import bus_lifespan, event_feed, get_bus
from hookbus.testing import test_settings
from redis_bus import redis_bus
from web_server import SSEReader, serving


class Sold(Event, name="web.sold"):
    sale_id: int


class Moved(Event, name="web.moved", durable=False):
    percent: float


def local_bus() -> EventBus:
    return EventBus(mode="local", settings=test_settings())


def make_app(bus: EventBus, **feed: Any) -> FastAPI:
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(event_feed(bus, **({"public": True} | feed)))

    @app.post("/sales/{sale_id}")
    async def sell(sale_id: int, bus: Annotated[EventBus, Depends(get_bus)]) -> dict[str, str]:
        return {"id": await bus.emit(Sold(sale_id=sale_id))}

    return app


@asynccontextmanager
async def sse(
    base: str, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, SSEReader]]:
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream("GET", f"/events/stream{query}", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SSEReader(response.aiter_lines())
        yield client, reader


async def test_routes_get_the_bus_and_the_feed_streams_its_events() -> None:
    bus = local_bus()
    async with serving(make_app(bus)) as base, sse(base) as (client, feed):
        event_id = (await client.post("/sales/7")).json()["id"]
        message = await feed.next_event()
    assert message["id"] == event_id
    assert message["event"] == "web.sold"
    assert json.loads(message["data"])["data"] == {"sale_id": 7}
    assert not bus.running  # stopped with the app


async def test_lifespan_composes_with_the_apps_own() -> None:
    bus = local_bus()
    seen: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        seen.append(f"start, bus running: {bus.running}")
        yield
        seen.append(f"stop, bus running: {bus.running}")

    async with serving(FastAPI(lifespan=bus_lifespan(bus, own))):
        pass
    assert seen == ["start, bus running: True", "stop, bus running: True"]


async def test_types_filter_and_unknown_types_are_refused() -> None:
    bus = local_bus()
    async with serving(make_app(bus)) as base:
        async with sse(base, "?types=web.moved") as (_, feed):
            await bus.emit(Sold(sale_id=1))
            await bus.emit(Moved(percent=50.0))
            message = await feed.next_event()
        async with httpx.AsyncClient(base_url=base) as client:
            refused = await client.get("/events/stream?types=web.sold,web.nope")
    assert message["event"] == "web.moved"
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "web.nope" in detail["error"]
    assert {"web.sold", "web.moved"} <= set(detail["valid_types"])


async def test_authorization_refuses_and_filters() -> None:
    def user(request: Request) -> Any:
        token = request.query_params.get("token")
        if token is None:
            raise HTTPException(status_code=401, detail="login required")
        if token == "cashier":
            return lambda envelope: envelope.event.sale_id % 2 == 0  # sees even sales
        return None

    bus = local_bus()
    async with serving(make_app(bus, authorize=user, public=False)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/events/stream")).status_code == 401
        async with sse(base, "?token=cashier") as (_, feed):
            for sale_id in (1, 2, 3, 4):
                await bus.emit(Sold(sale_id=sale_id))
            seen = [json.loads((await feed.next_event())["data"])["data"] for _ in range(2)]
    assert seen == [{"sale_id": 2}, {"sale_id": 4}]


def test_a_feed_needs_an_authorization_or_public() -> None:
    with pytest.raises(ConfigurationError, match="public=True"):
        event_feed(local_bus())


async def _resume_without_gap_or_duplicate(bus: EventBus) -> None:
    async with serving(make_app(bus)) as base:
        async with sse(base, "?types=web.sold") as (_, feed):
            first = await bus.emit(Sold(sale_id=1))
            await feed.next_event()
        missed = [await bus.emit(Sold(sale_id=n)) for n in (2, 3)]  # while disconnected
        async with sse(base, "?types=web.sold", {"Last-Event-ID": first}) as (_, feed):
            caught_up = [(await feed.next_event())["id"] for _ in range(2)]
            live = await bus.emit(Sold(sale_id=4))
            after = await feed.next_event()
    assert caught_up == missed
    assert after["id"] == live


async def test_resume_with_last_event_id_local() -> None:
    await _resume_without_gap_or_duplicate(local_bus())


@pytest.mark.redis
async def test_resume_with_last_event_id_redis(redis_url: str, redis_prefix: str) -> None:
    await _resume_without_gap_or_duplicate(redis_bus(redis_url, redis_prefix))


async def test_heartbeat_comments_keep_the_connection_alive() -> None:
    bus = local_bus()
    async with serving(make_app(bus, heartbeat=0.05)) as base, sse(base) as (_, feed):
        await asyncio.sleep(0.3)  # idle on purpose: heartbeats flow meanwhile
        await bus.emit(Sold(sale_id=1))
        await feed.next_event()
    assert feed.comments.count("ping") >= 2


async def test_disconnect_frees_the_listener_at_once() -> None:
    bus = local_bus()
    router = event_feed(bus, public=True)
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(router)
    async with serving(app) as base:
        async with sse(base) as (_, feed):
            await bus.emit(Sold(sale_id=1))
            await feed.next_event()
            assert router.stats.open == 1
        async with asyncio.timeout(5):
            while router.stats.open:  # noqa: ASYNC110 - server-side counter
                await asyncio.sleep(0.01)
        listeners = bus._backend.hub._listeners
    assert listeners == []


async def test_a_stuck_client_is_dropped_without_slowing_the_bus() -> None:
    bus = local_bus()
    router = event_feed(bus, public=True, buffer=5)
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(router)
    pad = "x" * 60_000
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/events/stream") as response,
    ):
        assert response.status_code == 200  # and never read again
        async with asyncio.timeout(30):
            sent = 0
            while not router.stats.dropped_slow:
                await bus.emit(Big(pad=pad))  # never waits for the stuck client
                sent += 1
                await asyncio.sleep(0.001)
    assert router.stats.dropped_slow == 1
    assert sent < 2000  # dropped once the socket and its 5-event buffer were full


class Big(Event, name="web.big", durable=False):
    pad: str


def test_works_with_fastapis_test_client() -> None:
    from fastapi.testclient import TestClient

    bus = local_bus()
    handled: list[int] = []

    @bus.on(Sold, name="books")
    async def books(event: Sold) -> None:
        handled.append(event.sale_id)

    with TestClient(make_app(bus)) as client:
        assert bus.running
        response = client.post("/sales/9")
        assert response.status_code == 200
        client.portal.call(bus.drain, 5)  # type: ignore[union-attr]
        refused = client.get("/events/stream?types=nope")
    assert handled == [9]
    assert refused.status_code == 400
    assert not bus.running
