"""Dead letters: deliveries that used up their attempts, or entries that could not be read."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._envelope import Envelope
from ._event import Event

__all__ = ["DeadLetter", "error_type_name"]


def error_type_name(exc: BaseException) -> str:
    """How a dead letter names an error's type: ``ValueError`` for built-ins,
    ``hookbus.InvalidEnvelopeError`` for hookbus's own, ``module.Name`` otherwise."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("hookbus."):
        return f"hookbus.{cls.__qualname__}"
    return f"{module}.{cls.__qualname__}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that one subscriber could not handle.

    Either the handler failed ``attempts`` times, or (redis mode) the stored
    entry was not a valid hookbus envelope of the subscribed type: then
    ``envelope`` is ``None``, ``error_type`` is
    ``"hookbus.InvalidEnvelopeError"``, ``error_message`` says why (an
    envelope of another type names both types) and ``payload`` holds the raw
    bytes (bounded: at most ``max_event_size`` or 1 MiB, the larger).
    ``source`` and ``position`` say where the delivery came from, to find the
    original: in redis mode the stream key and the entry id; ``None`` in
    local mode (the event came from memory). ``error_type`` is the error's class name, qualified by
    its module unless it is a built-in (``ValueError``, ``myapp.sync.PahekoDown``).
    ``id`` identifies the dead letter itself: pass it, or the
    object, to ``bus.retry_dead_letter`` / ``bus.discard_dead_letter``. The
    other subscribers of the same event are unaffected.
    """

    id: str
    subscriber: str
    event_type: str
    event_id: str
    envelope: Envelope | None
    attempts: int
    error_type: str
    error_message: str
    failed_at: datetime
    payload: bytes | None = None
    source: str | None = None
    position: str | None = None

    @property
    def event(self) -> Event | None:
        """The event that could not be handled (``None`` if it could not be decoded)."""
        return None if self.envelope is None else self.envelope.event

    def to_dict(self) -> dict[str, Any]:
        """The dead letter as plain JSON-ready data (``hookbus dead-letters list --json``):
        the envelope as CloudEvents JSON when it could be decoded, else the raw payload
        as ``payload`` (text, if UTF-8) or ``payload_base64``."""
        data: dict[str, Any] = {
            "id": self.id,
            "subscriber": self.subscriber,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "attempts": self.attempts,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "failed_at": self.failed_at.isoformat(),
            "source": self.source,
            "position": self.position,
            "envelope": None if self.envelope is None else json.loads(self.envelope.encode()),
        }
        if self.envelope is None and self.payload is not None:
            try:
                data["payload"] = self.payload.decode()
            except UnicodeDecodeError:
                data["payload_base64"] = base64.b64encode(self.payload).decode()
        return data
