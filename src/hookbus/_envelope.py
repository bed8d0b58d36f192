"""The envelope every event travels in, and its CloudEvents 1.0 JSON encoding.

On the wire an event is one JSON object in CloudEvents *structured* mode::

    {"specversion": "1.0", "id": "<uuidv7>", "source": "hookbus", "type": "sale_closed",
     "time": "2026-11-25T10:00:00.123Z", "datacontenttype": "application/json",
     "correlationid": "...", "traceparent": "...", "data": {...the event fields...}}

JSON only, never pickle, so programs in any language can read and write it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from datetime import time as dt_time
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import ValidationError

from ._event import Event, resolve_event_type
from ._exceptions import EventTooLargeError, InvalidEnvelopeError, UnknownEventError
from ._ids import id_time

__all__ = ["Envelope", "decode_envelope"]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
_REQUIRED = ("specversion", "id", "source", "type")
_ENVELOPE_OVERHEAD = 512  # attribute names, quotes, ids, time, extensions


class Envelope:
    """One emitted event with its metadata (CloudEvents attributes).

    ``id`` is unique and sortable; ``type`` is the event name; ``event`` is the
    :class:`Event` instance. ``correlation_id`` links every event caused,
    directly or not, by the same first event; ``causation_id`` is the id of
    the event whose handler emitted this one.
    """

    __slots__ = (
        "_encoded",
        "_time",
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
    def time(self) -> datetime:
        """When the event was emitted (UTC)."""
        if self._time is None:
            self._time = id_time(self.id) or datetime.now(UTC)
        return self._time

    def __repr__(self) -> str:
        return f"<Envelope {self.type} id={self.id}>"

    def attributes(self) -> dict[str, str]:
        """The CloudEvents context attributes (everything but ``data``)."""
        attrs = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "datacontenttype": CONTENT_TYPE,
        }
        if self.correlation_id is not None:
            attrs["correlationid"] = self.correlation_id
        if self.causation_id is not None:
            attrs["causationid"] = self.causation_id
        if self.traceparent is not None:
            attrs["traceparent"] = self.traceparent
        return attrs

    def encode(self) -> bytes:
        """The envelope as CloudEvents structured-mode JSON (UTF-8), cached."""
        if self._encoded is None:
            head = json.dumps(self.attributes(), separators=(",", ":"))
            self._encoded = (
                head[:-1].encode() + b',"data":' + self.event.model_dump_json().encode() + b"}"
            )
        return self._encoded

    def check_size(self, limit: int) -> None:
        """Raise :class:`EventTooLargeError` if the encoding exceeds ``limit`` bytes.

        Events whose fields are all scalars (str, numbers, bool, dates, UUID,
        enums, optionals of those) are bounded without being encoded: six
        bytes per string character (the worst JSON escape) plus a fixed
        allowance per other field, numbers counting as 64 bytes. Only when
        that bound is above the limit, or for events with containers or
        nested models, is the event encoded and measured (and the encoding
        kept for transports that need it).
        """
        event = self.event
        plan = _size_plan(type(event))
        if plan is not None:
            bound, strings = plan
            if strings:
                values = event.__dict__
                for name in strings:
                    value = values[name]
                    bound += 6 * len(value) if isinstance(value, str) else _SCALAR_ALLOWANCE
            if bound <= limit:
                return
        size = len(self.encode())
        if size > limit:
            raise EventTooLargeError(self.type, size, limit)


_SCALARS = (int, float, bool, Decimal, datetime, date, dt_time, UUID, type(None))
_SCALAR_ALLOWANCE = 64  # bytes for any non-string scalar, key included
_plans: dict[type[Event], tuple[int, tuple[str, ...]] | None] = {}


def size_may_exceed(cls: type[Event], limit: int) -> bool:
    """False when no instance of ``cls`` can encode above ``limit`` bytes (no check needed)."""
    plan = _size_plan(cls)
    return plan is None or bool(plan[1]) or plan[0] > limit


def _size_plan(cls: type[Event]) -> tuple[int, tuple[str, ...]] | None:
    """(fixed bytes, string fields) for an all-scalar event class, else None (cached)."""
    try:
        return _plans[cls]
    except KeyError:
        pass
    kinds = {name: _scalar_kind(f.annotation) for name, f in cls.model_fields.items()}
    plan: tuple[int, tuple[str, ...]] | None = None
    if all(kinds.values()):
        fixed = _ENVELOPE_OVERHEAD + sum(len(name) + 8 for name in kinds)
        fixed += _SCALAR_ALLOWANCE * sum(1 for kind in kinds.values() if kind == "scalar")
        plan = (fixed, tuple(name for name, kind in kinds.items() if kind == "str"))
    _plans[cls] = plan
    return plan


def _scalar_kind(annotation: Any) -> str | None:
    """``"str"`` for text, ``"scalar"`` for other bounded scalars, None otherwise."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_kind(get_args(annotation)[0])
    if origin is Literal:
        return (
            "scalar"
            if all(not isinstance(a, str) or len(a) < 48 for a in get_args(annotation))
            else None
        )
    if origin in (Union, UnionType):
        kinds = {_scalar_kind(arg) for arg in get_args(annotation)}
        if None in kinds:
            return None
        return "str" if "str" in kinds else "scalar"
    if annotation is None:
        return "scalar"
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, str):
        # A str-valued enum member is a str; len() bounds it like any string.
        return "str"
    if issubclass(annotation, Enum):
        return "scalar" if issubclass(annotation, int) else None
    return "scalar" if annotation in _SCALARS else None


def decode_envelope(raw: bytes | str, known: dict[str, type[Event]] | None = None) -> Envelope:
    """Parse CloudEvents JSON back into an :class:`Envelope`.

    Raises :class:`InvalidEnvelopeError` when ``raw`` is not a valid hookbus
    envelope (not JSON, a required attribute missing, an unknown type, or
    ``data`` failing the event's validation); the message gives the reason.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
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
    data: Any = doc.get("data", {})
    try:
        event = cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidEnvelopeError(f"invalid data for {doc['type']!r}: {exc}") from exc
    return Envelope(
        id=doc["id"],
        event=event,
        source=doc["source"],
        correlation_id=_opt_str(doc, "correlationid"),
        causation_id=_opt_str(doc, "causationid"),
        traceparent=_opt_str(doc, "traceparent"),
        time=_parse_time(doc.get("time")),
    )


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
