"""The dead-letter stream of the rabbitmq mode (``<prefix>.dead``).

A stream cannot delete one message, so the dead letters are a log: each
dead letter is a message (its payload as it was, its details in headers),
and retrying or discarding one appends a record saying so. Listing reads
the log and leaves out the letters that were retried or discarded. A dead
letter's id is its own (a new event id), carried in its headers.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import aio_pika

from .._dead_letter import DeadLetter, error_type_name
from .._envelope import Envelope, decode_envelope
from .._exceptions import (
    ConfigurationError,
    DeadLetterNotFoundError,
    InvalidEnvelopeError,
    error_text,
)
from .._ids import new_event_id
from .._logging import log_extra
from .publisher import Publisher
from .shared import RabbitShared
from .streams import read_stream
from .topology import Topology

__all__ = ["DeadLetterLog"]

logger = logging.getLogger("hookbus")

PAYLOAD_KEPT = 1024 * 1024  # bytes of an undecodable message kept, at least
_KIND = "x-hookbus-kind"


class DeadLetterLog:
    """Writes, lists, retries and discards dead letters."""

    def __init__(self, shared: RabbitShared, topology: Topology, publisher: Publisher) -> None:
        self._shared = shared
        self._topology = topology
        self._publisher = publisher

    async def add(
        self,
        *,
        subscriber: str,
        event_type: str,
        payload: bytes,
        envelope: Envelope | None,
        attempts: int,
        error: BaseException,
        failed_at: datetime,
        source: str,
        position: str,
    ) -> None:
        """Append one dead letter (confirmed); raises if the broker did not take it."""
        stream = await self._topology.dead()
        kept = max(self._shared.settings.max_event_size, PAYLOAD_KEPT)
        letter_id = new_event_id()
        headers: dict[str, Any] = {
            _KIND: "letter",
            "id": letter_id,
            "subscriber": subscriber,
            "type": event_type,
            "event_id": envelope.id if envelope is not None else "",
            "attempts": attempts,
            "error_type": error_type_name(error),
            "error_message": error_text(error),
            "failed_at": failed_at.isoformat(),
            "source": source,
            "position": position,
        }
        message = aio_pika.Message(
            payload[:kept], headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self._publisher.send(stream, message)
        logger.error(
            "subscriber %s gave up on %s %s after %d attempts: %s: %s",
            subscriber,
            event_type,
            headers["event_id"] or "(no event id)",
            attempts,
            headers["error_type"],
            headers["error_message"],
            extra=log_extra(
                "rabbitmq",
                subscriber=subscriber,
                event_type=event_type,
                event_id=headers["event_id"] or None,
                attempt=attempts,
            ),
        )

    async def list_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        """Dead letters not retried nor discarded, oldest first."""
        letters: dict[str, DeadLetter] = {}
        stream = await self._topology.dead()
        async for message in read_stream(self._shared, self._publisher, stream):
            headers = message.headers or {}
            kind = headers.get(_KIND)
            if kind in ("retried", "discarded"):
                letters.pop(str(headers.get("id", "")), None)
            elif kind == "letter":
                letter = self._letter(headers, message.body)
                letters[letter.id] = letter
        found = [d for d in letters.values() if subscriber in (None, d.subscriber)]
        return found if limit is None else found[:limit]

    async def _find(self, letter_id: str) -> DeadLetter:
        for letter in await self.list_letters(None, None):
            if letter.id == letter_id:
                return letter
        raise DeadLetterNotFoundError(f"no dead letter with id {letter_id!r}")

    async def requeue(self, letter_id: str) -> None:
        """Send a dead letter's event back to its subscriber only, with fresh attempts."""
        letter = await self._find(letter_id)
        queue = self._shared.names.queue(letter.event_type, letter.subscriber)
        if not await self._topology.exists(queue):
            raise ConfigurationError(
                f"subscriber {letter.subscriber!r} of {letter.event_type!r} has no queue "
                f"({queue}): no process declared it, or it was deleted"
            )
        message = aio_pika.Message(
            letter.payload or b"", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self._publisher.send(queue, message)
        await self._mark(letter_id, "retried")

    async def discard(self, letter_id: str) -> None:
        """Delete a dead letter for good (its record is appended)."""
        await self._find(letter_id)
        await self._mark(letter_id, "discarded")

    async def _mark(self, letter_id: str, kind: str) -> None:
        stream = await self._topology.dead()
        message = aio_pika.Message(
            b"",
            headers={_KIND: kind, "id": letter_id},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publisher.send(stream, message)

    def _letter(self, headers: dict[str, Any], payload: bytes) -> DeadLetter:
        """A dead-letter message as a :class:`DeadLetter`; garbled headers (the stream
        is writable by anyone) read as empty rather than failing the listing."""
        error_type = _text(headers.get("error_type"))
        envelope: Envelope | None = None
        if error_type != "hookbus.InvalidEnvelopeError":
            with contextlib.suppress(InvalidEnvelopeError):
                envelope = decode_envelope(payload, self._shared.types)
        return DeadLetter(
            id=_text(headers.get("id")) or new_event_id(),
            subscriber=_text(headers.get("subscriber")),
            event_type=_text(headers.get("type")),
            event_id=_text(headers.get("event_id")),
            envelope=envelope,
            attempts=_int(headers.get("attempts")),
            error_type=error_type,
            error_message=_text(headers.get("error_message")),
            failed_at=_time(headers.get("failed_at")),
            payload=payload,
            source=_text(headers.get("source")) or None,
            position=_text(headers.get("position")) or None,
        )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _time(value: Any) -> datetime:
    with contextlib.suppress(TypeError, ValueError):
        return datetime.fromisoformat(_text(value))
    return datetime.now(UTC)
