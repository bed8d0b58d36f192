"""The dead-letter stream of the redis mode (``<prefix>:dead``).

One entry per dead letter, with the subscriber, the event's type and id, the
stream and entry it came from, the attempts, the error, when it failed, and
the stored payload as it was. Writing a dead letter and acknowledging the
original entry happen in one transaction, so an event is never both pending
and dead, nor neither. Re-queueing moves the payload to the subscriber's
re-queue stream and deletes the dead letter, in one transaction too.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._dead_letter import DeadLetter, error_type_name
from ._envelope import Envelope, decode_envelope
from ._event import Event
from ._exceptions import DeadLetterNotFoundError, InvalidEnvelopeError
from ._keys import Keys
from ._redis_client import Redis

if TYPE_CHECKING:
    from ._redis_consumer import StreamConsumer

__all__ = ["DeadLetterStore"]

logger = logging.getLogger("hookbus")


class DeadLetterStore:
    """Reads and writes the dead-letter stream."""

    def __init__(self, client: Redis, keys: Keys, types: dict[str, type[Event]]) -> None:
        self._client = client
        self._keys = keys
        self._types = types

    async def add(
        self,
        *,
        consumer: StreamConsumer,
        stream: bytes,
        entry_id: bytes,
        payload: bytes | None,
        envelope: Envelope | None,
        attempts: int,
        error: BaseException,
        failed_at: datetime,
    ) -> None:
        """Write a dead letter and acknowledge its entry, atomically."""
        error_type = error_type_name(error)
        fields: dict[str, Any] = {
            "subscriber": consumer.sub.id,
            "type": envelope.type if envelope else consumer.sub.event_name,
            "event_id": envelope.id if envelope else _event_id_of(payload),
            "stream": stream,
            "entry": entry_id,
            "attempts": attempts,
            "error_type": error_type,
            "error_message": str(error)[:2000],
            "failed_at": failed_at.isoformat(),
            "payload": payload or b"",
        }
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(self._keys.dead(), fields)
        pipe.xack(stream, consumer.group, entry_id)
        if stream == consumer.requeue:
            pipe.xdel(stream, entry_id)
        await pipe.execute()
        logger.error(
            "subscriber %s gave up on %s %s after %d attempts: %s: %s",
            consumer.sub.id,
            fields["type"],
            fields["event_id"],
            attempts,
            error_type,
            error,
        )

    async def list(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        letters: list[DeadLetter] = []
        start = "-"
        while limit is None or len(letters) < limit:
            entries = await self._client.xrange(self._keys.dead(), min=start, max="+", count=500)
            for entry_id, fields in entries:
                letter = self._letter(entry_id, fields)
                if subscriber is None or letter.subscriber == subscriber:
                    letters.append(letter)
            if len(entries) < 500:
                break
            start = "(" + entries[-1][0].decode()
        return letters if limit is None else letters[:limit]

    async def take(self, letter_id: str) -> tuple[str, str, bytes]:
        """(subscriber, event type, payload) of a dead letter, which must exist."""
        entries = await self._client.xrange(self._keys.dead(), min=letter_id, max=letter_id)
        if not entries:
            raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")
        fields = entries[0][1]
        return fields[b"subscriber"].decode(), fields[b"type"].decode(), fields[b"payload"]

    async def requeue(self, letter_id: str) -> None:
        """Send a dead letter's payload back to its subscriber only; delete the letter."""
        subscriber, event_type, payload = await self.take(letter_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(self._keys.requeue(event_type, subscriber), {"e": payload})
        pipe.xdel(self._keys.dead(), letter_id)
        await pipe.execute()

    async def discard(self, letter_id: str) -> None:
        """Delete a dead letter."""
        if not await self._client.xdel(self._keys.dead(), letter_id):
            raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")

    def _letter(self, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
        payload = fields.get(b"payload", b"")
        error_type = fields[b"error_type"].decode()
        envelope: Envelope | None = None
        if error_type != "hookbus.InvalidEnvelopeError":
            with contextlib.suppress(InvalidEnvelopeError):
                envelope = decode_envelope(payload, self._types)
        return DeadLetter(
            id=entry_id.decode(),
            subscriber=fields[b"subscriber"].decode(),
            event_type=fields[b"type"].decode(),
            event_id=fields[b"event_id"].decode(),
            envelope=envelope,
            attempts=int(fields[b"attempts"]),
            error_type=error_type,
            error_message=fields[b"error_message"].decode(),
            failed_at=datetime.fromisoformat(fields[b"failed_at"].decode()),
            payload=payload,
        )


def _event_id_of(payload: bytes | None) -> str:
    """The ``id`` attribute of a payload that failed to decode, if it has one."""
    try:
        doc = json.loads(payload or b"")
    except ValueError:
        return ""
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""
