"""The size limit: bounding an event's encoded size without encoding it.

``max_event_size`` applies to the encoded envelope. Encoding every event just
to measure it would cost more than the rest of an in-process emit, so events
whose fields are all scalars are *bounded* instead, from a plan computed once
per class. The bound uses each value's size in memory (``__sizeof__``),
which for CPython's scalars always exceeds what JSON needs for them when
multiplied by:

* 6 for str (the worst JSON escape, ``\\u0000``, is 6 bytes per character;
  a str takes at least one byte per character in memory);
* 3 for int (30-bit digits of 4 bytes: at most 2.3 decimal digits per byte)
  and for Decimal (19 decimal digits per 8-byte word, plus a 104-byte header
  that covers sign, point and exponent).

Other scalars (float, bool, dates, UUID, int enums, None) get a fixed
allowance. Only when the bound exceeds the limit, or for events with
containers or nested models, is the event encoded and measured exactly. A
class with no str, int or Decimal field whose fixed bound fits needs no
check at all.
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from ._exceptions import EventTooLargeError

if TYPE_CHECKING:
    from ._envelope import Envelope
    from ._event import Event

__all__ = ["EXACT", "SizePlan", "check_size", "needs_check", "size_plan"]

ENVELOPE_OVERHEAD = 512  # attribute names, quotes, ids, time, version, extensions (+ the type)
SCALAR_ALLOWANCE = 64  # bytes for a fixed-size scalar, key included
_FIXED = (float, bool, datetime, date, dt_time, UUID, type(None))
_MULTIPLIER = {"str": 6, "int": 3, "dec": 3}

#: (fixed bytes, ((field, multiplier of its __sizeof__), ...)); fixed < 0: encode.
SizePlan = tuple[int, tuple[tuple[str, int], ...]]
#: The plan of classes that must be encoded to be measured.
EXACT: SizePlan = (-1, ())

_plans: dict[type, SizePlan] = {}


def check_size(envelope: Envelope, limit: int, plan: SizePlan) -> None:
    """Raise :class:`EventTooLargeError` if ``envelope`` encodes above ``limit`` bytes."""
    bound, variable = plan
    if bound >= 0:
        values = envelope.event.__dict__
        for name, multiplier in variable:
            bound += multiplier * values[name].__sizeof__()
        if bound <= limit:
            return
    size = len(envelope.encode())
    if size > limit:
        raise EventTooLargeError(envelope.type, size, limit)


def needs_check(cls: type[Event], limit: int) -> bool:
    """False when no instance of ``cls`` can encode above ``limit`` bytes."""
    bound, variable = size_plan(cls)
    return bound < 0 or bool(variable) or bound > limit


def size_plan(cls: type[Event]) -> SizePlan:
    """The (cached) plan of an event class; :data:`EXACT` if it has non-scalar fields."""
    if cls in _plans:
        return _plans[cls]
    kinds = {name: _kind(f.annotation) for name, f in cls.model_fields.items()}
    plan = EXACT
    if all(kinds.values()):
        fixed = ENVELOPE_OVERHEAD + len(cls.__event_name__)
        fixed += sum(len(name) + 8 for name in kinds)
        fixed += SCALAR_ALLOWANCE * sum(1 for kind in kinds.values() if kind == "fixed")
        variable = tuple(
            (name, _MULTIPLIER[kind]) for name, kind in kinds.items() if kind in _MULTIPLIER
        )
        plan = (fixed, variable)
    _plans[cls] = plan
    return plan


def _kind(annotation: Any) -> str | None:
    """How a field is bounded: "str", "int", "dec", "fixed", or None (must encode)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin is Literal:
        args = get_args(annotation)
        return "fixed" if all(not isinstance(a, str) or len(a) < 48 for a in args) else None
    if origin in (Union, UnionType):
        kinds = {_kind(arg) for arg in get_args(annotation)} - {"fixed"}
        if None in kinds:
            return None
        # Optional[X] keeps X's kind; mixed unions take the largest multiplier.
        return kinds.pop() if len(kinds) == 1 else ("fixed" if not kinds else "str")
    if annotation is None:
        return "fixed"
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, str):
        return "str"  # str enums too: their members are str
    if issubclass(annotation, Enum):
        return "fixed" if issubclass(annotation, int) else None
    if annotation is bool or annotation in _FIXED:
        return "fixed"
    if annotation is int:
        return "int"
    if annotation is Decimal:
        return "dec"
    return None
