"""OpenTelemetry tracing of a bus (``pip install 'hookbus[tracing]'``).

::

    from hookbus import tracing

    bus = EventBus()
    tracing.enable(bus)          # spans go to the global tracer provider (or tracer_provider=)

Each ``emit`` is a PRODUCER span (``emit <event type>``), child of the span
current where ``emit`` is called; its context travels in the envelope as
the CloudEvents distributed tracing extension (``traceparent``,
``tracestate``), across processes in redis and rabbitmq modes. Each delivery
to a handler is a CONSUMER span (``handle <event type>``), child of the
emit's span and current while the handler runs: what the handler emits, the
database calls it makes, are part of the same trace.

Attributes follow OpenTelemetry's messaging semantic conventions:
``messaging.system`` (``hookbus`` in local mode, ``redis`` or ``rabbitmq``:
what carried the event), ``messaging.destination.name`` (the event type),
``messaging.operation.type`` (``send``; ``create`` for an event written to
the outbox, sent later by its relay; ``process`` for a delivery),
``messaging.operation.name`` (``emit``, ``handle``),
``messaging.consumer.group.name`` (the subscriber id),
``messaging.message.id`` (the event id),
``messaging.message.conversation_id`` (the correlation id), and
``hookbus.delivery.attempt``; a failed handler's span has the status
``ERROR``, the exception as an event, and ``error.type``.

Without :func:`enable`, hookbus does nothing of this and never imports
OpenTelemetry: envelopes still pass an inherited ``traceparent`` on to the
events a handler emits.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from ._dead_letter import error_type_name
from ._exceptions import ConfigurationError

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "hookbus.tracing needs the OpenTelemetry API: pip install 'hookbus[tracing]'"
    ) from exc

if TYPE_CHECKING:
    from ._bus import EventBus, Publish, Write
    from ._delivery import Deliverer, Invoker
    from ._envelope import Envelope
    from ._event import Event

__all__ = ["enable"]

_W3C = TraceContextTextMapPropagator()
_enabled: WeakKeyDictionary[EventBus, Tracer] = WeakKeyDictionary()


def enable(bus: EventBus, tracer_provider: TracerProvider | None = None) -> None:
    """Trace ``bus``'s emits and deliveries with ``tracer_provider`` (default: the
    global one, ``opentelemetry.trace.set_tracer_provider``). Call it before or
    after subscribing or starting; calling it again does nothing."""
    if bus in _enabled:
        return
    from . import __version__

    tracer = trace.get_tracer("hookbus", __version__, tracer_provider=tracer_provider)
    _enabled[bus] = tracer
    system = "hookbus" if bus.mode == "local" else bus.mode
    tracing = _Tracing(bus, tracer, system)
    bus._instrument(
        publish=tracing.wrap_publish,
        write=tracing.wrap_write,
        deliverer=lambda deliverer: deliverer.instrument(tracing=tracing.wrap_handler),
    )


class _Tracing:
    """The spans of one bus."""

    def __init__(self, bus: EventBus, tracer: Tracer, system: str) -> None:
        self.bus = bus
        self.tracer = tracer
        self.system = system

    # -- emit ----------------------------------------------------------------------

    def _emit_span(self, envelope: Envelope, operation: str) -> Span:
        """Start the emit's span and write its context into the envelope."""
        span = self.tracer.start_span(
            f"emit {envelope.type}",
            kind=SpanKind.PRODUCER,
            attributes=self._attributes(envelope, operation, "emit"),
        )
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, trace.set_span_in_context(span))
        if "traceparent" in carrier:  # else no trace at all: keep what was inherited
            envelope.set_trace(carrier["traceparent"], carrier.get("tracestate"))
        try:
            self.bus._check_size_again(envelope)
        except BaseException as exc:
            _end(span, exc)
            raise
        return span

    def wrap_publish(self, publish: Publish) -> Publish:
        def traced(envelope: Envelope) -> Awaitable[None] | None:
            span = self._emit_span(envelope, "send")
            try:
                pending = publish(envelope)
            except BaseException as exc:
                _end(span, exc)
                raise
            if pending is None:
                span.end()
                return None
            return _end_after(pending, span)

        return traced

    def wrap_write(self, write: Write) -> Write:
        async def traced(session: Any, envelope: Envelope) -> None:
            span = self._emit_span(envelope, "create")
            await _end_after(write(session, envelope), span)

        return traced

    # -- deliveries ------------------------------------------------------------------

    def wrap_handler(self, deliverer: Deliverer, invoke: Invoker) -> Invoker:
        sub = deliverer.sub
        name = f"handle {sub.event_name}"
        tracer = self.tracer
        common: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.destination.name": sub.event_name,
            "messaging.operation.type": "process",
            "messaging.operation.name": "handle",
            "messaging.consumer.group.name": sub.id,
        }

        async def traced(event: Event) -> Any:
            envelope = deliverer.current
            attributes = dict(common)
            parent = Context()  # an event without trace context starts a trace
            if envelope is not None:
                attributes["messaging.message.id"] = envelope.id
                if envelope.correlation_id is not None:
                    attributes["messaging.message.conversation_id"] = envelope.correlation_id
                if envelope.traceparent is not None:
                    carrier = {"traceparent": envelope.traceparent}
                    if envelope.tracestate is not None:
                        carrier["tracestate"] = envelope.tracestate
                    parent = _W3C.extract(carrier, parent)
            attributes["hookbus.delivery.attempt"] = deliverer.attempt
            with tracer.start_as_current_span(
                name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            ) as span:
                try:
                    return await invoke(event)
                except BaseException as exc:
                    span.set_attribute("error.type", error_type_name(exc))
                    raise

        return traced

    def _attributes(self, envelope: Envelope, operation: str, name: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.destination.name": envelope.type,
            "messaging.operation.type": operation,
            "messaging.operation.name": name,
            "messaging.message.id": envelope.id,
        }
        if envelope.correlation_id is not None:
            attributes["messaging.message.conversation_id"] = envelope.correlation_id
        return attributes


async def _end_after(pending: Awaitable[None], span: Span) -> None:
    try:
        await pending
    except BaseException as exc:
        _end(span, exc)
        raise
    span.end()


def _end(span: Span, exc: BaseException) -> None:
    """End an emit's span that failed with ``exc``."""
    span.record_exception(exc)
    span.set_attribute("error.type", error_type_name(exc))
    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
    span.end()
