"""Subscriptions: a handler bound to one event type, under a stable subscriber id."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ._context import pin_delivery
from ._event import Event, event_name, is_durable
from ._exceptions import ConfigurationError
from ._retry import RetryPolicy

__all__ = [
    "DeliveryCounters",
    "Invoker",
    "SubscriberStats",
    "Subscription",
    "default_subscriber_id",
    "make_invoker",
]

#: What a backend calls for each delivery: an async function of the event.
Invoker = Callable[[Event], Awaitable[Any]]


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
    while pending, before they could be handled.
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


class DeliveryCounters:
    """The counters every backend's per-subscription worker keeps."""

    __slots__ = ("dead_lettered", "dropped", "failed", "handled", "lost", "retried")

    def reset_counters(self) -> None:
        """Start every counter at zero."""
        self.handled = self.failed = self.retried = 0
        self.dead_lettered = self.dropped = self.lost = 0

    def snapshot(self, sub: Subscription, queued: int) -> SubscriberStats:
        """The counters as a :class:`SubscriberStats` record."""
        return SubscriberStats(
            subscriber=sub.id,
            event_type=sub.event_name,
            handled=self.handled,
            failed=self.failed,
            retried=self.retried,
            dead_lettered=self.dead_lettered,
            dropped=self.dropped,
            queued=queued,
            lost=self.lost,
        )


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


def make_invoker(sub: Subscription, executor: Callable[[], Executor]) -> Invoker:
    """The async callable a backend awaits for one delivery.

    Async handlers are returned as they are (nothing added to the hot path);
    plain functions run in the bus's thread pool with a copy of the caller's
    context in which the delivery is pinned (see :func:`pin_delivery`);
    a ``timeout`` wraps either.
    """
    invoke: Invoker = sub.handler if sub.is_async else _threaded(sub.handler, executor)
    if sub.timeout is not None:
        invoke = _with_timeout(invoke, sub.timeout)
    return invoke


def _threaded(handler: Callable[[Event], Any], executor: Callable[[], Executor]) -> Invoker:
    async def run_in_thread(event: Event) -> None:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(pin_delivery)
        result = await loop.run_in_executor(executor(), ctx.run, handler, event)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"handler {handler!r} is a plain function but returned an awaitable; "
                "declare it with 'async def' so it runs on the event loop"
            )

    return run_in_thread


def _with_timeout(invoke: Invoker, seconds: float) -> Invoker:
    async def run_with_timeout(event: Event) -> None:
        async with asyncio.timeout(seconds):
            await invoke(event)

    return run_with_timeout
