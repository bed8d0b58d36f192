"""Gauges of a bus's status for Prometheus (``hookbus.metrics``): what the broker
stores, for every process — unlike the counters, which are this process's.

``hookbus_lag``, ``hookbus_pending``, ``hookbus_oldest_pending_seconds``,
``hookbus_consumers`` and ``hookbus_dead_letters``, labelled ``subscriber`` and
``event_type``; ``hookbus_outbox_waiting`` and
``hookbus_outbox_oldest_seconds``. A figure the backend cannot know (RabbitMQ's
pending) is left out rather than reported as 0. One :meth:`EventBus.status` per
refresh (the FastAPI route refreshes before each scrape).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from ._bus import EventBus
    from ._status import BusStatus

__all__ = ["status_gauges"]

#: name -> (help, the SubscriberStatus field it reads)
_SUBSCRIBER_GAUGES = {
    "hookbus_lag": ("Events stored and not yet delivered to the subscriber.", "lag"),
    "hookbus_pending": ("Events delivered to the subscriber, not acknowledged.", "pending"),
    "hookbus_oldest_pending_seconds": (
        "Age of the oldest event pending for the subscriber.",
        "oldest_pending_age",
    ),
    "hookbus_consumers": ("Live consumers (processes) of the subscriber.", "consumers"),
    "hookbus_dead_letters": ("Dead letters of the subscriber.", "dead_letters"),
}


def status_gauges(bus: EventBus) -> Callable[[], Awaitable[Iterable[Metric]]]:
    """A gauge source (:meth:`BusMetrics.add_source`) reading ``bus.status()``; nothing
    while the bus is not running."""

    async def gauges() -> Iterable[Metric]:
        if not bus.running:
            return []
        return families(await bus.status())

    return gauges


def families(status: BusStatus) -> list[Metric]:
    """The gauges of one status."""
    found: list[Metric] = []
    for name, (text, attribute) in _SUBSCRIBER_GAUGES.items():
        family = GaugeMetricFamily(name, text, labels=["subscriber", "event_type"])
        for row in status.subscribers:
            value = getattr(row, attribute)
            if value is not None:
                family.add_metric([row.subscriber, row.event_type], value)
        found.append(family)
    if status.outbox is not None:
        waiting = GaugeMetricFamily("hookbus_outbox_waiting", "Outbox rows not relayed yet.")
        waiting.add_metric([], status.outbox.waiting)
        oldest = GaugeMetricFamily(
            "hookbus_outbox_oldest_seconds", "Age of the oldest outbox row waiting."
        )
        oldest.add_metric([], status.outbox.oldest_age or 0.0)
        found.extend((waiting, oldest))
    return found
