"""Prometheus metrics (hookbus.metrics): counters, outcomes, handler durations, the route."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from hookbus import Event, EventBus, RetryPolicy, current_envelope, metrics
from hookbus.fastapi import bus_lifespan, metrics_router
from hookbus.testing import Recorder, test_settings
from redis_bus import redis_bus
from web_server import serving


class Paid(Event, name="metrics.paid"):
    order_id: int


class Seen(Event, name="metrics.seen", durable=False):
    page: str


def local_bus() -> EventBus:
    return EventBus(mode="local", settings=test_settings(retry=RetryPolicy(2, base_delay=0.001)))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


async def test_counters_by_type_subscriber_and_outcome() -> None:
    bus = local_bus()
    registry = CollectorRegistry()
    metrics.enable(bus, registry)  # before subscribing
    ok = Recorder[Paid]()
    bus.subscribe(Paid, ok, name="books")

    def fail_first(event: Paid, attempt: int) -> None:
        if event.order_id == 0 or attempt == 1:
            raise RuntimeError("refused")  # order 0: always, so dead-lettered

    flaky = Recorder[Paid](fail_first)
    bus.subscribe(Paid, flaky, name="mailer")

    def always(event: Seen, attempt: int) -> None:
        raise RuntimeError("no")

    bus.subscribe(Seen, Recorder[Seen](always), name="tracker")
    async with bus:
        for order_id in range(4):
            await bus.emit(Paid(order_id=order_id))
        await bus.emit(Seen(page="/"))
        await bus.drain(10)

    assert value(registry, "hookbus_emitted_total", event_type="metrics.paid") == 4
    assert value(registry, "hookbus_emitted_total", event_type="metrics.seen") == 1

    def handled(subscriber: str, event_type: str, outcome: str) -> float:
        return value(
            registry,
            "hookbus_handled_total",
            subscriber=subscriber,
            event_type=event_type,
            outcome=outcome,
        )

    assert handled("books", "metrics.paid", "ok") == 4
    assert handled("books", "metrics.paid", "retried") == 0
    assert handled("mailer", "metrics.paid", "ok") == 3
    assert handled("mailer", "metrics.paid", "retried") == 4  # every first attempt
    assert handled("mailer", "metrics.paid", "dead_lettered") == 1
    assert handled("tracker", "metrics.seen", "dropped") == 1  # ephemeral: never retried
    assert handled("tracker", "metrics.seen", "ok") == 0
    text = generate_latest(registry).decode()
    assert 'hookbus_handled_total{event_type="metrics.paid",outcome="skipped",' in text


async def test_handler_durations_count_every_delivery() -> None:
    bus = local_bus()
    registry = CollectorRegistry()

    async def slow(event: Paid) -> None:
        if event.order_id == 0:
            await asyncio.sleep(0.02)

    bus.subscribe(Paid, slow, name="slow")
    async with bus:
        metrics.enable(bus, registry, sample_every=1)  # after start: installed on the worker
        late = Recorder[Paid]()
        bus.subscribe(Paid, late, name="late")  # after enable: timed too
        for order_id in range(50):
            await bus.emit(Paid(order_id=order_id))
        await bus.drain(10)

    def duration(name: str, subscriber: str, **labels: str) -> float:
        return value(
            registry,
            f"hookbus_handler_duration_seconds_{name}",
            subscriber=subscriber,
            event_type="metrics.paid",
            **labels,
        )

    for subscriber in ("slow", "late"):
        assert duration("count", subscriber) == 50
        assert duration("bucket", subscriber, le="+Inf") == 50
    assert duration("sum", "slow") >= 0.02
    assert duration("bucket", "slow", le="0.01") == 49  # one delivery slept 20 ms
    assert duration("bucket", "slow", le="0.025") == 50


async def test_sampled_batches_still_count_every_delivery() -> None:
    bus = local_bus()
    registry = CollectorRegistry()
    handler = Recorder[Paid]()
    bus.subscribe(Paid, handler, name="fast")
    metrics.enable(bus, registry, sample_every=16)
    async with bus:
        for order_id in range(1000):  # a burst: batches of many deliveries
            await bus.emit(Paid(order_id=order_id))
        await bus.drain(10)
    labels = {"subscriber": "fast", "event_type": "metrics.paid"}
    assert value(registry, "hookbus_handler_duration_seconds_count", **labels) == 1000
    assert value(registry, "hookbus_handler_duration_seconds_sum", **labels) > 0


async def test_idempotent_duplicates_are_counted_as_skipped() -> None:
    bus = local_bus()
    registry = CollectorRegistry()
    metrics.enable(bus, registry)
    seen: list[object] = []

    async def once(event: Paid) -> None:
        seen.append(current_envelope())

    bus.subscribe(Paid, once, name="once", idempotent=True)
    async with bus:
        await bus.emit(Paid(order_id=1))
        await bus.drain(10)
        envelope = seen[0]
        bus._backend.publish(envelope)  # type: ignore[arg-type]  # the same event again
        await bus.drain(10)
    labels = {"subscriber": "once", "event_type": "metrics.paid"}
    assert value(registry, "hookbus_handled_total", outcome="ok", **labels) == 1
    assert value(registry, "hookbus_handled_total", outcome="skipped", **labels) == 1
    assert len(seen) == 1


def test_enable_twice_gives_the_same_collector_and_a_second_bus_needs_its_own_registry() -> None:
    registry = CollectorRegistry()
    bus = local_bus()
    first = metrics.enable(bus, registry)
    assert metrics.enable(bus, registry) is first
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        metrics.enable(local_bus(), registry)
    with pytest.raises(ValueError, match="every"):
        metrics.enable(local_bus(), CollectorRegistry(), sample_every=0)


async def test_sources_are_refreshed_and_a_failing_one_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hookbus")
    bus = local_bus()
    registry = CollectorRegistry()
    collector = metrics.enable(bus, registry)
    answers: list[float | None] = [3.0, None]  # None: the source fails

    async def backlog() -> Iterable[Metric]:
        answer = answers.pop(0)
        if answer is None:
            raise RuntimeError("Redis down")
        gauge = GaugeMetricFamily("hookbus_test_backlog", "Events waiting.")
        gauge.add_metric([], answer)
        return [gauge]

    collector.add_source(backlog)
    assert registry.get_sample_value("hookbus_test_backlog") is None  # not refreshed yet
    await collector.refresh()
    assert value(registry, "hookbus_test_backlog") == 3
    await collector.refresh()
    assert registry.get_sample_value("hookbus_test_backlog") is None
    assert "Redis down" in caplog.text


async def test_the_fastapi_route_serves_the_registry_at_its_path() -> None:
    bus = local_bus()
    registry = CollectorRegistry()
    bus.subscribe(Paid, Recorder[Paid](), name="books")
    app = FastAPI(lifespan=bus_lifespan(bus))
    app.include_router(metrics_router(bus, path="/internal/metrics", registry=registry))

    @app.post("/pay/{order_id}")
    async def pay(order_id: int) -> None:
        await bus.emit(Paid(order_id=order_id))
        await bus.drain(5)

    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        assert (await client.post("/pay/7")).status_code == 200
        response = await client.get("/internal/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'hookbus_emitted_total{event_type="metrics.paid"} 1.0' in response.text
    assert (
        'hookbus_handled_total{event_type="metrics.paid",outcome="ok",subscriber="books"} 1.0'
        in response.text
    )


@pytest.mark.redis
async def test_redis_mode_counts_deliveries_and_times_handlers(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    registry = CollectorRegistry()
    metrics.enable(bus, registry)

    def fail_once(event: Paid, attempt: int) -> None:
        if attempt == 1:
            raise RuntimeError("first try fails")

    handler = Recorder[Paid](fail_once)
    bus.subscribe(Paid, handler, name="books")
    async with bus:
        for order_id in range(5):
            await bus.emit(Paid(order_id=order_id))
        await handler.wait_for(5)
        await bus.drain(10)
    labels = {"subscriber": "books", "event_type": "metrics.paid"}
    assert value(registry, "hookbus_emitted_total", event_type="metrics.paid") == 5
    assert value(registry, "hookbus_handled_total", outcome="ok", **labels) == 5
    assert value(registry, "hookbus_handled_total", outcome="retried", **labels) == 5
    assert value(registry, "hookbus_handler_duration_seconds_count", **labels) == 10


@pytest.mark.redis
async def test_status_gauges_are_read_from_the_broker(redis_url: str, redis_prefix: str) -> None:
    """Events another process emitted while nobody consumed: the lag gauge shows them,
    and the dead letters of a subscriber that gave up."""
    from dataclasses import replace

    emitter = redis_bus(redis_url, redis_prefix)
    emitter.register(Paid)
    app_bus = redis_bus(redis_url, redis_prefix)

    def always(event: Paid, attempt: int) -> None:
        raise RuntimeError("the accounting is down")

    app_bus.subscribe(Paid, Recorder[Paid](always), name="books")
    async with app_bus:  # creates the group, dead-letters what it gets, then stops
        await emitter.start()
        await emitter.emit(Paid(order_id=0))
        await app_bus.drain(10)
    for order_id in range(1, 4):  # nobody consumes these
        await emitter.emit(Paid(order_id=order_id))
    await emitter.stop()

    settings = app_bus.settings
    watcher = EventBus(settings=settings.with_options(redis=replace(settings.redis, consume=False)))
    watcher.subscribe(Paid, Recorder[Paid](), name="books")
    registry = CollectorRegistry()
    app = FastAPI(lifespan=bus_lifespan(watcher))
    app.include_router(metrics_router(watcher, registry=registry))
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        text = (await client.get("/metrics")).text
    labels = 'event_type="metrics.paid",subscriber="books"'
    assert f"hookbus_lag{{{labels}}} 3.0" in text
    assert f"hookbus_dead_letters{{{labels}}} 1.0" in text
    assert f"hookbus_consumers{{{labels}}} 0.0" in text
