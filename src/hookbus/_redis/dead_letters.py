"""The dead-letter streams of the redis mode.

On one server every dead letter goes to ``<prefix>:dead``, and a dead
letter's id is its entry id there. On a cluster each event type has its own
dead-letter stream in its slot (``<prefix>:dead:{<type>}``, found through the
``<prefix>:types`` set), and a dead letter's id is ``<entry id>/<type>``;
listings merge the streams, oldest first.

One entry per dead letter, with the subscriber, the event's type and id, the
stream and entry it came from, the attempts, the error, when it failed, and
the stored payload as it was (at most ``max_event_size`` bytes). Writing a
dead letter and acknowledging the original entry happen in one script, so an
event is never both pending and dead, nor neither. Re-queueing moves the payload to the subscriber's
re-queue stream and deletes the dead letter, in one script too.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic_core import from_json

from .._dead_letter import DeadLetter, error_type_name
from .._envelope import Envelope, decode_envelope
from .._event import Event
from .._exceptions import DeadLetterNotFoundError, InvalidEnvelopeError, error_text
from .._logging import log_extra
from .client import Redis, id_key, redis_errors
from .keys import Keys
from .scripts import DEAD_LETTER, REQUEUE

__all__ = ["DeadLetterStore", "UnwrittenLetter"]

logger = logging.getLogger("hookbus")

PAYLOAD_KEPT = 1024 * 1024  # bytes of an undecodable entry kept in its dead letter, at least


class UnwrittenLetter(NamedTuple):
    """A dead letter ready to be written, with the entry it acknowledges."""

    stream: bytes
    entry_id: bytes
    fields: dict[str, Any]


class DeadLetterStore:
    """Reads and writes the dead-letter stream."""

    def __init__(self, client: Redis, keys: Keys, types: dict[str, type[Event]]) -> None:
        self._client = client
        self._keys = keys
        self._types = types
        self._script = client.register_script(DEAD_LETTER)
        self._requeue = client.register_script(REQUEUE)

    @staticmethod
    def prepare(
        *,
        subscriber: str,
        event_type: str,
        stream: bytes,
        entry_id: bytes,
        payload: bytes | None,
        envelope: Envelope | None,
        attempts: int,
        error: BaseException,
        failed_at: datetime,
        max_event_size: int,
    ) -> UnwrittenLetter:
        """The fields of a dead letter; never raises, whatever the entry or error holds.

        The payload is kept whole up to ``max_event_size`` (so every valid event
        can be retried) or 1 MiB, whichever is larger; beyond, its beginning.
        """
        raw = payload if isinstance(payload, bytes) else b""
        payload_limit = max(max_event_size, PAYLOAD_KEPT)
        fields: dict[str, Any] = {
            "subscriber": subscriber,
            "type": envelope.type if envelope else event_type,
            "event_id": envelope.id if envelope else _event_id_of(raw, payload_limit),
            "stream": stream,
            "entry": entry_id,
            "attempts": attempts,
            "error_type": error_type_name(error),
            "error_message": error_text(error),
            "failed_at": failed_at.isoformat(),
            "payload": raw[:payload_limit],
        }
        return UnwrittenLetter(stream, entry_id, fields)

    async def write(self, letter: UnwrittenLetter, group: str, requeue: bytes) -> None:
        """Write a dead letter and acknowledge its entry, atomically (raises on a Redis
        error, leaving the entry pending)."""
        args: list[Any] = [group, letter.entry_id, "1" if letter.stream == requeue else "0"]
        for name, value in letter.fields.items():
            args += (name, value)
        fields = letter.fields
        await self._script(keys=[self._keys.dead(fields["type"]), letter.stream], args=args)
        logger.error(
            "subscriber %s gave up on %s %s (%s entry %s) after %d attempts: %s: %s",
            fields["subscriber"],
            fields["type"],
            fields["event_id"] or "(no event id)",
            letter.stream.decode(errors="replace"),
            letter.entry_id.decode(errors="replace"),
            fields["attempts"],
            fields["error_type"],
            fields["error_message"],
            extra=log_extra(
                "redis",
                subscriber=fields["subscriber"],
                event_type=fields["type"],
                event_id=fields["event_id"] or None,
                attempt=int(fields["attempts"]),
            ),
        )

    async def list_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        if not self._keys.cluster:
            return await self._list_stream("", subscriber, limit)
        found: list[DeadLetter] = []
        for event_type in sorted(await self._dead_types()):
            found += await self._list_stream(event_type, subscriber, limit)
        found.sort(key=lambda letter: id_key(letter.id.partition("/")[0].encode()))
        return found if limit is None else found[:limit]

    async def _dead_types(self) -> set[str]:
        """Event types that may have dead letters (cluster layout)."""
        members = await self._client.smembers(self._keys.types())
        return {m.decode(errors="replace") for m in members} | set(self._types)

    async def _list_stream(
        self, event_type: str, subscriber: str | None, limit: int | None
    ) -> list[DeadLetter]:
        """Dead letters of one dead-letter stream, oldest first."""
        letters: list[DeadLetter] = []
        stream = self._keys.dead(event_type)
        suffix = f"/{event_type}" if self._keys.cluster else ""
        start = "-"
        while limit is None or len(letters) < limit:
            entries = await self._client.xrange(stream, min=start, max="+", count=500)
            for entry_id, fields in entries:
                letter = self._letter(entry_id.decode() + suffix, entry_id, fields)
                if subscriber is None or letter.subscriber == subscriber:
                    letters.append(letter)
            if len(entries) < 500:
                break
            start = "(" + entries[-1][0].decode()
        return letters if limit is None else letters[:limit]

    def _locate(self, letter_id: str) -> tuple[str, str]:
        """(dead-letter stream, entry id) of a dead letter's id."""
        entry_id, _, event_type = letter_id.partition("/")
        if self._keys.cluster and not event_type:
            raise DeadLetterNotFoundError(
                f"no dead letter with id {letter_id!r} (on a cluster, ids read <entry>/<type>)"
            )
        return self._keys.dead(event_type), entry_id

    async def take(self, letter_id: str) -> tuple[str, str, bytes]:
        """(subscriber, event type, payload) of a dead letter, which must exist."""
        stream, entry_id = self._locate(letter_id)
        try:
            entries = await self._client.xrange(stream, min=entry_id, max=entry_id)
        except redis_errors.ResponseError:  # not a stream id
            entries = []
        if not entries:
            raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")
        fields = entries[0][1]
        try:
            return fields[b"subscriber"].decode(), fields[b"type"].decode(), fields[b"payload"]
        except (KeyError, UnicodeDecodeError):
            raise DeadLetterNotFoundError(
                f"entry {letter_id!r} of the dead-letter stream is not a dead letter hookbus wrote"
            ) from None

    async def requeue(self, letter_id: str) -> None:
        """Send a dead letter's payload back to its subscriber only; delete the letter."""
        subscriber, event_type, payload = await self.take(letter_id)
        stream, entry_id = self._locate(letter_id)
        if self._keys.cluster and self._keys.dead(event_type) != stream:
            raise DeadLetterNotFoundError(
                f"dead letter {letter_id!r} names another event type ({event_type!r})"
            )
        requeue = self._keys.requeue(event_type, subscriber)
        await self._requeue(keys=[requeue, stream], args=[payload, entry_id])

    async def discard(self, letter_id: str) -> None:
        """Delete a dead letter."""
        stream, entry_id = self._locate(letter_id)
        try:
            deleted = await self._client.xdel(stream, entry_id)
        except redis_errors.ResponseError:  # not a stream id
            deleted = 0
        if not deleted:
            raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")

    def _letter(self, letter_id: str, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
        """A dead-letter entry as a :class:`DeadLetter`; missing or garbled fields (the
        stream is writable by anyone) read as empty rather than failing the listing."""
        payload = fields.get(b"payload", b"")
        error_type = _text(fields.get(b"error_type")) or ""
        envelope: Envelope | None = None
        if error_type != "hookbus.InvalidEnvelopeError":
            with contextlib.suppress(InvalidEnvelopeError):
                envelope = decode_envelope(payload, self._types)
        return DeadLetter(
            id=letter_id,
            subscriber=_text(fields.get(b"subscriber")) or "",
            event_type=_text(fields.get(b"type")) or "",
            event_id=_text(fields.get(b"event_id")) or "",
            envelope=envelope,
            attempts=_int(fields.get(b"attempts")),
            error_type=error_type,
            error_message=_text(fields.get(b"error_message")) or "",
            failed_at=_time(fields.get(b"failed_at"), entry_id),
            payload=payload,
            source=_text(fields.get(b"stream")),
            position=_text(fields.get(b"entry")),
        )


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


def _int(value: bytes | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _time(value: bytes | None, entry_id: bytes) -> datetime:
    """When it failed; else when the dead letter was written (its entry id's time)."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat((value or b"").decode(errors="replace"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(id_key(entry_id)[0] / 1000, tz=UTC)


def _event_id_of(payload: bytes, limit: int) -> str:
    """The ``id`` attribute of a payload that failed to decode, if it has one (never raises)."""
    if len(payload) > limit:
        return ""
    try:
        doc = from_json(payload, allow_inf_nan=False)
    except Exception:  # not JSON, nested too deeply...
        return ""
    value = doc.get("id") if isinstance(doc, dict) else None
    return value[:200] if isinstance(value, str) else ""
