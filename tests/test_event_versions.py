"""Event versions and upcasters: the class keyword, the envelope attribute, decoding."""

from __future__ import annotations

import json
import types
from decimal import Decimal
from typing import Any

import pytest

from evolving_events import NAME, SaleClosed, SaleClosedV1, SaleClosedV3, legacy_envelope
from hookbus import (
    ConfigurationError,
    Envelope,
    Event,
    InvalidEnvelopeError,
    decode_envelope,
    event_version,
    upcaster,
)
from hookbus._ids import new_event_id
from hookbus._upcast import upcasters_of


def envelope_of(event: Event) -> Envelope:
    return Envelope(new_event_id(), event, "tests")


def v1(sale_id: int = 1) -> SaleClosedV1:
    return SaleClosedV1(sale_id=sale_id, total=Decimal("9.90"))


# -- declaring -------------------------------------------------------------------


def test_version_defaults_to_1_and_is_not_inherited() -> None:
    class Base(Event, name="versions.base", version=4):
        n: int

    class Child(Base, name="versions.child"):
        pass

    assert event_version(SaleClosedV1) == 1
    assert event_version(SaleClosed) == SaleClosed.__event_version__ == 2
    assert event_version(Base(n=1)) == 4
    assert event_version(Child) == 1


@pytest.mark.parametrize("version", [0, -1, 1.5, "2", True, None])
def test_invalid_versions_are_refused(version: object) -> None:
    def body(ns: dict[str, Any]) -> None:
        ns["__module__"] = __name__
        ns["__annotations__"] = {"n": int}

    with pytest.raises(ConfigurationError, match="version= of Dynamic must be an integer >= 1"):
        types.new_class("Dynamic", (Event,), {"name": "versions.bad", "version": version}, body)


def test_a_second_upcaster_for_the_same_step_is_refused() -> None:
    def other(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(ConfigurationError, match="already has an upcaster from version 1"):
        upcaster(NAME, from_version=1)(other)
    with pytest.raises(ConfigurationError, match="from_version must be an integer >= 1"):
        upcaster(NAME, from_version=0)


def test_the_same_upcaster_again_replaces_it() -> None:
    (step,) = upcasters_of(NAME).values()
    upcaster(SaleClosed, from_version=1)(step)  # a module reload: accepted
    assert upcasters_of(NAME) == {1: step}


# -- the envelope ----------------------------------------------------------------


def test_emitting_stamps_the_class_version() -> None:
    assert json.loads(envelope_of(v1()).encode())["eventversion"] == 1
    current = SaleClosed(sale_id=1, total=Decimal(1), currency="CHF")
    envelope = envelope_of(current)
    assert json.loads(envelope.encode())["eventversion"] == 2
    assert envelope.version == 2
    assert envelope.attributes()["eventversion"] == 2


def test_same_version_round_trips_without_an_upcaster() -> None:
    original = envelope_of(SaleClosed(sale_id=3, total=Decimal("1.5"), currency="CHF"))
    for expected in (None, SaleClosed):
        decoded = decode_envelope(original.encode(), expected=expected)
        assert decoded.event == original.event
        assert decoded.encode() == original.encode()


@pytest.mark.parametrize("expected", [None, SaleClosed])
def test_a_version_1_envelope_is_upcast_to_the_current_class(
    expected: type[Event] | None,
) -> None:
    for raw in (envelope_of(v1(7)).encode(), legacy_envelope(7, new_event_id())):
        decoded = decode_envelope(raw, expected=expected)
        assert decoded.event == SaleClosed(sale_id=7, total=Decimal("9.90"), currency="EUR")
        assert decoded.version == 2
        # Stored or sent again, it is a version-2 envelope.
        assert json.loads(decoded.encode())["eventversion"] == 2


def test_a_version_as_text_is_accepted() -> None:
    doc = json.loads(envelope_of(v1()).encode())
    doc["eventversion"] = "1"
    assert decode_envelope(json.dumps(doc), expected=SaleClosed).event.currency == "EUR"  # type: ignore[attr-defined]


@pytest.mark.parametrize("expected", [None, SaleClosed])
def test_a_newer_version_is_an_invalid_envelope_naming_both_versions(
    expected: type[Event] | None,
) -> None:
    raw = envelope_of(SaleClosedV3(sale_id=1, amount=Decimal(2), currency="EUR")).encode()
    with pytest.raises(InvalidEnvelopeError) as caught:
        decode_envelope(raw, expected=expected)
    assert str(caught.value) == (
        f"{NAME!r} of version 3 is newer than SaleClosed (version 2): "
        "this process runs an older declaration of the event"
    )


@pytest.mark.parametrize("value", [0, -2, True, 1.0, "v1", [1]])
def test_an_invalid_version_attribute_is_an_invalid_envelope(value: object) -> None:
    doc = json.loads(envelope_of(v1()).encode())
    doc["eventversion"] = value
    with pytest.raises(InvalidEnvelopeError, match="invalid eventversion"):
        decode_envelope(json.dumps(doc), expected=SaleClosed)


def test_chains_apply_in_order_and_a_missing_step_names_it() -> None:
    class Old(Event, name="versions.chain"):
        a: int

    raw = envelope_of(Old(a=1)).encode()

    class New(Event, name="versions.chain", version=3):
        a: int
        trail: list[int]

    with pytest.raises(InvalidEnvelopeError, match="no upcaster from version 1 to 2"):
        decode_envelope(raw)

    @upcaster(New, from_version=1)
    def to_2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "trail": [2]}

    with pytest.raises(InvalidEnvelopeError) as caught:
        decode_envelope(raw, expected=New)
    assert str(caught.value) == (
        "'versions.chain' of version 1 cannot be read as version 3: no upcaster from version 2 to 3"
    )

    @upcaster(New, from_version=2)
    def to_3(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "trail": [*data["trail"], 3]}

    assert decode_envelope(raw).event == New(a=1, trail=[2, 3])
    version_2 = json.loads(raw)
    version_2["eventversion"] = 2
    version_2["data"]["trail"] = []
    assert decode_envelope(json.dumps(version_2)).event == New(a=1, trail=[3])


def test_a_failing_or_wrong_upcaster_is_an_invalid_envelope() -> None:
    class Old(Event, name="versions.faulty"):
        a: int

    raw = envelope_of(Old(a=1)).encode()

    class New(Event, name="versions.faulty", version=3):
        a: int

    @upcaster(New, from_version=1)
    def broken(data: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("b")

    @upcaster(New, from_version=2)
    def not_a_dict(data: dict[str, Any]) -> dict[str, Any]:
        return [data]  # type: ignore[return-value]

    with pytest.raises(InvalidEnvelopeError, match=r"upcaster from version 1 to 2 failed \('b'\)"):
        decode_envelope(raw)
    version_2 = raw.replace(b'"eventversion":1', b'"eventversion":2')
    with pytest.raises(InvalidEnvelopeError, match="from version 2 to 3 returned list, not a dict"):
        decode_envelope(version_2)
    not_an_object = version_2.replace(b'"data":{"a":1}', b'"data":[1]')
    with pytest.raises(InvalidEnvelopeError, match="data is not a JSON object"):
        decode_envelope(not_an_object)


def test_upcast_data_is_still_validated() -> None:
    class Old(Event, name="versions.validated"):
        a: int

    raw = envelope_of(Old(a=1)).encode()

    class New(Event, name="versions.validated", version=2):
        a: int
        b: int

    @upcaster(New, from_version=1)
    def forgets_b(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(InvalidEnvelopeError, match=r"invalid data for 'versions\.validated'"):
        decode_envelope(raw)
