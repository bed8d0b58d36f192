"""The live feed over WebSocket: through Starlette's TestClient, and a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocketException
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hookbus import ConfigurationError, Envelope, Event, EventBus
from hookbus.fastapi import (
    EventFeedRouter,
    bus_lifespan,
    event_feed,
    event_feed_websocket,
    get_bus,
)
from hookbus.testing import test_settings
from redis_bus import redis_bus
from web_server import SSEReader, poll_until, serving


class Sold(Event, name="ws.sold"):
    sale_id: int


class Moved(Event, name="ws.moved", durable=False):
    percent: float


class Big(Event, name="ws.big", durable=False):
    pad: str


def local_bus() -> EventBus:
    return EventBus(mode="local", settings=test_settings())


def make_app(bus: EventBus, **feed: Any) -> tuple[FastAPI, EventFeedRouter]:
    router = event_feed_websocket(bus, **({"public": True} | feed))
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(router)

    @app.post("/sales/{sale_id}")
    async def sell(sale_id: int, bus: Annotated[EventBus, Depends(get_bus)]) -> dict[str, str]:
        return {"id": await bus.emit(Sold(sale_id=sale_id))}

    @app.post("/moves/{percent}")
    async def move(percent: float, bus: Annotated[EventBus, Depends(get_bus)]) -> dict[str, str]:
        return {"id": await bus.emit(Moved(percent=percent))}

    return app, router


def user(connection: HTTPConnection) -> Callable[[Envelope], bool] | None:
    """Who is connecting, from a token in the query string."""
    token = connection.query_params.get("token")
    if token is None:
        raise HTTPException(status_code=401, detail="login required")
    if token == "cashier":
        # sees even sales
        return lambda envelope: isinstance(envelope.event, Sold) and envelope.event.sale_id % 2 == 0
    return None


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - server-side state
            await asyncio.sleep(0.01)


# Through Starlette's TestClient.


def test_events_arrive_as_their_envelopes_filtered_by_type() -> None:
    app, _ = make_app(local_bus())
    with TestClient(app) as client, client.websocket_connect("/events/ws?types=ws.sold") as ws:
        client.post("/moves/50")  # not asked for
        event_id = client.post("/sales/7").json()["id"]
        message = ws.receive_json()
    assert message["specversion"] == "1.0"
    assert message["id"] == event_id
    assert message["type"] == "ws.sold"
    assert message["data"] == {"sale_id": 7}


def test_unknown_types_are_refused_with_the_valid_ones_then_1008() -> None:
    app, router = make_app(local_bus())
    with TestClient(app) as client, client.websocket_connect("/events/ws?types=ws.nope") as ws:
        error = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert error["status"] == 400
    assert "ws.nope" in error["detail"]["error"]
    assert {"ws.sold", "ws.moved"} <= set(error["detail"]["valid_types"])
    assert closed.value.code == 1008
    assert "ws.nope" in closed.value.reason
    assert router.stats.connected == 0


def test_authorization_refuses_with_1008_and_filters_per_user() -> None:
    app, _ = make_app(local_bus(), authorize=user, public=False)
    with TestClient(app) as client:
        with client.websocket_connect("/events/ws") as ws:
            error = ws.receive_json()
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        with client.websocket_connect("/events/ws?token=cashier") as ws:
            for sale_id in (1, 2, 3, 4):
                client.post(f"/sales/{sale_id}")
            seen = [ws.receive_json()["data"] for _ in range(2)]
    assert error == {"detail": "login required", "status": 401}
    assert (closed.value.code, closed.value.reason) == (1008, "login required")
    assert seen == [{"sale_id": 2}, {"sale_id": 4}]


def test_a_websocket_exception_from_authorize_closes_with_its_code() -> None:
    def banned(connection: HTTPConnection) -> None:
        raise WebSocketException(code=4003, reason="banned")

    app, _ = make_app(local_bus(), authorize=banned, public=False)
    with (
        TestClient(app) as client,
        client.websocket_connect("/events/ws") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (4003, "banned")


def session(request: Request) -> str:
    return request.cookies.get("session", "")


def by_session(session: Annotated[str, Depends(session)]) -> None:
    return None


def test_an_authorize_taking_a_request_is_refused_at_once() -> None:
    with pytest.raises(ConfigurationError, match="HTTPConnection"):
        event_feed_websocket(local_bus(), authorize=by_session)
    event_feed(local_bus(), authorize=by_session)  # fine over SSE


def test_a_feed_needs_an_authorization_or_public() -> None:
    with pytest.raises(ConfigurationError, match=r"event_feed_websocket needs .* public=True"):
        event_feed_websocket(local_bus())


def test_heartbeats_are_sent_while_idle() -> None:
    app, _ = make_app(local_bus(), heartbeat=0.05)
    with TestClient(app) as client, client.websocket_connect("/events/ws") as ws:
        beats = [ws.receive_json() for _ in range(2)]
        event_id = client.post("/sales/1").json()["id"]
        while (message := ws.receive_json()) == {"heartbeat": True}:
            pass
    assert beats == [{"heartbeat": True}] * 2
    assert message["id"] == event_id


def test_resume_with_last_event_id_in_the_query() -> None:
    app, router = make_app(local_bus())
    with TestClient(app) as client:
        with client.websocket_connect("/events/ws?types=ws.sold") as ws:
            first = client.post("/sales/1").json()["id"]
            assert ws.receive_json()["id"] == first
        missed = [client.post(f"/sales/{n}").json()["id"] for n in (2, 3)]
        with client.websocket_connect(f"/events/ws?types=ws.sold&lastEventId={first}") as ws:
            caught_up = [ws.receive_json()["id"] for _ in range(2)]
            live = client.post("/sales/4").json()["id"]
            after = ws.receive_json()["id"]
    assert caught_up == missed
    assert after == live
    assert router.stats.resumed == 1


def test_closing_frees_the_listener_at_once() -> None:
    bus = local_bus()
    app, router = make_app(bus)
    with TestClient(app) as client:
        with client.websocket_connect("/events/ws") as ws:
            client.post("/sales/1")
            ws.receive_json()
            assert router.stats.open == 1
        poll_until(lambda: router.stats.open == 0)
        listeners = bus._backend.hub._listeners
    assert listeners == []
    assert router.stats.connected == 1


def assert_stopping_closes_with_1001(bus: EventBus) -> None:
    app, _ = make_app(bus)
    with TestClient(app) as client, client.websocket_connect("/events/ws") as ws:
        client.portal.call(bus.stop)  # type: ignore[union-attr]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1001


def test_the_bus_stopping_closes_with_1001_local() -> None:
    assert_stopping_closes_with_1001(local_bus())


@pytest.mark.redis
def test_the_bus_stopping_closes_with_1001_redis(redis_url: str, redis_prefix: str) -> None:
    assert_stopping_closes_with_1001(redis_bus(redis_url, redis_prefix))


# Through a real uvicorn server, with the websockets client.


@asynccontextmanager
async def ws_connect(base: str, query: str = "", **options: Any) -> AsyncIterator[ClientConnection]:
    url = base.replace("http://", "ws://", 1) + f"/events/ws{query}"
    async with connect(url, proxy=None, open_timeout=10, **options) as ws:
        yield ws


async def receive(ws: ClientConnection, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        return json.loads(await ws.recv())


async def next_event(ws: ClientConnection) -> Any:
    while (message := await receive(ws)) == {"heartbeat": True}:
        pass
    return message


async def read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        await read_until_closed(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_served_by_uvicorn_filtered_by_type() -> None:
    bus = local_bus()
    app, _ = make_app(bus)
    async with (
        serving(app) as base,
        ws_connect(base, "?types=ws.sold") as ws,
        httpx.AsyncClient(base_url=base) as client,
    ):
        await client.post("/moves/10")
        event_id = (await client.post("/sales/7")).json()["id"]
        message = await next_event(ws)
    assert (message["id"], message["type"], message["data"]) == (
        event_id,
        "ws.sold",
        {"sale_id": 7},
    )


async def test_served_by_uvicorn_refusals_close_with_1008() -> None:
    app, _ = make_app(local_bus(), authorize=user, public=False)
    async with serving(app) as base:
        async with ws_connect(base) as ws:
            unauthorized = await receive(ws)
            unauthorized_close = await closed_with(ws)
        async with ws_connect(base, "?token=admin&types=ws.sold,ws.nope") as ws:
            unknown = await receive(ws)
            unknown_close = await closed_with(ws)
    assert unauthorized == {"detail": "login required", "status": 401}
    assert unauthorized_close == (1008, "login required")
    assert unknown["status"] == 400
    assert "ws.sold" in unknown["detail"]["valid_types"]
    assert unknown_close == (1008, "unknown event type(s): ws.nope")


async def test_served_by_uvicorn_per_user_filter() -> None:
    bus = local_bus()
    app, _ = make_app(bus, authorize=user, public=False)
    async with serving(app) as base, ws_connect(base, "?token=cashier") as ws:
        for sale_id in (1, 2, 3, 4):
            await bus.emit(Sold(sale_id=sale_id))
        seen = [(await next_event(ws))["data"] for _ in range(2)]
    assert seen == [{"sale_id": 2}, {"sale_id": 4}]


async def _resume_without_gap_or_duplicate(bus: EventBus) -> None:
    app, router = make_app(bus)
    async with serving(app) as base:
        async with ws_connect(base, "?types=ws.sold") as ws:
            first = await bus.emit(Sold(sale_id=1))
            await next_event(ws)
        missed = [await bus.emit(Sold(sale_id=n)) for n in (2, 3)]  # while disconnected
        async with ws_connect(base, f"?types=ws.sold&lastEventId={first}") as ws:
            caught_up = [(await next_event(ws))["id"] for _ in range(2)]
            live = await bus.emit(Sold(sale_id=4))
            after = await next_event(ws)
    assert caught_up == missed
    assert after["id"] == live
    assert router.stats.resumed == 1


async def test_resume_with_last_event_id_local() -> None:
    await _resume_without_gap_or_duplicate(local_bus())


@pytest.mark.redis
async def test_resume_with_last_event_id_redis(redis_url: str, redis_prefix: str) -> None:
    await _resume_without_gap_or_duplicate(redis_bus(redis_url, redis_prefix))


async def test_served_by_uvicorn_heartbeats() -> None:
    bus = local_bus()
    app, _ = make_app(bus, heartbeat=0.05)
    async with serving(app) as base, ws_connect(base) as ws:
        beats = [await receive(ws) for _ in range(2)]
        event_id = await bus.emit(Sold(sale_id=1))
        message = await next_event(ws)
    assert beats == [{"heartbeat": True}] * 2
    assert message["id"] == event_id


async def test_served_by_uvicorn_a_closed_client_frees_its_listener() -> None:
    bus = local_bus()
    app, router = make_app(bus)
    async with serving(app) as base:
        async with ws_connect(base) as ws:
            await bus.emit(Sold(sale_id=1))
            await next_event(ws)
            assert router.stats.open == 1
        await until(lambda: router.stats.open == 0)
        listeners = bus._backend.hub._listeners
    assert listeners == []


async def test_a_stuck_client_is_dropped_without_slowing_the_bus() -> None:
    bus = local_bus()
    app, router = make_app(bus, buffer=5)
    pad = "x" * 60_000
    async with serving(app) as base, ws_connect(base, max_queue=1, compression=None) as ws:
        async with asyncio.timeout(30):
            sent = 0
            while not router.stats.dropped_slow:
                await bus.emit(Big(pad=pad))  # never waits for the stuck client
                sent += 1
                await asyncio.sleep(0.001)
        # Reading again, the client gets what was in flight, then the close: it may
        # reconnect and resume.
        code, reason = await closed_with(ws)
        await until(lambda: router.stats.open == 0)
    assert (code, reason) == (1013, "fell more than 5 events behind")
    assert router.stats.dropped_slow == 1
    assert sent < 2000  # dropped once the socket and its 5-event buffer were full
    assert bus._backend.hub._listeners == []


async def test_sse_and_websocket_feeds_share_one_authorize_and_see_the_same_events() -> None:
    bus = local_bus()
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(event_feed(bus, authorize=user))
    app.include_router(event_feed_websocket(bus, authorize=user))
    async with (
        serving(app) as base,
        ws_connect(base, "?token=cashier") as ws,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream("GET", "/events/stream?token=cashier") as response,
    ):
        assert response.status_code == 200
        sse = SSEReader(response.aiter_lines())
        for sale_id in (1, 2):
            await bus.emit(Sold(sale_id=sale_id))
        over_sse = json.loads((await sse.next_event())["data"])
        over_ws = await next_event(ws)
    assert over_ws == over_sse
    assert over_ws["data"] == {"sale_id": 2}
