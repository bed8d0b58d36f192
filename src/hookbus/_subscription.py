"""Subscriptions: a handler bound to one event type, under a stable subscriber id."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from ._event import Event, event_name, is_durable
from ._exceptions import ConfigurationError, DuplicateSubscriberError
from ._retry import RetryPolicy

__all__ = [
    "SubscriberStats",
    "Subscription",
    "claim_subscriber",
    "default_subscriber_id",
]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A handler subscribed to one event type.

    ``id`` is the subscriber id: stable across restarts and processes (in
    redis mode it names the consumer group), unique per event type.
    """

    id: str
    event_type: type[Event]
    handler: Callable[..., Any]
    retry: RetryPolicy
    timeout: float | None
    is_async: bool
    #: Effectively-once: an event id this subscriber already completed is skipped.
    idempotent: bool = False

    @property
    def event_name(self) -> str:
        """Name of the event type subscribed to."""
        return event_name(self.event_type)

    @property
    def durable(self) -> bool:
        """Whether the event type is critical (retried, dead-lettered)."""
        return is_durable(self.event_type)


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    """Counters of one subscription, since the bus started.

    ``handled``: deliveries that succeeded; ``failed``: handler calls that
    raised; ``retried``: retries scheduled; ``dead_lettered``: events that used
    up their attempts; ``dropped``: ephemeral events not delivered because the
    subscriber's queue was full; ``queued``: not finished yet in this
    process; ``lost`` (redis mode): entries that vanished from the stream
    while pending, before they could be handled; ``skipped``: deliveries of
    events an idempotent subscriber had completed already (not run again).
    """

    subscriber: str
    event_type: str
    handled: int
    failed: int
    retried: int
    dead_lettered: int
    dropped: int
    queued: int
    lost: int = 0
    skipped: int = 0


def default_subscriber_id(handler: Callable[..., Any]) -> str:
    """``"<module>.<qualname>"`` of the handler (of its class for callable objects)."""
    target: Any = handler
    if not hasattr(target, "__qualname__"):
        target = type(handler)
    module = getattr(target, "__module__", None) or "unknown"
    return f"{module}.{target.__qualname__}"


def is_async_callable(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, methods and objects with an async ``__call__``."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


def check_subscriber_id(sub_id: str) -> str:
    """Validate an explicit subscriber id; return it."""
    if not isinstance(sub_id, str) or not sub_id.strip():
        raise ConfigurationError(f"subscriber name must be a non-empty string, got {sub_id!r}")
    if any(ch.isspace() or not ch.isprintable() for ch in sub_id) or len(sub_id) > 200:
        raise ConfigurationError(
            f"subscriber name {sub_id!r} must be at most 200 printable characters without spaces"
        )
    return sub_id


def claim_subscriber(
    taken: Container[tuple[str, str]], subscription: Subscription
) -> tuple[str, str]:
    """The key ``(subscriber id, event type)`` of ``subscription``, which must not be in
    ``taken`` yet (every backend keeps one worker per key); DuplicateSubscriberError else."""
    key = (subscription.id, subscription.event_name)
    if key in taken:
        raise DuplicateSubscriberError(
            f"subscriber {subscription.id!r} is already subscribed to "
            f"{subscription.event_name!r}; give one of them another name="
        )
    return key
