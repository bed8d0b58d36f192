"""One connection to the live feed, whatever carries it (Server-Sent Events or WebSocket).

What a client asked for (types, where to resume) and may see (the filter
``authorize`` returned), and the envelopes it gets: the durable events it
missed first, then live ones without duplicate, ``None`` whenever a heartbeat
is due. A transport only formats and sends them: :meth:`FeedConnection.run`
races its sending against the client's disconnect, the listener overflowing
and the server going away, and whichever ends first stops the others.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, HTTPException

from .._bus import EventBus
from .._envelope import Envelope
from .._event import event_types
from .._exceptions import ConfigurationError, ListenerOverflowError
from .._live import Listener

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_HEARTBEAT",
    "DEFAULT_HISTORY",
    "EventFeedRouter",
    "EventFilter",
    "FeedConnection",
    "FeedOptions",
    "FeedRequest",
    "FeedStats",
    "allow_all",
    "feed_options",
    "feed_request",
    "open_feed",
]

#: What ``authorize`` may return: None (see everything) or a filter of envelopes.
EventFilter = Callable[[Envelope], bool]

#: Why :meth:`FeedConnection.run` returned.
Ending = Literal["disconnected", "dropped", "ended"]

DEFAULT_BUFFER = 256
DEFAULT_HEARTBEAT = 15.0
DEFAULT_HISTORY = 1000
#: Envelopes written to a connection at once, at most.
BATCH = 64


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed in this process."""

    connected: int = 0
    open: int = 0
    dropped_slow: int = 0
    resumed: int = 0


class EventFeedRouter(APIRouter):
    """The router of :func:`event_feed` or :func:`event_feed_websocket`; ``stats``
    counts its connections."""

    stats: FeedStats


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How every connection of one feed is served."""

    buffer: int
    heartbeat: float


def feed_options(
    feed: str,
    bus: EventBus,
    *,
    authorize: Callable[..., Any] | None,
    public: bool,
    buffer: int,
    heartbeat: float,
    history: int,
) -> FeedOptions:
    """Check the arguments of the feed named ``feed`` and keep ``history`` events for resuming."""
    if authorize is None and not public:
        raise ConfigurationError(
            f"{feed} needs authorize=<a FastAPI dependency> or an explicit public=True"
        )
    if buffer < 1 or heartbeat <= 0:
        raise ConfigurationError("buffer must be >= 1 and heartbeat > 0")
    bus.keep_history(history)
    return FeedOptions(buffer, heartbeat)


async def allow_all() -> None:
    """The ``authorize`` of a public feed: every connection sees every event."""


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What one connection asked for and may see."""

    types: list[str]
    resume: str | None
    allowed: EventFilter | None

    def allows(self, envelope: Envelope) -> bool:
        """Whether this connection may see ``envelope``."""
        return self.allowed is None or self.allowed(envelope)


def feed_request(types: str | None, resume: str | None, event_filter: Any) -> FeedRequest:
    """The request of one connection; unknown ``types`` raise a 400 ``HTTPException``
    whose detail lists the valid ones."""
    if event_filter is not None and not callable(event_filter):
        raise TypeError("authorize must return None or a function envelope -> bool")
    return FeedRequest(_parse_types(types), resume or None, event_filter)


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


@contextlib.asynccontextmanager
async def open_feed(
    bus: EventBus,
    stats: FeedStats,
    options: FeedOptions,
    asked: FeedRequest,
    going_away: asyncio.Event,
) -> AsyncIterator["FeedConnection"]:
    """Listen for one connection; inside the block nothing emitted is missed, and
    leaving it frees the listener. ``going_away`` set ends the connection."""
    stats.connected += 1
    stats.open += 1
    try:
        async with bus.listen(*asked.types, buffer=options.buffer) as listener:
            connection = FeedConnection(bus, listener, stats, options, asked, going_away=going_away)
            listener.on_overflow = connection._overflowed
            yield connection
    finally:
        stats.open -= 1


class FeedConnection:
    """The envelopes of one connection, from :func:`open_feed`."""

    def __init__(
        self,
        bus: EventBus,
        listener: Listener,
        stats: FeedStats,
        options: FeedOptions,
        asked: FeedRequest,
        *,
        going_away: asyncio.Event,
    ) -> None:
        self._bus = bus
        self._going_away = going_away
        self._listener = listener
        self._stats = stats
        self._options = options
        self._asked = asked
        #: Set once the connection fell ``buffer`` events behind: drop the client.
        self.dropped = asyncio.Event()

    def _overflowed(self) -> None:
        self._stats.dropped_slow += 1
        self.dropped.set()

    async def envelopes(self) -> AsyncGenerator[list[Envelope] | None, None]:
        """Batches of envelopes: the missed durable events first (when resuming),
        then live ones without duplicate, each batch holding what was ready at
        once (at most ``BATCH``), so a busy connection is written to once per
        batch rather than once per event; ``None`` when ``heartbeat`` seconds
        passed without one. Ends when the listener closes (the bus stops, or it
        overflowed)."""
        asked = self._asked
        sent: set[str] = set()
        if asked.resume:
            missed = await self._bus.events_after(asked.resume, *asked.types)
            if missed is not None:
                self._stats.resumed += 1
            allowed = [envelope for envelope in missed or () if asked.allows(envelope)]
            sent.update(envelope.id for envelope in allowed)
            for start in range(0, len(allowed), BATCH):
                yield allowed[start : start + BATCH]
        listener = self._listener
        iterator = aiter(listener)
        while True:
            ready = listener.take_ready(BATCH)
            if not ready:
                try:
                    # Not wait_for: on Python 3.11 it can swallow a cancellation
                    # that races with a result, and the stream would outlive its client.
                    async with asyncio.timeout(self._options.heartbeat):
                        first = await anext(iterator)
                except TimeoutError:
                    yield None
                    continue
                except (StopAsyncIteration, ListenerOverflowError):
                    return  # an overflow is counted by _overflowed()
                ready = [first, *listener.take_ready(BATCH - 1)]
            batch = []
            for envelope in ready:
                if sent and envelope.id in sent:
                    sent.discard(envelope.id)  # already sent while catching up
                elif asked.allows(envelope):
                    batch.append(envelope)
            if batch:
                yield batch

    async def run(
        self,
        send: Callable[[list[Envelope] | None], Awaitable[None]],
        disconnected: Callable[[], Awaitable[None]],
    ) -> Ending:
        """Pass every item of :meth:`envelopes` to ``send`` until they end, the
        client disconnects (``disconnected`` returns), it is dropped for
        falling behind (even while ``send`` waits on a stuck socket) or the
        server is going away ("ended", as when the bus stops). Whichever comes
        first cancels the others. ``OSError`` from ``send`` means the client
        is gone."""

        async def sending() -> None:
            async with contextlib.aclosing(self.envelopes()) as envelopes:
                async for batch in envelopes:
                    await send(batch)

        sender = asyncio.ensure_future(sending())
        receiver = asyncio.ensure_future(disconnected())
        dropping = asyncio.ensure_future(self.dropped.wait())
        leaving = asyncio.ensure_future(self._going_away.wait())
        tasks = [sender, receiver, dropping, leaving]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        gone = False
        for task in tasks:
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None and not isinstance(error, OSError):
                raise error
            gone = gone or task is receiver or error is not None
        if self.dropped.is_set():
            return "dropped"
        return "disconnected" if gone else "ended"
