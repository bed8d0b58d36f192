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
ends first stops the other, and the listener is freed at once.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from .._bus import EventBus
from .._envelope import Envelope
from .._event import event_types
from .._exceptions import ConfigurationError, ListenerOverflowError
from ._lifespan import get_bus

try:
    from fastapi import APIRouter, Depends, HTTPException, Query, Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "hookbus.fastapi needs FastAPI: pip install 'hookbus[fastapi]'"
    ) from exc

__all__ = ["EventFeedRouter", "FeedStats", "event_feed"]

#: What ``authorize`` may return: None (see everything) or a filter of envelopes.
EventFilter = Callable[[Envelope], bool]

DEFAULT_BUFFER = 256
DEFAULT_HEARTBEAT = 15.0
DEFAULT_HISTORY = 1000


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed in this process."""

    connected: int = 0
    open: int = 0
    dropped_slow: int = 0
    resumed: int = 0


@dataclass(frozen=True, slots=True)
class _Settings:
    buffer: int
    heartbeat: float


@dataclass(frozen=True, slots=True)
class _Request:
    """What one connection asked for and may see."""

    types: list[str]
    resume: str | None
    allowed: EventFilter | None


class EventFeedRouter(APIRouter):
    """The router of :func:`event_feed`; ``stats`` counts its connections."""

    stats: FeedStats


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
    if authorize is None and not public:
        raise ConfigurationError(
            "event_feed needs authorize=<a FastAPI dependency> or an explicit public=True"
        )
    if buffer < 1 or heartbeat <= 0:
        raise ConfigurationError("buffer must be >= 1 and heartbeat > 0")
    bus.keep_history(history)
    router = EventFeedRouter()
    router.stats = FeedStats()
    settings = _Settings(buffer, heartbeat)

    async def allow_all() -> None:
        return None

    access = authorize if authorize is not None else allow_all

    @router.get(path, response_class=Response, summary="Live event feed (Server-Sent Events)")
    async def stream(
        request: Request,
        event_filter: Annotated[Any, Depends(access)],
        feed_bus: Annotated[EventBus, Depends(get_bus)],
        types: Annotated[str | None, Query(description="comma-separated event types")] = None,
        last_event_id: Annotated[str | None, Query(alias="lastEventId")] = None,
    ) -> Response:
        wanted = _parse_types(types)
        resume = request.headers.get("last-event-id") or last_event_id
        if event_filter is not None and not callable(event_filter):
            raise TypeError("authorize must return None or a function envelope -> bool")
        asked = _Request(wanted, resume, event_filter)
        dropped = asyncio.Event()
        return EventSourceResponse(
            _messages(feed_bus, router.stats, settings, asked, dropped), dropped
        )

    return router


def _parse_types(raw: str | None) -> list[str]:
    if not raw:
        return []
    wanted = [name.strip() for name in raw.split(",") if name.strip()]
    known = event_types()
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise HTTPException(
            status_code=400,
            detail={
                "error": f"unknown event type(s): {', '.join(unknown)}",
                "valid_types": sorted(known),
            },
        )
    return wanted


async def _messages(
    bus: EventBus, stats: FeedStats, settings: _Settings, asked: _Request, dropped: asyncio.Event
) -> AsyncIterator[bytes]:
    """The SSE byte stream of one connection; ``dropped`` is set if it falls behind."""

    def overflowed() -> None:
        stats.dropped_slow += 1
        dropped.set()

    allowed = asked.allowed
    stats.connected += 1
    stats.open += 1
    try:
        async with bus.listen(*asked.types, buffer=settings.buffer) as listener:
            listener.on_overflow = overflowed
            yield b": connected\n\n"
            sent: set[str] = set()
            if asked.resume:
                missed = await bus.events_after(asked.resume, *asked.types)
                if missed is not None:
                    stats.resumed += 1
                for envelope in missed or ():
                    if allowed is None or allowed(envelope):
                        sent.add(envelope.id)
                        yield _message(envelope)
            iterator = aiter(listener)
            while True:
                try:
                    # Not wait_for: on Python 3.11 it can swallow a cancellation
                    # that races with a result, and the stream would outlive its client.
                    async with asyncio.timeout(settings.heartbeat):
                        envelope = await anext(iterator)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                except StopAsyncIteration:
                    return
                if envelope.id in sent:
                    sent.discard(envelope.id)  # already sent while catching up
                    continue
                if allowed is None or allowed(envelope):
                    yield _message(envelope)
    except ListenerOverflowError:
        pass  # counted by overflowed()
    finally:
        stats.open -= 1


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
    """Streams SSE bytes while listening for the client's disconnect; the first to
    finish cancels the other, so a closed browser frees its listener at once."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], dropped: asyncio.Event) -> None:
        # Not Response.__init__: it would declare a Content-Length.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._content = content
        self._dropped = dropped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The first chunk comes once the listener is in place: only then does the
        # client get its 200, so nothing it triggers afterwards can be missed.
        first = await anext(self._content)
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})

        async def stream() -> None:
            async for chunk in self._content:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [
            asyncio.ensure_future(stream()),
            asyncio.ensure_future(disconnected()),
            asyncio.ensure_future(self._dropped.wait()),  # a stuck client: drop it
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        # A stuck client may never take this last frame: do not wait for it long.
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
