"""The envelope every event travels in, and its CloudEvents 1.0 JSON encoding.

On the wire an event is one JSON object in CloudEvents *structured* mode::

    {"specversion": "1.0", "id": "<uuidv7>", "source": "hookbus", "type": "sale_closed",
     "time": "2026-11-25T10:00:00.123Z", "datacontenttype": "application/json",
     "eventversion": 1, "correlationid": "...", "traceparent": "...",
     "data": {...the event fields...}}

``traceparent`` and ``tracestate`` are the CloudEvents distributed tracing
extension (W3C Trace Context): :mod:`hookbus.tracing` writes them at emit
and continues the trace in each handler.

JSON only, never pickle, so programs in any language can read and write it.
``eventversion`` (a CloudEvents extension attribute, an integer) is the
version of the event class that wrote ``data``; an envelope without it is
version 1. Decoding upgrades older versions with the event's upcasters
(:mod:`hookbus._upcast`) before validating.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import SchemaValidator, from_json
from pydantic_core import core_schema as cs

from ._event import Event, resolve_event_type
from ._exceptions import InvalidEnvelopeError, UnknownEventError, error_text
from ._ids import id_time
from ._size import check_size, size_plan
from ._upcast import upcast

__all__ = ["Envelope", "decode_envelope"]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
VERSION_ATTRIBUTE = "eventversion"
_REQUIRED = ("specversion", "id", "source", "type")


class Envelope:
    """One emitted event with its metadata (CloudEvents attributes).

    ``id`` is unique and sortable; ``type`` is the event name; ``event`` is the
    :class:`Event` instance. ``correlation_id`` links every event caused,
    directly or not, by the same first event; ``causation_id`` is the id of
    the event whose handler emitted this one. ``traceparent`` and
    ``tracestate`` carry the emitter's trace context (W3C Trace Context).
    """

    __slots__ = (
        "_encoded",
        "_time",
        "_tracestate",
        "causation_id",
        "correlation_id",
        "event",
        "id",
        "source",
        "traceparent",
        "type",
    )

    def __init__(
        self,
        id: str,
        event: Event,
        source: str,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        time: datetime | None = None,
    ) -> None:
        self.id = id
        self.event = event
        self.type = event.__event_name__
        self.source = source
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.traceparent = traceparent
        self._time = time
        self._encoded: bytes | None = None

    @property
    def durable(self) -> bool:
        """Whether the event is critical (stored, retried) or ephemeral."""
        return self.event.__event_durable__

    @property
    def version(self) -> int:
        """The version of the event's payload: its class's (the ``eventversion`` attribute)."""
        return self.event.__event_version__

    @property
    def time(self) -> datetime:
        """When the event was emitted (UTC)."""
        if self._time is None:
            self._time = id_time(self.id) or datetime.now(UTC)
        return self._time

    def __repr__(self) -> str:
        return f"<Envelope {self.type} id={self.id}>"

    def attributes(self) -> dict[str, str | int]:
        """The CloudEvents context attributes (everything but ``data``)."""
        attrs: dict[str, str | int] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": _time_text(self.time),
            "datacontenttype": CONTENT_TYPE,
            VERSION_ATTRIBUTE: self.event.__event_version__,
        }
        if self.correlation_id is not None:
            attrs["correlationid"] = self.correlation_id
        if self.causation_id is not None:
            attrs["causationid"] = self.causation_id
        if self.traceparent is not None:
            attrs["traceparent"] = self.traceparent
        if self.tracestate is not None:
            attrs["tracestate"] = self.tracestate
        return attrs

    @property
    def tracestate(self) -> str | None:
        """The W3C ``tracestate`` that goes with ``traceparent`` (vendors' data), if any;
        set with :meth:`set_trace`."""
        try:
            return self._tracestate
        except AttributeError:  # never set: the constructor leaves it out, a store less per emit
            return None

    def set_trace(self, traceparent: str | None, tracestate: str | None) -> None:
        """Replace the trace context (before the envelope is sent: its encoding is redone)."""
        self.traceparent = traceparent
        self._tracestate = tracestate
        self._encoded = None

    def encode(self) -> bytes:
        """The envelope as CloudEvents structured-mode JSON (UTF-8), cached."""
        if self._encoded is None:
            extensions = b""
            if (self.correlation_id, self.causation_id, self.traceparent) != (None, None, None):
                for name, value in (
                    ("correlationid", self.correlation_id),
                    ("causationid", self.causation_id),
                    ("traceparent", self.traceparent),
                    ("tracestate", self.tracestate),
                ):
                    if value is not None:
                        extensions += f',"{name}":{json.dumps(value)}'.encode()
            self._encoded = b"".join(
                (
                    b'{"specversion":"1.0","id":',
                    _json_string(self.id),
                    b',"source":',
                    _quoted(self.source),
                    b',"type":"',
                    self.type.encode(),  # event names are plain ASCII (checked at declaration)
                    b'","time":"',
                    _time_text_of(self).encode(),
                    _VERSION_TAILS.get(self.event.__event_version__)
                    or _version_tail(self.event.__event_version__),
                    extensions,
                    b',"data":',
                    self.event.__pydantic_serializer__.to_json(self.event),
                    b"}",
                )
            )
        return self._encoded

    def check_size(self, limit: int) -> None:
        """Raise :class:`EventTooLargeError` if the encoding exceeds ``limit`` bytes.

        Most events are bounded without being encoded (see :mod:`hookbus._size`).
        """
        check_size(self, limit, size_plan(type(self.event)))


# version -> the encoding's bytes from the time's closing quote to the version.
_VERSION_TAILS: dict[int, bytes] = {}


def _version_tail(version: int) -> bytes:
    tail = b'","datacontenttype":"application/json","eventversion":%d' % version
    _VERSION_TAILS[version] = tail
    return tail


def _json_string(text: str) -> bytes:
    """``text`` as a JSON string; printable ASCII without quote or backslash (ids)
    needs no escaping and skips the JSON encoder."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return json.dumps(text).encode()


@functools.lru_cache(maxsize=64)
def _quoted(text: str) -> bytes:
    """``text`` as a JSON string, cached (for the source, which repeats)."""
    return _json_string(text)


def _time_text(moment: datetime) -> str:
    """RFC 3339 with milliseconds and ``Z``, as CloudEvents writes it."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ms_text: dict[str, str] = {}  # one entry: id prefix holding a millisecond -> time text


def _time_text_of(envelope: Envelope) -> str:
    """The envelope's time as text. Our UUIDv7 ids carry the millisecond: ids
    of one millisecond share the text, computed once."""
    event_id = envelope.id
    if envelope._time is None and len(event_id) == 36 and event_id[14] == "7":
        prefix = event_id[:13]
        text = _ms_text.get(prefix)
        if text is None:
            _ms_text.clear()
            text = _ms_text[prefix] = _time_text(envelope.time)
        return text
    return _time_text(envelope.time)


def decode_envelope(
    raw: bytes | str,
    known: dict[str, type[Event]] | None = None,
    expected: type[Event] | None = None,
) -> Envelope:
    """Parse CloudEvents JSON back into an :class:`Envelope`.

    Raises :class:`InvalidEnvelopeError`, and nothing else, whatever ``raw``
    holds (bytes another program wrote included): not JSON, nested too
    deeply, a required attribute missing, an unknown type, a version newer
    than the event class (or older without upcasters up to it), or ``data``
    failing the event's validation; the message gives the reason.
    ``data`` of an older version is upgraded by the event's upcasters
    (:func:`hookbus.upcaster`) before it is validated.
    ``expected``: the event class the caller expects (a stream of one
    type): such envelopes are parsed and validated in one pass, and an
    envelope of any other type is refused, naming both types.
    """
    try:
        return _decode(raw, known, expected)
    except InvalidEnvelopeError:
        raise
    except RecursionError:
        raise InvalidEnvelopeError("nested too deeply to decode") from None
    except MemoryError:
        raise InvalidEnvelopeError("too large to decode") from None
    except Exception as exc:  # a validator of the event class, odd input types...
        raise InvalidEnvelopeError(f"cannot be decoded: {error_text(exc)}") from exc


def _decode(
    raw: bytes | str, known: dict[str, type[Event]] | None, expected: type[Event] | None
) -> Envelope:
    if expected is not None:
        envelope = _decode_expected(raw, expected)
        if envelope is not None:
            return envelope
    try:
        doc = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidEnvelopeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidEnvelopeError("not a JSON object")
    missing = [k for k in _REQUIRED if not isinstance(doc.get(k), str)]
    if missing:
        raise InvalidEnvelopeError(f"missing or non-string attributes: {', '.join(missing)}")
    if doc["specversion"] != SPECVERSION:
        raise InvalidEnvelopeError(f"unsupported specversion {doc['specversion']!r}")
    try:
        cls = resolve_event_type(doc["type"], known)
    except UnknownEventError as exc:
        raise InvalidEnvelopeError(str(exc)) from exc
    if expected is not None and doc["type"] != expected.__event_name__:
        raise InvalidEnvelopeError(
            f"event of type {doc['type']!r} where {expected.__event_name__!r} "
            "was expected (each type has its own stream)"
        )
    data: Any = doc.get("data", {})
    version = _version(doc.get(VERSION_ATTRIBUTE))
    if version != cls.__event_version__:
        data = upcast(cls, version, data)
    try:
        event = cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidEnvelopeError(f"invalid data for {doc['type']!r}: {exc}") from exc
    envelope = Envelope(
        id=doc["id"],
        event=event,
        source=doc["source"],
        correlation_id=_opt_str(doc, "correlationid"),
        causation_id=_opt_str(doc, "causationid"),
        traceparent=_opt_str(doc, "traceparent"),
        time=_parse_time(doc.get("time")),
    )
    tracestate = _opt_str(doc, "tracestate")
    if tracestate is not None:
        envelope.set_trace(envelope.traceparent, tracestate)
    return envelope


def _decode_expected(raw: bytes | str, expected: type[Event]) -> Envelope | None:
    """The common case in one pass: an envelope of ``expected``, of its version; ``None``
    for anything else (the general path then says precisely what)."""
    try:
        wire: dict[str, Any] = _wire_validator(expected).validate_json(raw)
    except ValidationError:
        return None
    envelope = Envelope(
        wire["id"],
        wire["data"],
        wire["source"],
        correlation_id=wire.get("correlationid"),
        causation_id=wire.get("causationid"),
        traceparent=wire.get("traceparent"),
        time=wire.get("time"),
    )
    if wire.get("tracestate") is not None:
        envelope.set_trace(envelope.traceparent, wire["tracestate"])
    return envelope


@functools.lru_cache(maxsize=1024)
def _wire_validator(cls: type[Event]) -> SchemaValidator:
    """A validator of the whole envelope of ``cls``, so pydantic-core parses it and
    validates the event in one pass, into a plain dict (no model of the envelope)."""
    optional = cs.nullable_schema(cs.str_schema())
    fields = {
        "specversion": cs.typed_dict_field(cs.literal_schema([SPECVERSION])),
        "id": cs.typed_dict_field(cs.str_schema()),
        "source": cs.typed_dict_field(cs.str_schema()),
        "type": cs.typed_dict_field(cs.literal_schema([cls.__event_name__])),
        "time": cs.typed_dict_field(
            cs.nullable_schema(cs.datetime_schema(tz_constraint="aware")), required=False
        ),
        "correlationid": cs.typed_dict_field(optional, required=False),
        "causationid": cs.typed_dict_field(optional, required=False),
        "traceparent": cs.typed_dict_field(optional, required=False),
        "tracestate": cs.typed_dict_field(optional, required=False),
        # The class's own version only (absent means 1): any other goes the general
        # path, which upgrades it or says why it cannot.
        VERSION_ATTRIBUTE: cs.typed_dict_field(
            cs.int_schema(strict=True, ge=cls.__event_version__, le=cls.__event_version__),
            required=cls.__event_version__ != 1,
        ),
        "data": cs.typed_dict_field(cls.__pydantic_core_schema__),
    }
    return SchemaValidator(cs.typed_dict_schema(fields, extra_behavior="ignore"))


def _version(value: object) -> int:
    """The ``eventversion`` attribute: absent (or null) is 1; an integer >= 1, or its
    decimal text (as transports that carry attributes as strings write it)."""
    if value is None:
        return 1
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or value < 1:
        raise InvalidEnvelopeError(
            f"invalid {VERSION_ATTRIBUTE} {value!r}: an integer >= 1 was expected"
        )
    return value


def _opt_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
