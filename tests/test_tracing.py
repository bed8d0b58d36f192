"""OpenTelemetry tracing (hookbus.tracing) in one process, with the SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import create_async_engine

from hookbus import Envelope, Event, EventBus, current_envelope, tracing
from hookbus._ids import new_event_id
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import create_tables
from hookbus.testing import Recorder, test_settings


class Ordered(Event, name="tracing.ordered"):
    order_id: int


class Shipped(Event, name="tracing.shipped"):
    order_id: int


def in_memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def traced_bus(**options: Any) -> tuple[EventBus, TracerProvider, InMemorySpanExporter]:
    provider, exporter = in_memory()
    bus = EventBus(mode="local", settings=test_settings(**options))
    tracing.enable(bus, provider)
    return bus, provider, exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_emit_and_handler_spans_form_one_trace_with_the_messaging_attributes() -> None:
    bus, provider, exporter = traced_bus()
    seen: dict[str, Envelope] = {}

    def fail_once(event: Ordered, attempt: int) -> None:
        if attempt == 1:
            raise ValueError("stock unknown")

    @bus.on(Ordered, name="warehouse")
    async def ship(event: Ordered) -> None:
        envelope = current_envelope()
        assert envelope is not None
        seen["ordered"] = envelope
        await bus.emit(Shipped(order_id=event.order_id))

    shipped = Recorder[Shipped]()
    bus.subscribe(Shipped, shipped, name="mailer")
    bus.subscribe(Ordered, Recorder[Ordered](fail_once), name="flaky")

    @bus.on(Shipped, name="audit")
    async def audit(event: Shipped) -> None:
        envelope = current_envelope()
        assert envelope is not None
        seen["shipped"] = envelope

    async with bus:
        with provider.get_tracer("tests").start_as_current_span("POST /orders") as request:
            event_id = await bus.emit(Ordered(order_id=7))
        await bus.drain(10)
    spans = exporter.get_finished_spans()

    [emit] = named(spans, "emit tracing.ordered")
    assert emit.kind is SpanKind.PRODUCER
    assert emit.parent is not None
    assert emit.parent.span_id == request.get_span_context().span_id
    assert emit.attributes == {
        "messaging.system": "hookbus",
        "messaging.destination.name": "tracing.ordered",
        "messaging.operation.type": "send",
        "messaging.operation.name": "emit",
        "messaging.message.id": event_id,
    }
    trace_id = request.get_span_context().trace_id
    # the envelope carries the emit's context (CloudEvents distributed tracing extension)
    assert emit.context is not None
    traceparent = seen["ordered"].traceparent or ""
    assert traceparent.startswith(f"00-{trace_id:032x}-{emit.context.span_id:016x}-")

    handles = named(spans, "handle tracing.ordered")
    assert len(handles) == 3  # warehouse, flaky twice
    for span in handles:
        assert span.kind is SpanKind.CONSUMER
        assert span.context is not None
        assert span.context.trace_id == trace_id
        assert span.parent is not None
        assert span.parent.span_id == emit.context.span_id
        assert span.parent.is_remote  # extracted from the envelope
        attributes = dict(span.attributes or {})
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.operation.name"] == "handle"
        assert attributes["messaging.destination.name"] == "tracing.ordered"
        assert attributes["messaging.message.id"] == event_id
    by_attempt = {
        (s.attributes or {})["hookbus.delivery.attempt"]: s
        for s in handles
        if (s.attributes or {})["messaging.consumer.group.name"] == "flaky"
    }
    assert by_attempt[1].status.status_code is StatusCode.ERROR
    assert (by_attempt[1].attributes or {})["error.type"] == "ValueError"
    assert [e.name for e in by_attempt[1].events] == ["exception"]
    assert by_attempt[2].status.status_code is StatusCode.UNSET
    assert "error.type" not in (by_attempt[2].attributes or {})

    # what the warehouse handler emitted: a child of its span, same trace, its cause named
    [warehouse] = [
        s for s in handles if (s.attributes or {})["messaging.consumer.group.name"] == "warehouse"
    ]
    [child_emit] = named(spans, "emit tracing.shipped")
    assert child_emit.parent is not None
    assert warehouse.context is not None
    assert child_emit.parent.span_id == warehouse.context.span_id
    assert (child_emit.attributes or {})["messaging.message.conversation_id"] == event_id
    for span in named(spans, "handle tracing.shipped"):
        assert span.context is not None
        assert span.parent is not None
        assert child_emit.context is not None
        assert span.context.trace_id == trace_id
        assert span.parent.span_id == child_emit.context.span_id
    assert seen["shipped"].causation_id == event_id
    assert seen["shipped"].correlation_id == event_id


async def test_an_event_without_trace_context_starts_a_trace_of_its_own() -> None:
    bus, _, exporter = traced_bus()
    bus.subscribe(Ordered, Recorder[Ordered](), name="books")
    async with bus:
        await bus.emit(Ordered(order_id=1))  # no span current: the emit's span is a root
        await bus.drain(10)
    [emit] = named(exporter.get_finished_spans(), "emit tracing.ordered")
    [handle] = named(exporter.get_finished_spans(), "handle tracing.ordered")
    assert emit.parent is None
    assert emit.context is not None
    assert handle.parent is not None
    assert handle.parent.span_id == emit.context.span_id


async def test_an_emit_into_the_outbox_is_a_create_span_continued_by_the_relayed_delivery(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engine = create_async_engine(url)
    await create_tables(engine)
    provider, exporter = in_memory()
    bus = EventBus(
        mode="local",
        outbox_url=url,
        settings=test_settings(outbox=OutboxOptions(poll_interval=0.02)),
    )
    tracing.enable(bus, provider)
    handler = Recorder[Ordered]()
    bus.subscribe(Ordered, handler, name="books")
    try:
        async with bus:
            async with engine.begin() as connection:
                await bus.emit(Ordered(order_id=3), session=connection)
            await handler.wait_for(1)
    finally:
        await engine.dispose()
    [emit] = named(exporter.get_finished_spans(), "emit tracing.ordered")
    [handle] = named(exporter.get_finished_spans(), "handle tracing.ordered")
    assert (emit.attributes or {})["messaging.operation.type"] == "create"
    assert emit.context is not None
    assert handle.parent is not None
    assert handle.parent.span_id == emit.context.span_id


def test_without_enable_hookbus_never_imports_opentelemetry_or_prometheus() -> None:
    script = """
import asyncio, sys
from hookbus import Event, EventBus
from hookbus.testing import Recorder

class Ping(Event, name="tracing.ping"):
    n: int

async def main():
    bus = EventBus(mode="local")
    handler = Recorder()
    bus.subscribe(Ping, handler, name="p")
    async with bus:
        await bus.emit(Ping(n=1))
        await bus.drain(5)
    assert len(handler.events) == 1

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "prometheus_client")))
print(loaded)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


async def test_enable_twice_installs_once() -> None:
    bus, provider, exporter = traced_bus()
    tracing.enable(bus, provider)
    bus.subscribe(Ordered, Recorder[Ordered](), name="books")
    async with bus:
        await bus.emit(Ordered(order_id=1))
        await bus.drain(10)
    assert sorted(s.name for s in exporter.get_finished_spans()) == [
        "emit tracing.ordered",
        "handle tracing.ordered",
    ]


async def test_a_plain_handlers_thread_sees_its_span_and_its_emit_sync_is_a_child() -> None:
    bus, _, exporter = traced_bus()

    @bus.on(Ordered, name="invoicer")
    def invoice(event: Ordered) -> None:  # runs in a worker thread
        bus.emit_sync(Shipped(order_id=event.order_id))

    shipped = Recorder[Shipped]()
    bus.subscribe(Shipped, shipped, name="mailer")
    async with bus:
        await bus.emit(Ordered(order_id=5))
        await shipped.wait_for(1)
        await bus.drain(10)
    spans = exporter.get_finished_spans()
    [handle] = named(spans, "handle tracing.ordered")
    [child_emit] = named(spans, "emit tracing.shipped")
    [child_handle] = named(spans, "handle tracing.shipped")
    assert handle.context is not None
    assert child_emit.context is not None
    assert child_emit.parent is not None
    assert child_emit.parent.span_id == handle.context.span_id
    assert child_emit.context.trace_id == handle.context.trace_id
    assert child_handle.parent is not None
    assert child_handle.parent.span_id == child_emit.context.span_id


async def test_an_untraced_senders_event_is_delivered_in_a_trace_of_its_own() -> None:
    bus, provider, exporter = traced_bus()
    handler = Recorder[Ordered]()
    bus.subscribe(Ordered, handler, name="books")
    with provider.get_tracer("tests").start_as_current_span("startup"):
        await bus.start()  # the workers' tasks are created while a span is current
    try:
        # as a process that does not trace would send it: no traceparent
        bus._backend.publish(Envelope(new_event_id(), Ordered(order_id=9), "elsewhere"))
        await handler.wait_for(1)
    finally:
        await bus.stop()
    [handle] = named(exporter.get_finished_spans(), "handle tracing.ordered")
    assert handle.parent is None
