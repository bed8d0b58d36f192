"""Prometheus metrics of a bus (``pip install 'hookbus[metrics]'``).

::

    from hookbus import metrics

    bus = EventBus()
    metrics.enable(bus)                       # into prometheus_client's default registry

    # served by hookbus.fastapi.metrics_router(bus), or by prometheus_client itself:
    prometheus_client.generate_latest()       # or start_http_server(9100)

What a process counts:

* ``hookbus_emitted_total{event_type}``: events its ``emit`` accepted (handed to
  the backend, or written to the outbox with ``session=``);
* ``hookbus_handled_total{subscriber,event_type,outcome}``: deliveries to its
  subscribers by outcome: ``ok``, ``retried`` (the attempt failed, a retry is
  scheduled), ``dead_lettered``, ``dropped`` (ephemeral: the queue was full or
  the handler failed) and ``skipped`` (an idempotent subscriber had completed
  the event);
* ``hookbus_handler_duration_seconds{subscriber,event_type}``: how long its
  handlers ran (a histogram).

Nothing is counted per event with a lock: the bus's own counters (those of
:meth:`EventBus.statistics`) are read when Prometheus scrapes, emits are
counted in a dict by event type, and handler times are kept in plain
histograms (:mod:`hookbus._timing`), in local mode's batch loop by sampling
one delivery in ``sample_every``. Until :func:`enable` is called, none of it
runs.

Every process exposes its own series; Prometheus adds them up across
processes (``sum by (event_type) (rate(hookbus_emitted_total[5m]))``).

Gauges of what the broker stores for every process — lag, pending, live
consumers and dead letters per subscriber, the outbox's backlog — come from
:meth:`EventBus.status` (:mod:`hookbus._status_gauges`), read by
:meth:`BusMetrics.refresh`, which the FastAPI route awaits before each
scrape. Other asynchronous metrics plug in the same way with
:meth:`BusMetrics.add_source`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from ._exceptions import ConfigurationError
from ._logging import log_extra
from ._timing import DEFAULT_BUCKETS, HandlerTimer

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "hookbus.metrics needs prometheus-client: pip install 'hookbus[metrics]'"
    ) from exc

from ._status_gauges import status_gauges

if TYPE_CHECKING:
    from ._bus import EventBus, Publish, Write
    from ._delivery import Deliverer
    from ._envelope import Envelope

__all__ = ["DEFAULT_BUCKETS", "OUTCOMES", "BusMetrics", "GaugeSource", "enable"]

logger = logging.getLogger("hookbus")

#: The values of the ``outcome`` label of ``hookbus_handled_total``.
OUTCOMES = ("ok", "retried", "dead_lettered", "dropped", "skipped")

#: An async function returning metric families (gauges of a status, say), awaited
#: by :meth:`BusMetrics.refresh`.
GaugeSource = Callable[[], Awaitable[Iterable[Metric]]]

_enabled: WeakKeyDictionary[EventBus, BusMetrics] = WeakKeyDictionary()


def enable(
    bus: EventBus,
    registry: CollectorRegistry | None = None,
    *,
    buckets: Iterable[float] = DEFAULT_BUCKETS,
    sample_every: int = 32,
    status: bool = True,
) -> BusMetrics:
    """Count ``bus``'s emits and deliveries, and register its collector in
    ``registry`` (default: prometheus_client's default registry); return it.

    Call it before or after subscribing, before or after starting the bus.
    Calling it again returns the same collector (registered in ``registry``
    too, if it is another). ``buckets``: upper bounds (seconds) of the
    handler-duration histogram. ``sample_every``: in local mode's batch loop,
    one delivery in that many is timed and stands for the others (1: every
    delivery, which costs in-process throughput about a tenth); deliveries
    made one at a time are always timed. ``status``: also expose the gauges of
    :meth:`EventBus.status` (lag, pending, consumers, dead letters per subscriber;
    the outbox's backlog), read from the broker at each :meth:`BusMetrics.refresh`
    (:mod:`hookbus._status_gauges`).
    """
    metrics = _enabled.get(bus)
    if metrics is None:
        metrics = BusMetrics(bus, buckets, sample_every)
        bus._instrument(
            publish=metrics._count_publish,
            write=metrics._count_write,
            deliverer=metrics._install_timer,
        )
        if status:
            metrics.add_source(status_gauges(bus))
        _enabled[bus] = metrics
    metrics.register(REGISTRY if registry is None else registry)
    return metrics


class BusMetrics(Collector):
    """The Prometheus collector of one bus in this process (see :func:`enable`)."""

    def __init__(self, bus: EventBus, buckets: Iterable[float], sample_every: int) -> None:
        self._bus = bus
        self._buckets = tuple(buckets)
        self._every = sample_every
        HandlerTimer(self._buckets, sample_every)  # checks both now
        self._emitted: defaultdict[str, int] = defaultdict(int)
        self._timers: dict[tuple[str, str], HandlerTimer] = {}
        self._sources: list[GaugeSource] = []
        self._gauges: list[Metric] = []
        self._registries: list[CollectorRegistry] = []

    def register(self, registry: CollectorRegistry) -> None:
        """Register in ``registry`` (once)."""
        if not any(r is registry for r in self._registries):
            registry.register(self)
            self._registries.append(registry)

    # -- what enable installs ------------------------------------------------------

    def _count_publish(self, publish: Publish) -> Publish:
        counts = self._emitted

        def counted(envelope: Envelope) -> Awaitable[None] | None:
            pending = publish(envelope)
            if pending is None:
                counts[envelope.type] += 1
                return None
            return _count_after(pending, counts, envelope.type)

        return counted

    def _count_write(self, write: Write) -> Write:
        counts = self._emitted

        async def counted(session: Any, envelope: Envelope) -> None:
            await write(session, envelope)
            counts[envelope.type] += 1

        return counted

    def _install_timer(self, deliverer: Deliverer) -> None:
        sub = deliverer.sub
        timer = self._timers.get((sub.id, sub.event_name))
        if timer is None:
            timer = HandlerTimer(self._buckets, self._every)
            self._timers[sub.id, sub.event_name] = timer
        deliverer.instrument(timer=timer)

    # -- gauges from elsewhere -------------------------------------------------------

    def add_source(self, source: GaugeSource) -> None:
        """Expose the metric families that ``source()`` returns, as of the last
        :meth:`refresh` (the FastAPI route refreshes before each scrape)."""
        self._sources.append(source)

    async def refresh(self, timeout: float = 5.0) -> None:
        """Await every source (each within ``timeout`` seconds); a source that fails
        is logged and left out until it answers again."""
        gauges: list[Metric] = []
        for source in self._sources:
            try:
                async with asyncio.timeout(timeout):
                    gauges.extend(await source())
            except Exception as exc:
                logger.warning(
                    "metrics source %r failed: %r",
                    source,
                    exc,
                    extra=log_extra(self._bus.mode),
                )
        self._gauges = gauges

    # -- the collector -------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return [_emitted_family(), _handled_family(), _duration_family()]

    def collect(self) -> Iterable[Metric]:
        """The counters as they are now (it may run in a scraping thread: it only reads)."""
        emitted = _emitted_family()
        for name, count in sorted(self._emitted.items()):
            emitted.add_metric([name], count)
        yield emitted
        yield self._handled()
        durations = _duration_family()
        for (subscriber, event_type), timer in sorted(self._timers.items()):
            buckets, total = timer.snapshot()
            durations.add_metric([subscriber, event_type], [(_le(b), n) for b, n in buckets], total)
        yield durations
        yield from self._gauges

    def _handled(self) -> Metric:
        handled = _handled_family()
        durable = {(s.id, s.event_name): s.durable for s in self._bus.subscriptions}
        for stats in self._bus.statistics():
            labels = [stats.subscriber, stats.event_type]
            dropped = stats.dropped
            if not durable.get((stats.subscriber, stats.event_type), True):
                dropped += stats.failed  # an ephemeral event's failure is never retried
            for outcome, count in zip(
                OUTCOMES,
                (stats.handled, stats.retried, stats.dead_lettered, dropped, stats.skipped),
                strict=True,
            ):
                handled.add_metric([*labels, outcome], count)
        return handled


async def _count_after(pending: Awaitable[None], counts: defaultdict[str, int], name: str) -> None:
    await pending
    counts[name] += 1


def _le(bound: float) -> str:
    """A bucket's bound as Prometheus's own histograms write it."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def _emitted_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "hookbus_emitted", "Events accepted by emit in this process.", labels=["event_type"]
    )


def _handled_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "hookbus_handled",
        "Deliveries to the subscribers of this process, by outcome.",
        labels=["subscriber", "event_type", "outcome"],
    )


def _duration_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "hookbus_handler_duration_seconds",
        "How long the handlers of this process ran.",
        labels=["subscriber", "event_type"],
    )
