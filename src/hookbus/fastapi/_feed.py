"""The live event feed over Server-Sent Events: ``GET /events/stream?types=a,b``.

One bus listener per browser connection, fed by the process's one upstream
subscription (in-process hub, or the redis live feed). Each message is::

    id: <event id>
    event: <event type>
    data: <CloudEvents JSON envelope>

A browser that reconnects sends ``Last-Event-ID``; the durable events it
missed are sent first (from the streams in redis mode, from the last events
kept in local mode), then live ones; ephemeral events are live only. A
comment line is sent every ``heartbeat`` seconds. A connection whose buffer
overflows (a stuck browser) is closed and counted; it never slows the bus.
The response listens for the client's disconnect while it streams: whichever
ends first stops the other, and the listener is freed at once. When the
server is going away (:func:`~hookbus.fastapi.close_feeds`) or the bus stops,
the stream ends after its last complete message; the browser reconnects and
resumes.
"""

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._bus import EventBus
from .._envelope import Envelope
from ._connection import (
    DEFAULT_BUFFER,
    DEFAULT_HEARTBEAT,
    DEFAULT_HISTORY,
    EventFeedRouter,
    FeedConnection,
    FeedStats,
    allow_all,
    feed_options,
    feed_request,
    open_feed,
)
from ._lifespan import get_bus
from ._shutdown import FeedShutdown, get_feed_shutdown

__all__ = ["EventFeedRouter", "EventSourceResponse", "FeedStats", "event_feed"]


def event_feed(
    bus: EventBus,
    *,
    authorize: Callable[..., Any] | None = None,
    public: bool = False,
    path: str = "/events/stream",
    buffer: int = DEFAULT_BUFFER,
    heartbeat: float = DEFAULT_HEARTBEAT,
    history: int = DEFAULT_HISTORY,
) -> EventFeedRouter:
    """A router serving the live feed of ``bus`` at ``path`` as Server-Sent Events.

    ``authorize`` is a FastAPI dependency run for each connection: raise
    ``HTTPException`` to refuse it; return ``None`` to let it see every
    event, or a function ``envelope -> bool`` to filter what it sees. Without
    one, pass ``public=True`` explicitly. ``EventSource`` cannot send headers:
    authenticate with a cookie, or a short-lived token in the query string.
    ``types`` (query, comma-separated) narrows the feed; unknown names get a
    400 listing the valid ones. ``buffer``: events a slow connection may lag
    before it is dropped; ``heartbeat``: seconds between keep-alive comments;
    ``history``: durable events kept for resuming in local mode.
    """
    options = feed_options(
        "event_feed",
        bus,
        authorize=authorize,
        public=public,
        buffer=buffer,
        heartbeat=heartbeat,
        history=history,
    )
    router = EventFeedRouter()
    router.stats = FeedStats()
    access = authorize if authorize is not None else allow_all

    @router.get(path, response_class=Response, summary="Live event feed (Server-Sent Events)")
    async def stream(
        request: Request,
        *,
        event_filter: Annotated[Any, Depends(access)],
        feed_bus: Annotated[EventBus, Depends(get_bus)],
        shutdown: Annotated[FeedShutdown, Depends(get_feed_shutdown)],
        types: Annotated[str | None, Query(description="comma-separated event types")] = None,
        last_event_id: Annotated[str | None, Query(alias="lastEventId")] = None,
    ) -> Response:
        resume = request.headers.get("last-event-id") or last_event_id
        asked = feed_request(types, resume, event_filter)
        feed = open_feed(feed_bus, router.stats, options, asked, shutdown.going_away)
        return EventSourceResponse(feed, shutdown)

    return router


_PING = b": ping\n\n"


def _message(envelope: Envelope) -> bytes:
    return (
        b"id: "
        + envelope.id.encode()
        + b"\nevent: "
        + envelope.type.encode()
        + b"\ndata: "
        + envelope.encode()
        + b"\n\n"
    )


class EventSourceResponse(Response):
    """Streams one connection's feed as SSE while listening for the client's
    disconnect; the first to finish stops the other, so a closed browser frees
    its listener at once. ``shutdown`` counts the response open until its
    last chunk is sent."""

    media_type = "text/event-stream"

    def __init__(
        self, feed: AbstractAsyncContextManager[FeedConnection], shutdown: FeedShutdown
    ) -> None:
        # Not Response.__init__: it would declare a Content-Length.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._feed = feed
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_messages(batch: list[Envelope] | None) -> None:
            body = _PING if batch is None else b"".join(map(_message, batch))
            await send({"type": "http.response.body", "body": body, "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        with self._shutdown.connection():
            async with self._feed as connection:
                # The response starts once the listener is in place: only then does the
                # client get its 200, so nothing it triggers afterwards can be missed.
                start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                await send(start)
                await send(
                    {"type": "http.response.body", "body": b": connected\n\n", "more_body": True}
                )
                await connection.run(send_messages, disconnected)
            # A stuck client may never take this last frame: do not wait for it long.
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
