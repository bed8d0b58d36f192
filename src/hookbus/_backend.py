"""The interface every backend implements; :class:`~hookbus.EventBus` is built on it.

A backend moves envelopes from ``publish`` to the invokers of the
subscriptions it was given. Its contract, which the conformance suite
(:mod:`hookbus.testing.conformance`) checks for every backend:

* ``publish`` returns once the envelope is *accepted*: queued in memory
  (local) or stored (redis). It never runs or awaits a handler and never
  raises because of one. It may wait while a bounded queue is full
  (backpressure); if the backend stops meanwhile, it raises
  :class:`~hookbus.BusClosedError` rather than accept what nobody will deliver.
* Every subscription of the envelope's type gets it. Durable events are
  retried according to the subscription's :class:`RetryPolicy` and end as
  :class:`DeadLetter` after the last attempt; ephemeral ones go only to the
  subscriptions present, once, and are never retried.
* ``drain`` returns when every event published so far has been handled,
  dead-lettered or dropped by every subscription in this process.
* ``stop`` stops delivery: in-flight handlers get ``timeout`` seconds, then
  are cancelled. Backends are not thread-safe: call them from the loop that
  started them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from ._capabilities import Capabilities
from ._dead_letter import DeadLetter
from ._envelope import Envelope
from ._exceptions import UnsupportedError
from ._live import LiveHub, LiveStatistics
from ._settings import Settings
from ._status import BackendStatus, EventTypeStatus, SubscriberStatus
from ._subscription import SubscriberStats, Subscription

if TYPE_CHECKING:
    from ._delivery import Deliverer

__all__ = ["Backend"]


class Backend(ABC):
    """Base class of backends (one per mode)."""

    #: What the backend promises; a backend may narrow it per instance (by its options).
    capabilities: Capabilities
    #: True when the backend encodes every envelope anyway (to send it): the size
    #: check then measures that encoding (cached) instead of bounding the event.
    encodes_envelopes: ClassVar[bool] = False

    def __init__(self, settings: Settings, executor: Callable[[], Executor]) -> None:
        self.settings = settings
        #: Thread pool for plain-function handlers, created on first use.
        self.executor = executor
        #: Live listeners of this process (``bus.listen``).
        self.hub = LiveHub()

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering to the subscriptions added so far."""

    @abstractmethod
    async def stop(self, timeout: float) -> None:
        """Stop delivering; give in-flight handlers ``timeout`` seconds, then cancel them."""

    @abstractmethod
    def subscribe(self, subscription: Subscription) -> None:
        """Add a subscription; allowed before and after ``start``."""

    @abstractmethod
    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        """Accept one envelope for delivery (see the module docs for the contract).

        Returns ``None`` when the envelope was accepted at once, or an
        awaitable that completes when it is accepted: the in-process backend
        takes the common case without creating a coroutine per event.
        """

    @abstractmethod
    async def drain(self, timeout: float | None) -> None:
        """Wait until every subscription has finished every event published so far.

        Raises :class:`~hookbus.DrainTimeoutError` after ``timeout`` seconds.
        """

    @abstractmethod
    async def dead_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        """Dead letters, oldest first, optionally of one subscriber."""

    @abstractmethod
    async def retry_dead_letter(self, dead_letter_id: str) -> None:
        """Deliver a dead letter's event again to its subscriber, with fresh attempts."""

    @abstractmethod
    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        """Delete a dead letter for good."""

    @abstractmethod
    def statistics(self) -> list[SubscriberStats]:
        """Counters of every subscription in this process."""

    def deliverers(self) -> list[Deliverer]:
        """The :class:`Deliverer` of every subscription in this process, where
        instruments (metrics, tracing) are installed."""
        return []

    def keep_history(self, size: int) -> None:
        """Keep the last ``size`` durable events for :meth:`events_after` (if the
        backend has no store of its own; by default it has nothing to keep)."""
        return

    async def events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        """Durable events emitted after ``event_id`` (of ``types``), oldest first; ``None``
        when ``event_id`` is not known (any more)."""
        return None

    def live_statistics(self) -> LiveStatistics:
        """Disconnects and gaps of the live side (nothing to report in-process)."""
        return LiveStatistics()

    async def replay(self, subscriber: str, event_type: str | None, since: str | datetime) -> int:
        """Deliver ``subscriber``'s events from ``since`` on again; how many groups rewound.

        Backends without ``capabilities.replay`` raise :class:`UnsupportedError`.
        """
        raise UnsupportedError(f"{type(self).__name__} keeps no history to replay")

    async def status(self, subscriptions: Sequence[Subscription]) -> BackendStatus:
        """The state of ``subscriptions`` (the application's, which need not be this
        backend's own: an admin bus that consumes nothing reports on an application's)
        and of their event types. Figures the backend cannot know are ``None``; this
        default knows none."""
        return unknown_status(subscriptions)


def unknown_status(subscriptions: Sequence[Subscription]) -> BackendStatus:
    """``subscriptions`` and their event types, every figure unknown."""
    types: dict[str, EventTypeStatus] = {}
    rows: list[SubscriberStatus] = []
    for sub in subscriptions:
        types.setdefault(sub.event_name, EventTypeStatus(sub.event_name, sub.durable))
        rows.append(SubscriberStatus(sub.id, sub.event_name, sub.durable))
    return BackendStatus(tuple(types.values()), tuple(rows))
