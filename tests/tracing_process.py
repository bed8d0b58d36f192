"""One process of the cross-process tracing test (redis mode), traced with the
OpenTelemetry SDK's in-memory exporter; at the end it writes its spans as JSON.

    python tracing_process.py work URL PREFIX OUT.json   # prints "ready" once consuming
    python tracing_process.py emit URL PREFIX OUT.json

The worker's ``warehouse`` subscriber fails the first attempt at an ``Ordered``
event, then emits ``Shipped``; its ``audit`` subscriber records the envelope of
``Shipped`` (its causation and correlation ids) and ends the worker.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hookbus import Event, current_delivery, current_envelope, tracing
from redis_bus import redis_bus


class Ordered(Event, name="xtrace.ordered"):
    order_id: int


class Shipped(Event, name="xtrace.shipped"):
    order_id: int


def span_record(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "parent_is_remote": None if span.parent is None else span.parent.is_remote,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


async def work(url: str, prefix: str, provider: TracerProvider) -> dict[str, Any]:
    bus = redis_bus(url, prefix)
    tracing.enable(bus, provider)
    done = asyncio.Event()
    audited: dict[str, Any] = {}

    @bus.on(Ordered, name="warehouse")
    async def ship(event: Ordered) -> None:
        delivery = current_delivery()
        assert delivery is not None
        if delivery.attempt == 1:
            raise ConnectionError("carrier unreachable")
        await bus.emit(Shipped(order_id=event.order_id))

    @bus.on(Shipped, name="audit")
    async def audit(event: Shipped) -> None:
        envelope = current_envelope()
        assert envelope is not None
        audited.update(
            id=envelope.id,
            causation_id=envelope.causation_id,
            correlation_id=envelope.correlation_id,
        )
        done.set()

    async with bus:
        print("ready", flush=True)
        async with asyncio.timeout(30):
            await done.wait()
        await bus.drain(10)
    return {"shipped": audited}


async def emit(url: str, prefix: str, provider: TracerProvider) -> dict[str, Any]:
    bus = redis_bus(url, prefix)
    tracing.enable(bus, provider)
    async with bus:
        with provider.get_tracer("shop").start_as_current_span("POST /orders"):
            event_id = await bus.emit(Ordered(order_id=42))
    return {"ordered": event_id}


def main() -> None:
    role, url, prefix, out = sys.argv[1:5]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = asyncio.run((work if role == "work" else emit)(url, prefix, provider))
    result["spans"] = [span_record(s) for s in exporter.get_finished_spans()]
    Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
