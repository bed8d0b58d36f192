"""Handler durations kept as plain numbers: the histogram behind
``hookbus_handler_duration_seconds`` (see :mod:`hookbus.metrics`).

A :class:`HandlerTimer` belongs to one subscription in one process. It is
written only by the task delivering that subscription, without locks: a
bucket count per bound and a running total. Nothing of it exists until
metrics are enabled, and a delivery path without a timer runs no code of it.

Two ways in:

* :meth:`HandlerTimer.timed` wraps an invoker and times every call
  (deliveries one at a time: broker modes, retries, idempotent subscribers);
* :meth:`~hookbus._delivery.Deliverer.deliver_queue_sampled`, the local
  mode's batch loop, times one delivery in :attr:`HandlerTimer.every` and
  counts it for its run of ``every`` deliveries, and adds the time of the
  whole batch to the total: there a clock read per delivery would cost more
  than the delivery.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._delivery import Invoker
    from ._event import Event

__all__ = ["DEFAULT_BUCKETS", "HandlerTimer"]

#: Upper bounds (seconds) of the histogram's buckets: from half a millisecond
#: (an in-memory handler) to a minute (a slow call to another service).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class HandlerTimer:
    """A histogram of one subscription's handler durations (seconds)."""

    __slots__ = ("bounds", "counts", "every", "total")

    def __init__(self, bounds: Iterable[float] = DEFAULT_BUCKETS, every: int = 32) -> None:
        self.bounds = tuple(sorted(float(b) for b in bounds))
        if not self.bounds or self.bounds[0] <= 0:
            raise ValueError("histogram buckets must be positive numbers of seconds")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        #: Observations per bucket; the last one is above every bound (+Inf).
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        #: In a batch of queued deliveries, one in ``every`` is timed.
        self.every = every

    def observe(self, seconds: float, weight: int = 1) -> None:
        """Count ``weight`` deliveries of ``seconds`` each in the buckets (not the total)."""
        self.counts[bisect_left(self.bounds, seconds)] += weight

    def timed(self, invoke: Invoker) -> Invoker:
        """``invoke``, timing every call (bucket and total)."""
        clock = perf_counter
        bounds = self.bounds
        counts = self.counts

        async def run_timed(event: Event) -> Any:
            start = clock()
            try:
                return await invoke(event)
            finally:
                elapsed = clock() - start
                counts[bisect_left(bounds, elapsed)] += 1
                self.total += elapsed

        return run_timed

    def snapshot(self) -> tuple[list[tuple[float, int]], float]:
        """Cumulative buckets as ``(upper bound, count)`` (``inf`` last: the count of
        every observation), and the sum."""
        buckets: list[tuple[float, int]] = []
        running = 0
        counts = list(self.counts)  # one copy: it may be read from a scraping thread
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets, self.total
