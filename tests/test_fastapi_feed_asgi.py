"""The SSE feed through the ASGI app itself (Starlette's ``TestClient`` streaming), no
server: filtering, resume, heartbeat, refusal, disconnect cleanup."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from hookbus import Envelope, Event, EventBus
from hookbus.fastapi import EventFeedRouter, bus_lifespan, event_feed
from hookbus.testing import test_settings
from web_server import SSEParser, poll_until


class Priced(Event, name="asgi.priced"):
    sku: str


class Nudged(Event, name="asgi.nudged", durable=False):
    n: int


def make_app(**feed: Any) -> tuple[FastAPI, EventBus, EventFeedRouter]:
    bus = EventBus(mode="local", settings=test_settings())
    app = FastAPI(lifespan=bus_lifespan(bus))
    router = event_feed(bus, **({"public": True} | feed))
    app.include_router(router)
    return app, bus, router


class Reader(SSEParser):
    """Server-Sent Events from a streaming TestClient response."""

    def __init__(self, lines: Iterator[str]) -> None:
        super().__init__()
        self._lines = lines

    def next_event(self) -> dict[str, str]:
        for line in self._lines:
            fields = self.line(line)
            if fields is not None:
                return fields
        raise EOFError("stream ended")


def emit(client: TestClient, bus: EventBus, event: Event) -> str:
    result: str = client.portal.call(bus.emit, event)  # type: ignore[union-attr]
    return result


def test_types_filter_the_feed_and_each_message_carries_the_event_id() -> None:
    app, bus, _ = make_app()
    with (
        TestClient(app) as client,
        client.stream("GET", "/events/stream?types=asgi.priced") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = Reader(response.iter_lines())
        emit(client, bus, Nudged(n=1))  # not asked for
        event_id = emit(client, bus, Priced(sku="lamp"))
        message = reader.next_event()
    assert message["id"] == event_id
    assert message["event"] == "asgi.priced"
    assert json.loads(message["data"])["data"] == {"sku": "lamp"}


def test_unknown_types_get_a_400_listing_the_valid_ones() -> None:
    app, _, _ = make_app()
    with TestClient(app) as client:
        refused = client.get("/events/stream?types=asgi.priced,nope")
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "nope" in detail["error"]
    assert "asgi.priced" in detail["valid_types"]


def test_resume_sends_the_missed_durable_events_then_live_ones() -> None:
    app, bus, router = make_app()
    with TestClient(app) as client:
        first = emit(client, bus, Priced(sku="a"))
        missed = [emit(client, bus, Priced(sku=s)) for s in ("b", "c")]
        emit(client, bus, Nudged(n=1))  # ephemeral: live only, not resent
        headers = {"Last-Event-ID": first}
        with client.stream("GET", "/events/stream", headers=headers) as response:
            reader = Reader(response.iter_lines())
            resent = [reader.next_event()["id"] for _ in missed]
            live = emit(client, bus, Priced(sku="d"))
            after = reader.next_event()["id"]
    assert resent == missed
    assert after == live
    assert router.stats.resumed == 1


def test_heartbeat_comments_while_idle() -> None:
    app, _, _ = make_app(heartbeat=0.05)
    with TestClient(app) as client, client.stream("GET", "/events/stream") as response:
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(6)]
    assert seen.count(": ping") >= 2


def test_authorization_refuses_or_filters() -> None:
    def cashier(request: Request) -> Callable[[Envelope], bool] | None:
        if request.cookies.get("session") != "cashier":
            raise HTTPException(status_code=401, detail="login required")
        return lambda envelope: envelope.type == "asgi.priced"

    app, bus, _ = make_app(authorize=cashier, public=False)
    with TestClient(app) as client:
        assert client.get("/events/stream").status_code == 401
        client.cookies.set("session", "cashier")
        with client.stream("GET", "/events/stream") as response:
            reader = Reader(response.iter_lines())
            emit(client, bus, Nudged(n=1))  # filtered out for this user
            shown = emit(client, bus, Priced(sku="till"))
            assert reader.next_event()["id"] == shown


def test_closing_the_stream_frees_the_listener() -> None:
    app, bus, router = make_app()
    with TestClient(app) as client:
        with client.stream("GET", "/events/stream") as response:
            assert response.status_code == 200
            assert router.stats.open == 1
        poll_until(lambda: router.stats.open == 0)
        emit(client, bus, Priced(sku="after"))  # nobody listening: nothing piles up
    assert router.stats.connected == 1


@pytest.mark.parametrize("query", ["?types=", "?types=,"])
def test_an_empty_types_filter_means_everything(query: str) -> None:
    app, bus, _ = make_app()
    with TestClient(app) as client, client.stream("GET", f"/events/stream{query}") as response:
        reader = Reader(response.iter_lines())
        event_id = emit(client, bus, Nudged(n=2))
        assert reader.next_event()["id"] == event_id
