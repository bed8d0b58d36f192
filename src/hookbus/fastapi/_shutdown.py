"""The server is going away: every live-feed connection of an app ends at once.

A feed connection never ends by itself, and servers wait for open
connections to finish before they run the lifespan shutdown, where the bus
stops: without this, a server with a browser connected would wait until it
is killed. :func:`close_feeds` ends them first — an SSE stream ends after
its last complete message (the browser reconnects elsewhere and resumes with
``Last-Event-ID``), a WebSocket closes with 1001 (going away) — and answers
new connections the same way; the bus keeps running until the lifespan
stops it, so handlers in progress finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from .._logging import log_extra

__all__ = ["CLOSE_TIMEOUT", "FeedShutdown", "close_feeds", "feed_shutdown", "get_feed_shutdown"]

logger = logging.getLogger("hookbus")

#: Seconds :func:`close_feeds` waits, by default, for the connections to send their end.
CLOSE_TIMEOUT = 1.0


class FeedShutdown:
    """The feed connections of one app: how many are open, and whether the
    server is going away (then each ends, and new ones end at once)."""

    def __init__(self, mode: str | None = None) -> None:
        #: The bus's mode, for log records.
        self.mode = mode
        #: Set when the server is going away; every feed connection races it.
        self.going_away = asyncio.Event()
        self._open = 0
        self._none_open = asyncio.Event()
        self._none_open.set()

    @contextlib.contextmanager
    def connection(self) -> Iterator[None]:
        """Count one connection open for the block, its last frame included."""
        self._open += 1
        self._none_open.clear()
        try:
            yield
        finally:
            self._open -= 1
            if self._open == 0:
                self._none_open.set()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Tell every connection the server is going away; return once each has
        sent its end, or after ``timeout`` seconds (a stuck client)."""
        if not self.going_away.is_set():
            logger.info(
                "closing %d live feed connection(s): the server is going away",
                self._open,
                extra=log_extra(self.mode),
            )
        self.going_away.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._none_open.wait()


def feed_shutdown(app: Starlette) -> FeedShutdown:
    """The :class:`FeedShutdown` of ``app`` (``app.state.hookbus_feeds``), created
    if it has none yet; :func:`~hookbus.fastapi.bus_lifespan` puts a fresh one
    there at each startup."""
    shutdown = getattr(app.state, "hookbus_feeds", None)
    if not isinstance(shutdown, FeedShutdown):
        shutdown = FeedShutdown()
        app.state.hookbus_feeds = shutdown
    return shutdown


def get_feed_shutdown(connection: HTTPConnection) -> FeedShutdown:
    """FastAPI dependency: the :class:`FeedShutdown` of the app serving ``connection``."""
    return feed_shutdown(connection.app)


async def close_feeds(app: Starlette, timeout: float = CLOSE_TIMEOUT) -> None:
    """End every live-feed connection of ``app`` now: the server is going away.

    SSE streams end after their last complete message, WebSockets close with
    1001 (going away); connections opened afterwards end the same way at once.
    Returns once each has sent its end, or after ``timeout`` seconds. The bus
    keeps running: the lifespan shutdown stops it as usual.

    :func:`~hookbus.fastapi.bus_lifespan` calls it on SIGTERM or SIGINT, before
    the server's own handler runs; with a server whose signals never reach
    Python's handlers, await it from the server's shutdown hook, before the
    server waits for connections to close. From another thread:
    ``asyncio.run_coroutine_threadsafe(close_feeds(app), loop)``.
    """
    await feed_shutdown(app).close(timeout)
