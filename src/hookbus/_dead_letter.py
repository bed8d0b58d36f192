"""Dead letters: deliveries that used up their attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._envelope import Envelope
from ._event import Event

__all__ = ["DeadLetter"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that one subscriber failed to handle ``attempts`` times.

    ``id`` identifies the dead letter itself (pass it, or the object, to
    ``bus.retry_dead_letter`` / ``bus.discard_dead_letter``). The other
    subscribers of the same event are unaffected.
    """

    id: str
    subscriber: str
    envelope: Envelope
    attempts: int
    error_type: str
    error_message: str
    failed_at: datetime

    @property
    def event(self) -> Event:
        """The event that could not be handled."""
        return self.envelope.event

    @property
    def event_id(self) -> str:
        """Id of the event (as returned by ``emit``)."""
        return self.envelope.id

    @property
    def event_type(self) -> str:
        """Name of the event type."""
        return self.envelope.type
