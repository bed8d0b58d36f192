"""The web panel's status samples: one ``bus.status()`` shared by every open page.

Each page polls the status every ``refresh`` seconds. A sample younger than
half of that is served as is, so any number of pages cost the broker one
status per half-interval and process; concurrent requests wait for the same
sample. Each new sample is compared with the one before it (``lag_growing``,
``outbox_growing``) when that one is recent (at most ``4 * refresh`` old):
growth is measured between consecutive samples, as ``hookbus status
--watch`` does, never across a long time when nobody watched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from .._bus import EventBus
from .._status import BusStatus
from .._subscription import Subscription

__all__ = ["StatusSampler"]


class StatusSampler:
    """The latest status of a bus, taken again once older than ``refresh / 2`` seconds."""

    def __init__(self, refresh: float, subscriptions: Iterable[Subscription] | None) -> None:
        self._max_age = refresh / 2
        self._compare_within = refresh * 4
        self._subscriptions = None if subscriptions is None else tuple(subscriptions)
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bus: EventBus | None = None
        self._latest: BusStatus | None = None
        self._taken = 0.0
        self._stale = True

    async def status(self, bus: EventBus) -> BusStatus:
        """The status of ``bus``: the latest sample if fresh, else a new one."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app served again on another loop (tests)
            self._loop, self._lock, self._latest = loop, asyncio.Lock(), None
        async with self._lock:
            now = time.monotonic()
            latest = self._latest if bus is self._bus else None
            if latest is not None and not self._stale and now - self._taken < self._max_age:
                return latest
            previous = latest if now - self._taken <= self._compare_within else None
            status = await bus.status(previous, subscriptions=self._subscriptions)
            self._bus, self._latest, self._taken, self._stale = bus, status, now, False
            return status

    def invalidate(self) -> None:
        """The bus changed (a dead letter retried or discarded): the next request samples
        again (the latest sample stays the one to compare with)."""
        self._stale = True
