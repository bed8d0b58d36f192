"""Every error hookbus raises, under one base class.

The tree (built-in parents in brackets, so ``except ValueError`` keeps working)::

    HookbusError
    ├── ConfigurationError [ValueError]       bad mode, URL or setting
    │   └── DuplicateSubscriberError          two subscribers with one id on one event
    ├── UnknownEventError [LookupError]       emit by a name nobody declared
    ├── InvalidEventError [pydantic.ValidationError -> ValueError]
    │                                         payload fails validation
    ├── EventTooLargeError [ValueError]       encoded event above ``max_event_size``
    ├── InvalidEnvelopeError [ValueError]     bytes that are not a hookbus envelope
    ├── BusClosedError [RuntimeError]         emit on a bus that is not running
    ├── BusUnavailableError [ConnectionError] the backend cannot be reached in time
    ├── DeadLetterNotFoundError [LookupError] retry/discard of an unknown dead letter
    ├── ListenerOverflowError                 a live listener fell too far behind
    ├── UnsupportedError [NotImplementedError] the mode cannot do this (replay in local)
    └── DrainTimeoutError [TimeoutError]      ``drain()`` did not finish in time

Errors of the libraries underneath (pydantic, redis) are translated at the
boundary into the most specific error above, with the original as ``__cause__``.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "BusClosedError",
    "BusUnavailableError",
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "DrainTimeoutError",
    "DuplicateSubscriberError",
    "EventTooLargeError",
    "HookbusError",
    "InvalidEnvelopeError",
    "InvalidEventError",
    "ListenerOverflowError",
    "UnknownEventError",
    "UnsupportedError",
]


class HookbusError(Exception):
    """Base class of every error raised by hookbus."""


class ConfigurationError(HookbusError, ValueError):
    """A setting is invalid; the message says what is accepted."""


class DuplicateSubscriberError(ConfigurationError):
    """Two subscribers share one id on the same event type."""


class UnknownEventError(HookbusError, LookupError):
    """An event name that no :class:`~hookbus.Event` subclass declares."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.suggestions = get_close_matches(name, known, n=3, cutoff=0.6)
        hint = (
            f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        listed = ", ".join(sorted(known)[:20]) or "none"
        super().__init__(f"unknown event type {name!r}.{hint} Declared event types: {listed}.")


class InvalidEventError(ValidationError, HookbusError):
    """The event payload failed validation; nothing was delivered.

    It is a :class:`pydantic.ValidationError` too: ``errors()`` lists each
    failing field with the reason.
    """

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidEventError:
        """Build one from a pydantic validation error, keeping every line."""
        details: list[Any] = [
            {
                "type": PydanticCustomError(err["type"], err["msg"]),
                "loc": err["loc"],
                "input": err["input"],
            }
            for err in exc.errors()
        ]
        return cls.from_exception_data(exc.title, details)


class EventTooLargeError(HookbusError, ValueError):
    """The encoded event is larger than the configured ``max_event_size``."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        self.event_type = event_type
        self.size = size
        self.limit = limit
        super().__init__(
            f"event {event_type!r} encodes to {size} bytes, above the limit of {limit} bytes "
            "(setting max_event_size / HOOKBUS_MAX_EVENT_SIZE); store large data elsewhere "
            "and send a reference"
        )


class InvalidEnvelopeError(HookbusError, ValueError):
    """Received bytes are not a valid hookbus envelope; the message says why."""


class BusClosedError(HookbusError, RuntimeError):
    """The bus is not running: not started yet, stopping, or stopped."""


class BusUnavailableError(HookbusError, ConnectionError):
    """The backend (e.g. Redis) could not be reached within the configured timeout."""


class DeadLetterNotFoundError(HookbusError, LookupError):
    """No dead letter has the given id (already retried, discarded, or never existed)."""


class DrainTimeoutError(HookbusError, TimeoutError):
    """``drain()`` gave up before every subscriber caught up."""


class ListenerOverflowError(HookbusError):
    """A live listener fell more events behind than its buffer holds and was closed."""


class UnsupportedError(HookbusError, NotImplementedError):
    """The active mode cannot do this (see ``bus.capabilities``)."""


def error_text(exc: BaseException, limit: int = 2000) -> str:
    """``str(exc)``, at most ``limit`` characters, for logs and dead letters.

    Never raises: a handler may raise an exception whose ``__str__`` fails
    (or returns something absurd); that must not break what records it.
    """
    try:
        text = str(exc)
    except Exception:
        text = f"<{type(exc).__qualname__} whose message cannot be shown>"
    if not isinstance(text, str):  # pragma: no cover - str() always returns a str
        text = repr(text)
    return text if len(text) <= limit else text[:limit] + "…"
