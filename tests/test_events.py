"""Declaring events: names, durability, immutability, validation and the registry."""

import logging
import types
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from hookbus import (
    ConfigurationError,
    Event,
    EventBus,
    HookbusError,
    InvalidEventError,
    event_name,
    event_types,
    is_durable,
)
from hookbus.testing import Recorder, test_settings


class HTTPRequestDone(Event):
    status: int


class BasketCheckedOut(Event):
    sale_id: int
    total: Decimal


class OrderV2Shipped(Event):
    order_id: int


class Named(Event, name="events.custom-name:v1"):
    n: int


class Ephemeral(Event, name="events.ephemeral", durable=False):
    n: int


class ExplicitDurable(Event, name="events.explicit_durable", durable=True):
    n: int


class EphemeralChild(Ephemeral, name="events.ephemeral_child"):
    extra: str = ""


class DurableAgain(Ephemeral, name="events.durable_again", durable=True):
    pass


def make_event_class(name: object, durable: object = None) -> type[Event]:
    """Declare an Event subclass with arbitrary (possibly invalid) class keywords."""

    def body(ns: dict[str, Any]) -> None:
        ns["__module__"] = __name__
        ns["__annotations__"] = {"n": int}

    kwds: dict[str, Any] = {"name": name}
    if durable is not None:
        kwds["durable"] = durable
    cls = types.new_class("Dynamic", (Event,), kwds, body)
    assert issubclass(cls, Event)
    return cls


# -- names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (HTTPRequestDone, "http_request_done"),
        (BasketCheckedOut, "basket_checked_out"),
        (OrderV2Shipped, "order_v2_shipped"),
    ],
)
def test_default_name_is_snake_case_of_class_name(cls: type[Event], expected: str) -> None:
    assert event_name(cls) == expected


def test_event_name_works_on_instances_too() -> None:
    assert event_name(HTTPRequestDone(status=200)) == "http_request_done"


def test_name_keyword_sets_the_wire_name() -> None:
    assert event_name(Named) == "events.custom-name:v1"
    assert event_name(Named(n=1)) == "events.custom-name:v1"


@pytest.mark.parametrize(
    "bad",
    ["", "-starts-with-dash", "_underscore_first", "has space", "slash/inside", "x" * 201, "é"],
)
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid event name"):
        make_event_class(bad)


def test_non_string_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="invalid event name"):
        make_event_class(123)


def test_longest_valid_name_is_accepted() -> None:
    name = "events." + "x" * 193
    assert len(name) == 200
    assert event_name(make_event_class(name)) == name


# -- durability ----------------------------------------------------------------


def test_durable_defaults_to_true() -> None:
    assert is_durable(BasketCheckedOut)
    assert is_durable(BasketCheckedOut(sale_id=1, total=Decimal("1.00")))
    assert is_durable(ExplicitDurable)


def test_durable_false_makes_events_ephemeral() -> None:
    assert not is_durable(Ephemeral)
    assert not is_durable(Ephemeral(n=1))


def test_subclasses_inherit_durability_unless_they_override_it() -> None:
    assert not is_durable(EphemeralChild)
    assert is_durable(DurableAgain)
    assert not is_durable(Ephemeral)  # the parent is unchanged


def test_non_bool_durable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="durable= must be True or False"):
        make_event_class("events.bad_durable", durable="yes")


# -- immutability and validation ------------------------------------------------


def test_events_are_frozen() -> None:
    event = BasketCheckedOut(sale_id=1, total=Decimal("9.90"))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.sale_id = 2
    assert event.sale_id == 1


def test_events_are_hashable_and_compare_by_value() -> None:
    a = BasketCheckedOut(sale_id=1, total=Decimal("9.90"))
    b = BasketCheckedOut(sale_id=1, total=Decimal("9.90"))
    assert a == b
    assert hash(a) == hash(b)


def test_unknown_fields_are_refused() -> None:
    fields: dict[str, Any] = {"sale_id": 1, "total": "1", "coupon": "X"}
    with pytest.raises(InvalidEventError) as info:
        BasketCheckedOut(**fields)
    (error,) = info.value.errors()
    assert error["loc"] == ("coupon",)
    assert error["type"] == "extra_forbidden"


def test_bad_fields_raise_invalid_event_error() -> None:
    fields: dict[str, Any] = {"sale_id": "seven", "total": "1.00"}
    with pytest.raises(InvalidEventError) as info:
        BasketCheckedOut(**fields)
    exc = info.value
    assert isinstance(exc, pydantic.ValidationError)
    assert isinstance(exc, HookbusError)
    assert isinstance(exc, ValueError)
    (error,) = exc.errors()
    assert error["loc"] == ("sale_id",)
    assert error["type"] == "int_parsing"
    assert error["input"] == "seven"
    assert "sale_id" in str(exc)


def test_every_failing_field_is_reported() -> None:
    fields: dict[str, Any] = {"sale_id": "x", "total": "not a number"}
    with pytest.raises(InvalidEventError) as info:
        BasketCheckedOut(**fields)
    assert sorted(e["loc"] for e in info.value.errors()) == [("sale_id",), ("total",)]
    assert info.value.error_count() == 2


def test_missing_field_is_reported() -> None:
    fields: dict[str, Any] = {"sale_id": 1}
    with pytest.raises(InvalidEventError) as info:
        BasketCheckedOut(**fields)
    (error,) = info.value.errors()
    assert error["loc"] == ("total",)
    assert error["type"] == "missing"


def test_valid_fields_are_coerced() -> None:
    fields: dict[str, Any] = {"sale_id": "3", "total": "12.50"}
    event = BasketCheckedOut(**fields)
    assert event.sale_id == 3
    assert event.total == Decimal("12.50")


# -- registry ---------------------------------------------------------------------


def test_event_types_lists_declared_classes_and_is_a_copy() -> None:
    types_now = event_types()
    assert types_now["basket_checked_out"] is BasketCheckedOut
    assert types_now["events.ephemeral"] is Ephemeral
    assert "event" not in types_now  # the base class is not an event type
    types_now.clear()
    assert event_types()["basket_checked_out"] is BasketCheckedOut


def test_redefining_a_name_warns_and_the_newest_class_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="hookbus"):

        class First(Event, name="events.redefined"):
            a: int

        assert not caplog.records

        class Second(Event, name="events.redefined"):
            b: int

    (record,) = caplog.records
    assert record.name == "hookbus"
    assert record.levelno == logging.WARNING
    assert "events.redefined" in record.getMessage()
    assert "Second" in record.getMessage()
    assert "First" in record.getMessage()
    assert event_types()["events.redefined"] is Second


async def test_emit_by_name_resolves_to_the_newest_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="hookbus"):

        class Old(Event, name="events.resolved"):
            a: int

        class New(Event, name="events.resolved"):
            b: int

    bus = EventBus(mode="local", settings=test_settings())
    rec = Recorder[Event]()
    subscription = bus.subscribe("events.resolved", rec, name="resolved")
    assert subscription.event_type is New
    async with bus:
        with pytest.raises(InvalidEventError):
            await bus.emit("events.resolved", a=1)  # Old's field: refused by New
        await bus.emit("events.resolved", b=7)
        (event,) = await rec.wait_for(1)
    assert type(event) is New
    assert event == New(b=7)
    assert Old(a=1).a == 1  # the old class still works when used directly
