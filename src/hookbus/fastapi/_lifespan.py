"""The bus's life follows the application's: started at startup, stopped at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection

from .._bus import EventBus
from ._shutdown import FeedShutdown
from ._signals import SHUTDOWN_SIGNALS, before_shutdown_signals

__all__ = ["bus_lifespan", "get_bus"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def bus_lifespan(
    bus: EventBus, inner: Lifespan | None = None, *, signals: Iterable[int] = SHUTDOWN_SIGNALS
) -> Lifespan:
    """A FastAPI ``lifespan`` that starts ``bus`` before the app serves and stops it after.

    ``inner`` is the application's own lifespan, if any: it runs inside, with
    the bus already started (so it may emit) and stopped only after it ends.
    The bus is put on ``app.state.hookbus`` for :func:`get_bus`.

    While the app serves, the first of ``signals`` (default SIGTERM and
    SIGINT) that the server handles in Python closes the app's live feeds
    (:func:`~hookbus.fastapi.close_feeds`) before the server's own handler
    gets it: the server then finds no feed holding its shutdown, and stops
    the bus gracefully in the lifespan shutdown. ``signals=()`` leaves the
    signal handlers alone.
    """
    wanted = tuple(signals)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        app.state.hookbus = bus
        feeds = app.state.hookbus_feeds = FeedShutdown(bus.mode)
        with before_shutdown_signals(feeds.close, wanted):
            async with bus:
                try:
                    if inner is None:
                        yield None
                    else:
                        async with inner(app) as state:
                            yield state
                finally:
                    feeds.going_away.set()  # feeds end before the bus stops, new ones at once

    return lifespan


def get_bus(request: HTTPConnection) -> EventBus:
    """FastAPI dependency: the application's bus (``Depends(get_bus)``), in HTTP
    routes and WebSocket ones alike."""
    bus = getattr(request.app.state, "hookbus", None)
    if not isinstance(bus, EventBus):
        raise RuntimeError(
            "no hookbus bus on this app: create it with FastAPI(lifespan=bus_lifespan(bus))"
        )
    return bus
