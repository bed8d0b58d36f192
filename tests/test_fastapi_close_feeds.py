"""The server going away: ``close_feeds`` ends every feed of an app while the bus
runs on, and ``bus_lifespan`` does it on the first shutdown signal, before the
server's own handler. (Real uvicorn processes: tests/test_server_shutdown.py.)"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from hookbus import Event, EventBus
from hookbus.fastapi import bus_lifespan, close_feeds, event_feed, event_feed_websocket
from hookbus.fastapi._signals import before_shutdown_signals
from hookbus.testing import test_settings
from web_server import serving


class Noted(Event, name="close_feeds.noted"):
    note: str


def make_app(bus: EventBus) -> FastAPI:
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(event_feed(bus, public=True))
    app.include_router(event_feed_websocket(bus, public=True))
    return app


async def test_close_feeds_ends_every_feed_and_new_ones_while_the_bus_runs() -> None:
    bus = EventBus(mode="local", settings=test_settings())
    app = make_app(bus)
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream("GET", "/events/stream") as stream,
        connect(base.replace("http", "ws", 1) + "/events/ws") as ws,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": connected"
        async with asyncio.timeout(1.0):  # returns once both sent their end
            await close_feeds(app, timeout=5)
        assert [line async for line in lines] == [""]  # ends after a complete message
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        assert ws.close_code == 1001
        async with connect(base.replace("http", "ws", 1) + "/events/ws") as late:
            with pytest.raises(ConnectionClosedOK):
                await late.recv()  # a connection opened afterwards ends at once
            assert late.close_code == 1001
        assert bus.running
        await bus.emit(Noted(note="still running"))


def test_a_new_startup_serves_feeds_again() -> None:
    bus = EventBus(mode="local", settings=test_settings())
    app = make_app(bus)
    with TestClient(app) as client:
        client.portal.call(close_feeds, app)  # type: ignore[union-attr]
    with TestClient(app) as client, client.websocket_connect("/events/ws") as ws:
        client.portal.call(bus.emit, Noted(note="again"))  # type: ignore[union-attr]
        assert ws.receive_json()["data"] == {"note": "again"}


async def test_the_first_signal_runs_the_action_before_the_servers_handler() -> None:
    calls: list[str] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        calls.append(f"server {signal.Signals(signum).name}")

    async def close() -> None:
        calls.append("closing")
        await asyncio.sleep(0.05)
        calls.append("closed")

    original = signal.signal(signal.SIGUSR1, server_handler)
    try:
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
        with before_shutdown_signals(close, [signal.SIGUSR1, signal.SIGUSR2]):
            assert signal.getsignal(signal.SIGUSR1) != server_handler
            assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # no Python handler: left
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGUSR1)  # while closing: passed on after
            assert calls == []
            async with asyncio.timeout(5):
                while len(calls) < 4:  # noqa: ASYNC110 - set by the handlers
                    await asyncio.sleep(0.01)
            assert calls == ["closing", "closed", "server SIGUSR1", "server SIGUSR1"]
            signal.raise_signal(signal.SIGUSR1)  # later ones: straight to the server
            assert calls[4:] == ["server SIGUSR1"]
        assert signal.getsignal(signal.SIGUSR1) is server_handler  # put back
    finally:
        signal.signal(signal.SIGUSR1, original)


def test_signals_are_left_alone_off_the_main_thread() -> None:
    bus = EventBus(mode="local", settings=test_settings())
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with TestClient(make_app(bus)):  # the lifespan runs in another thread
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


async def test_signals_are_left_alone_when_asked() -> None:
    bus = EventBus(mode="local", settings=test_settings())
    app = FastAPI(lifespan=bus_lifespan(bus, signals=()))
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    async with app.router.lifespan_context(app):
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
