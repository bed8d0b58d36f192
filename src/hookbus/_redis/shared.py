"""What the parts of the redis backend share, in one explicit object.

The backend creates one :class:`RedisShared` and hands it to each part
(consumers, live feed, maintenance): none of them imports the backend class.
It holds the settings, the key names, this process's consumer name, the two
clients (set by ``start``), the event classes known here and the decoding of
stream entries, and the live listeners' hub.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from .._envelope import Envelope, decode_envelope
from .._event import Event, declared, event_types
from .._exceptions import BusUnavailableError
from .._live import LiveHub
from .._redis_options import RedisOptions
from .._settings import Settings
from .client import Redis
from .dead_letters import DeadLetterStore
from .keys import Keys

__all__ = ["DECODED_CACHE", "RedisShared"]

DECODED_CACHE = 4096  # envelopes kept for the other subscriptions reading the same entries


@dataclass(eq=False)
class RedisShared:
    """The state and helpers every part of one redis backend uses."""

    settings: Settings
    keys: Keys
    #: This process's consumer name in every group (``<host>:<pid>:<random>``).
    consumer: str
    #: Thread pool for plain-function handlers, created on first use.
    executor: Callable[[], Executor]
    #: Live listeners of this process.
    hub: LiveHub
    #: Commands; pipelined by concurrent callers.
    client: Redis = None
    #: Blocking reads (XREADGROUP BLOCK) and Pub/Sub.
    blocking: Redis = None
    #: Event classes of the types subscribed in this process, by name.
    types: dict[str, type[Event]] = field(default_factory=dict)
    #: Durable subscriptions per event type in this process.
    readers: Counter[str] = field(default_factory=Counter)
    dead_letter_store: DeadLetterStore | None = None
    _decoded: OrderedDict[tuple[type[Event], bytes, bytes], Envelope] = field(
        default_factory=OrderedDict
    )

    @property
    def options(self) -> RedisOptions:
        """The redis settings."""
        return self.settings.redis

    def dead_letters(self) -> DeadLetterStore:
        """The dead-letter store (``BusUnavailableError`` before ``start``)."""
        if self.dead_letter_store is None:
            raise BusUnavailableError("the redis backend is not started")
        return self.dead_letter_store

    def known_types(self) -> set[str]:
        """Every event type this process knows: subscribed here, or declared (an
        ``Event`` subclass imported), so that a listener of every type sees them all."""
        return set(self.types) | set(event_types())

    def event_class(self, name: str) -> type[Event] | None:
        """The class of event type ``name``: subscribed here, or else declared."""
        return self.types.get(name) or declared(name)

    def decoded(
        self, stream: bytes, entry_id: bytes, raw: bytes, expected: type[Event]
    ) -> Envelope:
        """The envelope of a stream entry. When several subscriptions of this process
        read the stream, it is decoded once for all of them (events are immutable:
        sharing is safe); a stream read by one subscription is not cached."""
        if self.readers[expected.__event_name__] == 1:
            return decode_envelope(raw, self.types, expected)
        key = (expected, stream, entry_id)
        cache = self._decoded
        envelope = cache.get(key)
        if envelope is None:
            envelope = decode_envelope(raw, self.types, expected)
            cache[key] = envelope
            if len(cache) > DECODED_CACHE:
                cache.popitem(last=False)
        return envelope
