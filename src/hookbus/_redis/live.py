"""The Pub/Sub side of the redis mode: ephemeral events and live announcements.

One Pub/Sub connection per process subscribes to the live channels of the
event types it needs: types with ephemeral subscribers here, and types that
live listeners want. Ephemeral events go to the local ephemeral subscribers
(through an in-process backend: at most once, never retried); every message
goes to the live listeners.

Pub/Sub is fire-and-forget: a subscriber that falls behind is disconnected
by Redis (``client-output-buffer-limit pubsub``) and misses what was sent
meanwhile. The reader hands messages off at once to bounded in-process
queues to stay fast; when the connection drops anyway it reconnects,
resubscribes, counts the gap, and lets live listeners of durable types catch
up from the streams, from the last stream id they saw.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from .._backoff import Backoff
from .._envelope import Envelope, decode_envelope
from .._event import Event
from .._exceptions import InvalidEnvelopeError
from .._logging import log_extra
from .client import (
    id_key,
    is_refused,
    is_transient,
    open_pubsub,
    primaries,
    publish_via,
    refresh_routes,
)
from .scripts import parse_live_message
from .shared import RedisShared

__all__ = ["LiveFeed"]

logger = logging.getLogger("hookbus")
_EXTRA = log_extra("redis")

OWN_ENVELOPES = 10_000  # published envelopes kept until their message comes back
SYNC_RESEND = 1.0  # seconds before a sync token that did not come back is sent again


class LiveFeed:
    """Reads the live channels this process needs."""

    def __init__(
        self,
        shared: RedisShared,
        deliver_ephemeral: Callable[[Envelope], None],
        ephemeral_types: Callable[[], set[str]],
    ) -> None:
        """``deliver_ephemeral`` hands an ephemeral event to this process's
        subscribers; ``ephemeral_types`` names the types they subscribe to."""
        self._shared = shared
        self._deliver_ephemeral = deliver_ephemeral
        self._ephemeral_types = ephemeral_types
        self._subscribed: set[str] = set()
        self._last_stream_id: dict[str, bytes] = {}
        self.task: asyncio.Task[None] | None = None
        #: Times the Pub/Sub connection was lost (messages may have been missed).
        self.disconnects = 0
        #: Durable events replayed to live listeners from the streams after a disconnect.
        self.caught_up = 0
        #: Ephemeral events published while disconnected (server count minus received).
        self.missed = 0
        self._published_at: dict[str, int] = {}  # type -> server count when subscribed
        self._received: dict[str, int] = {}
        self.ready = asyncio.Event()
        self._sync_channel = shared.keys.sync(shared.consumer).encode()
        self._sync_waiters: dict[bytes, asyncio.Future[None]] = {}
        self._confirmed: set[bytes] = set()
        self._confirmations = asyncio.Event()
        self._dirty = True
        self._own: dict[str, Envelope] = {}  # envelopes we published, by id
        self._channel_types: dict[bytes, str] = {}
        #: Set when Redis refuses the subscription (ACL): start() reports it.
        self.refusal: BaseException | None = None

    def wanted(self) -> set[str]:
        """Event types whose channel this process must listen to."""
        shared = self._shared
        wanted = set(self._ephemeral_types())
        listened = shared.hub.wanted_types()
        wanted |= shared.known_types() if listened is None else listened
        return wanted

    async def run(self) -> None:
        backoff = Backoff()
        reconnecting = False
        while True:
            shared = self._shared
            pubsub, closing = open_pubsub(
                shared.blocking, shared.settings, f"hookbus:{shared.consumer}:live"
            )
            try:
                if reconnecting:
                    await self._count_missed()
                self._subscribed = set()
                self._confirmed.clear()
                await pubsub.subscribe(self._sync_channel)
                await self._sync_channels(pubsub)
                if reconnecting:
                    await self._catch_up()
                    logger.warning("hookbus live feed: reconnected to Redis Pub/Sub", extra=_EXTRA)
                self.ready.set()
                while True:
                    message = await pubsub.get_message(timeout=0.2)
                    if self._dirty or message is None:
                        await self._sync_channels(pubsub)
                    while message is not None:
                        backoff.reset()
                        self._receive(message)
                        # Take what is already buffered without waiting again.
                        message = await pubsub.get_message(timeout=0)
            except asyncio.CancelledError:
                await _close(closing)
                raise
            except Exception as exc:
                await _close(closing)
                self.ready.clear()
                if is_refused(exc):
                    if self.refusal is None:
                        logger.error(
                            "hookbus live feed: Redis refused the subscription: %s",
                            exc,
                            extra=_EXTRA,
                        )
                    self.refusal = exc
                    await asyncio.sleep(5.0)  # a permission will not appear by itself soon
                    continue
                if is_transient(exc):
                    self.disconnects += 1
                    logger.warning(
                        "hookbus live feed lost its Redis Pub/Sub connection (%r): ephemeral "
                        "events sent meanwhile are missed; reconnecting",
                        exc,
                        extra=_EXTRA,
                    )
                else:
                    logger.exception("hookbus live feed: unexpected error", extra=_EXTRA)
                await refresh_routes(self._shared.blocking)
                await refresh_routes(self._shared.client)
                reconnecting = True
                await backoff.sleep()

    def mark_dirty(self) -> None:
        """The channels this process needs changed (a listener, a subscription)."""
        self._dirty = True

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if isinstance(kind, bytes):
            kind = kind.decode()
        channel = message["channel"]
        if kind == "message":
            if channel == self._sync_channel:
                self._synced(message["data"])
            else:
                self._dispatch(channel, message["data"])
        elif kind == "subscribe":
            self._confirmed.add(channel)
            self._confirmations.set()
        elif kind == "unsubscribe":
            self._confirmed.discard(channel)

    async def round_trip(self, client: Any) -> None:
        """Return once this feed listens to every channel it needs, and a message
        published now has come back through it: every message published before
        (by anyone) has then been received too. On a cluster, one message goes
        through each master, as messages from one node arrive in order but not
        with those of another. A token lost with a dropped connection is sent
        again (every ``SYNC_RESEND`` seconds) once the channels are subscribed
        anew."""
        self._dirty = True
        loop = asyncio.get_running_loop()
        waiting: dict[bytes, tuple[Any, asyncio.Future[None]]] = {}
        for node in primaries(client):
            token = secrets.token_bytes(8)
            waiting[token] = (node, loop.create_future())
            self._sync_waiters[token] = waiting[token][1]
        tokens = list(waiting)
        try:
            while waiting:
                await self._subscribed_to_all()
                for token, (node, _) in waiting.items():
                    await publish_via(client, node, self._sync_channel, token)
                await asyncio.wait([f for _, f in waiting.values()], timeout=SYNC_RESEND)
                waiting = {t: w for t, w in waiting.items() if not w[1].done()}
        finally:
            for token in tokens:
                self._sync_waiters.pop(token, None)

    async def _subscribed_to_all(self) -> None:
        """Return once Redis confirmed every channel this feed needs."""
        keys = self._shared.keys
        while True:
            needed = {keys.live(t).encode() for t in self.wanted()} | {self._sync_channel}
            if needed <= self._confirmed:
                return
            self._confirmations.clear()
            await self._confirmations.wait()

    def _synced(self, token: bytes) -> None:
        future = self._sync_waiters.get(token)
        if future is not None and not future.done():
            future.set_result(None)

    async def _sync_channels(self, pubsub: Any) -> None:
        self._dirty = False
        wanted = self.wanted()
        keys = self._shared.keys
        new = sorted(wanted - self._subscribed)
        if new:
            await self._mark_stream_positions(new)
            counts = await self._published_counts(new)
            for event_type in new:
                self._published_at[event_type] = counts[event_type]
                self._received[event_type] = 0
            await pubsub.subscribe(*(keys.live(t) for t in new))
        gone = self._subscribed - wanted
        if gone:
            await pubsub.unsubscribe(*(keys.live(t) for t in sorted(gone)))
        self._subscribed = wanted

    def remember(self, envelope: Envelope) -> None:
        """An envelope this process publishes on a channel it listens to: its
        message will come back, and can then be matched instead of decoded."""
        if envelope.type in self._subscribed:
            own = self._own
            own[envelope.id] = envelope
            if len(own) > OWN_ENVELOPES:
                del own[next(iter(own))]

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        stream_id, encoded = parse_live_message(data)
        # Our own encoding starts with '{"specversion":"1.0","id":"<36-char id>"'.
        envelope = self._own.pop(encoded[27:63].decode("ascii", "replace"), None)
        if envelope is None:
            try:
                envelope = decode_envelope(
                    encoded, self._shared.types, self._shared.event_class(self._type_of(channel))
                )
            except InvalidEnvelopeError as exc:
                logger.warning(
                    "hookbus live feed: ignoring a bad message on %r: %s",
                    channel,
                    exc,
                    extra=_EXTRA,
                )
                return
        if stream_id is None:
            self._received[envelope.type] = self._received.get(envelope.type, 0) + 1
            self._deliver_ephemeral(envelope)
        else:
            last = self._last_stream_id.get(envelope.type)
            if last is not None and id_key(stream_id) <= id_key(last):
                return  # already given to the listeners by a catch-up
            self._last_stream_id[envelope.type] = stream_id
        self._shared.hub.deliver(envelope)

    async def _mark_stream_positions(self, event_types: list[str]) -> None:
        """Where each newly listened stream ends now: catching up after a disconnect
        starts there if no announcement of that type arrived before it."""
        unknown = [t for t in event_types if t not in self._last_stream_id]
        if not unknown:
            return
        keys = self._shared.keys
        pipe = self._shared.client.pipeline(transaction=False)
        for event_type in unknown:
            pipe.xrevrange(keys.stream(event_type), "+", "-", count=1)
        for event_type, last in zip(unknown, await pipe.execute(), strict=True):
            self._last_stream_id[event_type] = last[0][0] if last else b"0-0"

    def _type_of(self, channel: bytes) -> str:
        event_type = self._channel_types.get(channel)
        if event_type is None:
            event_type = self._shared.keys.event_type_of_channel(channel.decode())
            self._channel_types[channel] = event_type
        return event_type

    async def _published_counts(self, event_types: list[str]) -> dict[str, int]:
        keys = self._shared.keys
        pipe = self._shared.client.pipeline(transaction=False)
        for event_type in event_types:  # one hash on one server, one per type on a cluster
            pipe.hget(keys.published(event_type), keys.live(event_type))
        values = await pipe.execute()
        return {t: int(v or 0) for t, v in zip(event_types, values, strict=True)}

    async def _count_missed(self) -> None:
        """After a reconnect: ephemeral events sent since we subscribed that never came."""
        before = dict(self._published_at)
        if not before:
            return
        now = await self._published_counts(sorted(before))
        missed = sum(max(0, now[t] - before[t] - self._received.get(t, 0)) for t in before)
        self.missed += missed
        self._published_at.clear()
        self._received.clear()
        if missed:
            logger.warning(
                "hookbus live feed: %d ephemeral event(s) were missed while disconnected",
                missed,
                extra=_EXTRA,
            )

    async def _catch_up(self) -> None:
        """Give live listeners the durable events stored while the connection was down."""
        shared = self._shared
        if not shared.hub:
            return
        for event_type, last in list(self._last_stream_id.items()):
            start = b"(" + last
            while True:
                entries = await shared.client.xrange(
                    shared.keys.stream(event_type), min=start, max="+", count=500
                )
                for entry_id, fields in entries:
                    envelope = _decode(fields.get(b"e"), shared.types)
                    if envelope is not None:
                        self.caught_up += 1
                        shared.hub.deliver(envelope)
                    self._last_stream_id[event_type] = entry_id
                if len(entries) < 500:
                    break
                start = b"(" + entries[-1][0]


def _decode(raw: bytes | None, types: dict[str, type[Event]]) -> Envelope | None:
    if raw is None:
        return None
    try:
        return decode_envelope(raw, types)
    except InvalidEnvelopeError:
        return None


async def _close(closing: Any) -> None:
    try:
        await closing.aclose()
    except Exception:  # closing a broken connection may fail too
        logger.debug("hookbus live feed: error while closing Pub/Sub", exc_info=True, extra=_EXTRA)
