"""The live event feed over WebSocket: ``ws://…/events/ws?types=a,b``.

The same feed as the Server-Sent Events one (same listener, filtering and
resume rules), as JSON text frames:

- an event: its CloudEvents envelope (``{"specversion": "1.0", "id": …,
  "type": …, "data": {…}, …}``), the same JSON as an SSE message's ``data``;
- ``{"heartbeat": true}`` every ``heartbeat`` seconds without an event;
- ``{"detail": …, "status": …}`` just before a refusal closes the connection.

Close codes: 1008 (policy violation) when ``authorize`` or the ``types``
check refuses the connection; 1013 (try again later) when it fell ``buffer``
events behind; 1001 (going away) when the server is going away
(:func:`~hookbus.fastapi.close_feeds`) or the bus stops. Resuming is with the
``lastEventId`` query parameter.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, WebSocket, WebSocketException
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from starlette.websockets import WebSocketDisconnect, WebSocketState

from .._bus import EventBus
from .._envelope import Envelope
from .._exceptions import ConfigurationError
from ._connection import (
    DEFAULT_BUFFER,
    DEFAULT_HEARTBEAT,
    DEFAULT_HISTORY,
    EventFeedRouter,
    FeedStats,
    allow_all,
    feed_options,
    feed_request,
    open_feed,
)
from ._lifespan import get_bus
from ._shutdown import FeedShutdown, get_feed_shutdown

__all__ = ["event_feed_websocket"]

#: Close codes (RFC 6455, section 7.4.1).
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001

_HEARTBEAT = '{"heartbeat":true}'
_CLOSE_TIMEOUT = 1.0  # a stuck client may never take the close frame


def event_feed_websocket(
    bus: EventBus,
    *,
    authorize: Callable[..., Any] | None = None,
    public: bool = False,
    path: str = "/events/ws",
    buffer: int = DEFAULT_BUFFER,
    heartbeat: float = DEFAULT_HEARTBEAT,
    history: int = DEFAULT_HISTORY,
) -> EventFeedRouter:
    """A router serving the live feed of ``bus`` at ``path`` over WebSocket.

    The same feed as :func:`event_feed`, with the same arguments and rules.
    Each event is one JSON text frame, its CloudEvents envelope;
    ``{"heartbeat": true}`` is sent every ``heartbeat`` seconds without one.
    ``authorize`` is a FastAPI dependency run for each connection: raise
    ``HTTPException`` to refuse it (the client gets ``{"detail": …,
    "status": …}`` then a close with code 1008), or ``WebSocketException``
    to close with a code of your own; return ``None`` to let it see every
    event, or a function ``envelope -> bool`` to filter what it sees. It
    must take the connection as ``HTTPConnection`` (works for both feeds)
    or ``WebSocket``, not ``Request``. ``types`` (query, comma-separated)
    narrows the feed; unknown names are refused (1008) with the valid ones
    listed in ``detail``. ``lastEventId`` (query) resumes after that event.
    A connection more than ``buffer`` events behind is closed with 1013;
    every connection is closed with 1001 when the server is going away.
    """
    options = feed_options(
        "event_feed_websocket",
        bus,
        authorize=authorize,
        public=public,
        buffer=buffer,
        heartbeat=heartbeat,
        history=history,
    )
    if authorize is not None:
        _check_websocket_dependency(authorize)
    router = EventFeedRouter()
    router.stats = FeedStats()
    access = authorize if authorize is not None else allow_all

    @router.websocket(path)
    async def stream(
        websocket: WebSocket,
        *,
        _refusal: Annotated[None, Depends(_close_on_refusal)],
        event_filter: Annotated[Any, Depends(access)],
        feed_bus: Annotated[EventBus, Depends(get_bus)],
        shutdown: Annotated[FeedShutdown, Depends(get_feed_shutdown)],
        types: Annotated[str | None, Query(description="comma-separated event types")] = None,
        last_event_id: Annotated[str | None, Query(alias="lastEventId")] = None,
    ) -> None:
        asked = feed_request(types, last_event_id, event_filter)

        async def send_frames(batch: list[Envelope] | None) -> None:
            texts = [_HEARTBEAT] if batch is None else [e.encode().decode() for e in batch]
            try:
                for text in texts:
                    await websocket.send_text(text)
            except WebSocketDisconnect as exc:
                raise ConnectionResetError("the client went away") from exc

        async def disconnected() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # what the client sends is ignored

        with shutdown.connection():
            feed = open_feed(feed_bus, router.stats, options, asked, shutdown.going_away)
            async with feed as connection:
                # Accepted once the listener is in place: nothing emitted after the
                # client is connected can be missed.
                await websocket.accept()
                ending = await connection.run(send_frames, disconnected)
            if ending == "dropped":
                await _close(websocket, TRY_AGAIN_LATER, f"fell more than {buffer} events behind")
            elif ending == "ended":
                await _close(websocket, GOING_AWAY, "the server is shutting down")

    return router


async def _close_on_refusal(websocket: WebSocket) -> AsyncIterator[None]:
    """Turn a refusal while the connection is set up (an ``HTTPException`` from
    ``authorize``, its dependencies or the ``types`` check) into an error frame
    and a 1008 close the client can see; a ``WebSocketException`` closes with
    its own code. Both are sent after accepting: a browser sees neither the
    status of a refused handshake nor a close sent before it."""
    try:
        yield
    except HTTPException as exc:
        if websocket.application_state != WebSocketState.CONNECTING:
            raise
        await websocket.accept()
        await websocket.send_text(json.dumps({"detail": exc.detail, "status": exc.status_code}))
        await _close(websocket, POLICY_VIOLATION, _reason_of(exc.detail))
    except WebSocketException as exc:
        if websocket.application_state != WebSocketState.CONNECTING:
            raise
        await websocket.accept()
        await _close(websocket, exc.code, exc.reason or "")


def _reason_of(detail: Any) -> str:
    """A close reason from an ``HTTPException`` detail; at most 123 bytes, as RFC 6455 allows."""
    text = detail["error"] if isinstance(detail, dict) and "error" in detail else detail
    reason = str(text).encode()
    return reason[:123].decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(OSError, TimeoutError, WebSocketDisconnect):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await websocket.close(code, reason)


def _check_websocket_dependency(authorize: Callable[..., Any]) -> None:
    """Refuse, now, an ``authorize`` that takes a ``Request``: on a WebSocket it
    would fail on every connection with a bare ``TypeError``."""

    def takes_request(dependant: Dependant) -> bool:
        return dependant.request_param_name is not None or any(
            takes_request(sub) for sub in dependant.dependencies
        )

    if takes_request(get_dependant(path="", call=authorize)):
        raise ConfigurationError(
            "event_feed_websocket: authorize (or one of its dependencies) takes a "
            "Request, which a WebSocket connection does not have; annotate it "
            "HTTPConnection (works for both feeds) or WebSocket"
        )
