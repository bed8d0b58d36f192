"""Metrics and tracing in rabbitmq mode, on a real broker."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hookbus import Event, metrics, tracing
from hookbus.testing import Recorder
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus

pytestmark = pytest.mark.rabbitmq


class Refunded(Event, name="rmqobs.refunded"):
    n: int


async def test_deliveries_are_counted_timed_and_traced(rabbitmq_server: RabbitMQServer) -> None:
    bus = rabbitmq_bus(rabbitmq_server.url, new_prefix())
    registry = CollectorRegistry()
    metrics.enable(bus, registry)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(bus, provider)

    def fail_once(event: Refunded, attempt: int) -> None:
        if attempt == 1:
            raise RuntimeError("ledger locked")

    handler = Recorder[Refunded](fail_once)
    bus.subscribe(Refunded, handler, name="ledger")
    async with bus:
        event_id = await bus.emit(Refunded(n=1))
        await handler.wait_for(1)
        await bus.drain(20)

    labels = {"subscriber": "ledger", "event_type": "rmqobs.refunded"}
    sample = registry.get_sample_value
    assert sample("hookbus_emitted_total", {"event_type": "rmqobs.refunded"}) == 1
    assert sample("hookbus_handled_total", {**labels, "outcome": "ok"}) == 1
    assert sample("hookbus_handled_total", {**labels, "outcome": "retried"}) == 1
    assert sample("hookbus_handler_duration_seconds_count", labels) == 2

    spans = exporter.get_finished_spans()
    [emit] = [s for s in spans if s.name == "emit rmqobs.refunded"]
    handles = [s for s in spans if s.name == "handle rmqobs.refunded"]
    assert emit.context is not None
    assert (emit.attributes or {})["messaging.system"] == "rabbitmq"
    assert sorted(str((s.attributes or {})["hookbus.delivery.attempt"]) for s in handles) == [
        "1",
        "2",
    ]
    for span in handles:  # the retry travelled through a retry queue: still the same parent
        attributes = span.attributes or {}
        assert span.parent is not None
        assert span.parent.span_id == emit.context.span_id
        assert attributes["messaging.system"] == "rabbitmq"
        assert attributes["messaging.consumer.group.name"] == "ledger"
        assert attributes["messaging.message.id"] == event_id
