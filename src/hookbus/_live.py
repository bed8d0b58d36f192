"""Live listeners: everything emitted, as it happens, for feeds (SSE, dashboards).

A listener sees both kinds of events: ephemeral ones as they are broadcast,
durable ones once they are stored (redis mode: announced after the XADD).
It is *live*, not durable: it has a bounded buffer, and a listener that
falls behind by more than that is closed with :class:`ListenerOverflowError`
rather than slowing the bus or growing without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from ._envelope import Envelope
from ._exceptions import ListenerOverflowError

__all__ = ["Listener", "LiveHub", "LiveStatistics"]


class Listener:
    """An async iterator of the envelopes emitted from now on (of some types).

    Use it as ``async with bus.listen("sale_closed") as listener: async for
    envelope in listener: ...``. Closing it (leaving the ``async with``)
    frees it at once.
    """

    def __init__(self, hub: LiveHub, types: frozenset[str] | None, buffer: int) -> None:
        self._hub = hub
        self.types = types
        self._buffer: deque[Envelope] = deque()
        self._limit = buffer
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.overflowed = False
        #: Called once if the listener overflows (a feed drops its connection then).
        self.on_overflow: Callable[[], None] | None = None
        #: Envelopes delivered to this listener so far.
        self.received = 0

    def wants(self, event_type: str) -> bool:
        """Whether this listener listens to ``event_type``."""
        return self.types is None or event_type in self.types

    def push(self, envelope: Envelope) -> None:
        """Buffer one envelope (called by the hub); overflow closes the listener."""
        if self._closed:
            return
        if len(self._buffer) >= self._limit:
            self.overflowed = True
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._buffer.append(envelope)
        self.received += 1
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop listening; a pending ``__anext__`` ends."""
        if not self._closed:
            self._closed = True
            self._hub.remove(self)
            self._wake()

    @property
    def closed(self) -> bool:
        """True once closed (by the user, the bus stopping, or an overflow)."""
        return self._closed

    def take_ready(self, limit: int) -> list[Envelope]:
        """Up to ``limit`` envelopes already buffered, without waiting (maybe none)."""
        buffer = self._buffer
        count = min(limit, len(buffer))
        return [buffer.popleft() for _ in range(count)]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Envelope:
        while not self._buffer:
            if self._closed:
                if self.overflowed:
                    raise ListenerOverflowError(
                        f"listener fell more than {self._limit} events behind and was closed"
                    )
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    async def __aenter__(self) -> Self:
        """Return once the listener receives everything emitted from now on, in
        every process (redis mode: its channels are subscribed)."""
        if self._hub.settle is not None:
            await self._hub.settle()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class LiveStatistics:
    """What the live side of this process went through.

    ``disconnects``: times the Pub/Sub connection was lost; ``missed``:
    ephemeral events published meanwhile that this process did not get (an
    estimate, from a server-side count); ``caught_up``: durable events given
    to live listeners from the streams after a disconnect.
    """

    disconnects: int = 0
    missed: int = 0
    caught_up: int = 0


class LiveHub:
    """Fans envelopes out to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        #: Called when listeners come or go (the redis feed resubscribes).
        self.on_change: Callable[[], None] | None = None
        #: Awaited by ``async with listener``: returns once new listeners are in place.
        self.settle: Callable[[], Awaitable[None]] | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def listen(self, types: Iterable[str] | None, buffer: int) -> Listener:
        """A new listener for ``types`` (None: every type)."""
        listener = Listener(self, None if types is None else frozenset(types), buffer)
        self._listeners.append(listener)
        self._changed()
        return listener

    def remove(self, listener: Listener) -> None:
        """Forget a listener (called when it closes)."""
        if listener in self._listeners:
            self._listeners.remove(listener)
            self._changed()

    def wanted_types(self) -> set[str] | None:
        """Types some listener wants; None if one wants every type."""
        wanted: set[str] = set()
        for listener in self._listeners:
            if listener.types is None:
                return None
            wanted |= listener.types
        return wanted

    def deliver(self, envelope: Envelope) -> None:
        """Give ``envelope`` to every listener that wants its type."""
        for listener in list(self._listeners):
            if listener.wants(envelope.type):
                listener.push(envelope)

    def close_all(self) -> None:
        """Close every listener (the bus is stopping)."""
        for listener in list(self._listeners):
            listener.close()
