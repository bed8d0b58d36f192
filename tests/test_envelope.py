"""The CloudEvents 1.0 JSON envelope: encoding, decoding and the size check."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import field_validator

from hookbus import (
    Envelope,
    Event,
    EventTooLargeError,
    InvalidEnvelopeError,
    decode_envelope,
)
from hookbus._ids import new_event_id
from hookbus._size import needs_check


class Paid(Event, name="envelope.paid"):
    order_id: int
    amount: Decimal
    note: str = ""


class Basket(Event, name="envelope.basket"):
    items: list[str]


class Tick(Event, name="envelope.tick"):
    n: int
    at: datetime
    ok: bool


class Reading(Event, name="envelope.reading"):
    value: float
    at: datetime
    ok: bool


class Measure(Event, name="envelope.measure"):
    value: float


def envelope_of(event: Event, **kwargs: Any) -> Envelope:
    return Envelope(new_event_id(), event, "tests", **kwargs)


def paid(note: str = "") -> Paid:
    return Paid(order_id=7, amount=Decimal("19.90"), note=note)


# -- encoding ------------------------------------------------------------------


def test_encode_is_cloudevents_structured_json() -> None:
    envelope = envelope_of(paid("thanks"))
    doc = json.loads(envelope.encode())
    assert doc["specversion"] == "1.0"
    assert doc["id"] == envelope.id
    assert doc["source"] == "tests"
    assert doc["type"] == "envelope.paid"
    assert doc["datacontenttype"] == "application/json"
    assert doc["time"].endswith("Z")
    assert datetime.fromisoformat(doc["time"]) == envelope.time
    assert doc["data"] == {"order_id": 7, "amount": "19.90", "note": "thanks"}
    assert doc["eventversion"] == 1
    assert set(doc) == {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "eventversion",
        "data",
    }


def test_time_comes_from_the_uuidv7_id() -> None:
    envelope = envelope_of(paid())
    assert envelope.time.tzinfo is not None
    assert abs(datetime.now(UTC) - envelope.time) < timedelta(seconds=5)


def test_optional_attributes_appear_only_when_set() -> None:
    parent = new_event_id()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = envelope_of(
        paid(), correlation_id="corr-1", causation_id=parent, traceparent=traceparent
    )
    doc = json.loads(envelope.encode())
    assert doc["correlationid"] == "corr-1"
    assert doc["causationid"] == parent
    assert doc["traceparent"] == traceparent
    bare = json.loads(envelope_of(paid()).encode())
    assert not {"correlationid", "causationid", "traceparent"} & bare.keys()


def test_trace_context_round_trips_as_the_distributed_tracing_extension() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = envelope_of(paid(), traceparent=traceparent)
    assert envelope.tracestate is None
    envelope.set_trace(traceparent, "vendor=abc,other=1")
    assert envelope.attributes()["tracestate"] == "vendor=abc,other=1"
    for decoded in (
        decode_envelope(envelope.encode()),  # the general path
        decode_envelope(envelope.encode(), expected=Paid),  # one pass, of a known type
    ):
        assert (decoded.traceparent, decoded.tracestate) == (traceparent, "vendor=abc,other=1")
    envelope.set_trace("00-" + "1" * 32 + "-" + "2" * 16 + "-01", None)  # encoding redone
    doc = json.loads(envelope.encode())
    assert doc["traceparent"].startswith("00-111")
    assert "tracestate" not in doc


def test_durable_follows_the_event_class() -> None:
    assert envelope_of(paid()).durable


# -- decoding --------------------------------------------------------------------


def test_decode_round_trips() -> None:
    original = envelope_of(paid('ü\n"quoted"'), correlation_id="c", causation_id="p")
    decoded = decode_envelope(original.encode())
    assert decoded.event == original.event
    assert type(decoded.event) is Paid
    assert decoded.id == original.id
    assert decoded.time == original.time
    assert decoded.type == "envelope.paid"
    assert decoded.source == "tests"
    assert (decoded.correlation_id, decoded.causation_id, decoded.traceparent) == ("c", "p", None)
    assert decoded.encode() == original.encode()


def test_decode_accepts_text_and_containers() -> None:
    original = envelope_of(Basket(items=["a", "b"]))
    decoded = decode_envelope(original.encode().decode())
    assert decoded.event == Basket(items=["a", "b"])


def test_decode_prefers_the_known_types() -> None:
    class Local(Event, name="envelope.local_only"):
        x: int

    raw = envelope_of(Local(x=1)).encode().replace(b"envelope.local_only", b"renamed")
    decoded = decode_envelope(raw, known={"renamed": Local})
    assert decoded.event == Local(x=1)


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(envelope_of(paid()).encode())
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (
            json.dumps(_doc(id=None, type=None)).encode(),
            "missing or non-string attributes: id, type",
        ),
        (json.dumps(_doc(source=42)).encode(), "missing or non-string attributes: source"),
        (json.dumps(_doc(specversion="0.3")).encode(), "unsupported specversion '0.3'"),
        (json.dumps(_doc(type="envelope.payd")).encode(), "unknown event type 'envelope.payd'"),
        (json.dumps(_doc(data={"order_id": "x", "amount": "1"})).encode(), "invalid data for"),
        (json.dumps(_doc(data={"order_id": 1})).encode(), "amount"),
        (json.dumps(_doc(data=[1, 2])).encode(), "invalid data for 'envelope.paid'"),
    ],
)
def test_decode_refuses_what_is_not_an_envelope(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=re.escape(message)):
        decode_envelope(raw)


class Grumpy(Event, name="envelope.grumpy"):
    mood: str

    @field_validator("mood")
    @classmethod
    def _explode(cls, value: str) -> str:
        raise KeyError(value)  # not a ValueError: pydantic lets it through


@pytest.mark.parametrize(
    ("raw", "expected", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, Paid, "not JSON"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, None, "not JSON"),
        (b"9" * 10_000, Paid, "not JSON"),
        (
            json.dumps(_doc(type="envelope.basket", data={"items": []})).encode(),
            Paid,
            "event of type 'envelope.basket' where 'envelope.paid' was expected",
        ),
        (
            json.dumps(_doc(type="envelope.grumpy", data={"mood": "x"})).encode(),
            None,
            "cannot be decoded: 'x'",
        ),
    ],
    ids=["deep-list", "deep-object", "huge-number", "other-type", "validator-raises-keyerror"],
)
def test_decode_raises_only_invalid_envelope_error(
    raw: bytes, expected: type[Event] | None, message: str
) -> None:
    with pytest.raises(InvalidEnvelopeError, match=re.escape(message)):
        decode_envelope(raw, None, expected)


def test_an_envelope_of_the_expected_type_still_decodes_in_one_pass() -> None:
    envelope = envelope_of(paid())
    assert decode_envelope(envelope.encode(), None, Paid).event == paid()


def test_unknown_type_error_suggests_the_close_name() -> None:
    with pytest.raises(InvalidEnvelopeError, match=re.escape("Did you mean 'envelope.paid'")):
        decode_envelope(json.dumps(_doc(type="envelope.payd")))


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_floats_survive_the_round_trip_or_are_refused(value: float) -> None:
    try:
        event = Measure(value=value)
    except ValueError:
        return  # refusing non-finite numbers at construction would be fine too
    decoded = decode_envelope(envelope_of(event).encode())
    assert repr(decoded.event) == repr(event)


# -- size ------------------------------------------------------------------------


def test_small_event_passes_the_size_check() -> None:
    envelope_of(paid("short")).check_size(4096)


def test_huge_string_is_too_large() -> None:
    envelope = envelope_of(paid("x" * 10_000))
    with pytest.raises(EventTooLargeError) as info:
        envelope.check_size(4096)
    exc = info.value
    assert exc.limit == 4096
    assert exc.size == len(envelope.encode())
    assert exc.size > 10_000
    assert exc.event_type == "envelope.paid"
    assert "HOOKBUS_MAX_EVENT_SIZE" in str(exc)


def test_container_events_are_measured_exactly() -> None:
    envelope = envelope_of(Basket(items=[f"item-{i}" for i in range(200)]))
    size = len(envelope.encode())
    envelope.check_size(size)  # exactly at the limit: accepted
    with pytest.raises(EventTooLargeError) as info:
        envelope.check_size(size - 1)
    assert (info.value.size, info.value.limit) == (size, size - 1)


def test_strings_with_escapes_are_measured_exactly_near_the_limit() -> None:
    envelope = envelope_of(paid("\x00" * 1000))  # 6 bytes per character in JSON
    size = len(envelope.encode())
    envelope.check_size(size)
    with pytest.raises(EventTooLargeError):
        envelope.check_size(size - 1)


def test_needs_check() -> None:
    assert not needs_check(Reading, 4096)  # fixed-size fields, well below
    assert needs_check(Reading, 100)  # the bound is above a tiny limit
    assert needs_check(Tick, 1024 * 1024)  # an int can have any number of digits
    assert needs_check(Paid, 1024 * 1024)  # a str field can be any length
    assert needs_check(Basket, 1024 * 1024)  # containers are always measured


def test_fixed_size_event_bound_is_never_below_the_real_size() -> None:
    event = Tick(n=-(2**63), at=datetime.now(UTC), ok=True)
    envelope_of(event).check_size(4096)
    assert len(envelope_of(event).encode()) < 4096


@pytest.mark.parametrize(
    "event",
    [
        Paid(order_id=1, amount=Decimal("1." + "1" * 10_000)),
        Tick(n=10**1000, at=datetime(2024, 1, 1, tzinfo=UTC), ok=True),
    ],
    ids=["long-decimal", "huge-int"],
)
def test_unbounded_numbers_are_measured(event: Event) -> None:
    envelope = envelope_of(event)
    assert len(envelope.encode()) > 1024
    with pytest.raises(EventTooLargeError):
        envelope.check_size(1024)
