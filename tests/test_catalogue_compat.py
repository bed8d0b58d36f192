"""The compatibility check: each breaking change named with its event and field,
non-breaking ones listed as information."""

from __future__ import annotations

import types
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from hookbus import Event, upcaster
from hookbus.catalogue import (
    Catalogue,
    CompatibilityReport,
    check_compatibility,
    event_entry,
    load_catalogue,
)


def catalogue_of(*classes: type[Event]) -> Catalogue:
    return Catalogue(events={cls.__event_name__: event_entry(cls) for cls in classes})


def compare(old: type[Event], new: type[Event]) -> CompatibilityReport:
    return check_compatibility(catalogue_of(old), catalogue_of(new))


def breaking(report: CompatibilityReport) -> list[str]:
    return [str(change) for change in report.breaking]


def info(report: CompatibilityReport) -> list[str]:
    return [str(change) for change in report.info]


# -- breaking ------------------------------------------------------------------------


def test_a_removed_field() -> None:
    class Old(Event, name="compat.removed"):
        sale_id: int
        total: Decimal

    class New(Event, name="compat.removed"):
        sale_id: int

    assert breaking(compare(Old, New)) == ["compat.removed.total: field removed"]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (str, int, "string changed to integer"),
        (float, int, "number changed to integer"),
        (int | str, int, "string is no longer accepted"),
        (int | None, int, "null is no longer accepted"),
        (str, datetime, "format 'date-time' required"),
        (Literal["a", "b"], Literal["a"], "values 'b' are no longer accepted"),
        (str, Literal["a"], "string narrowed to 'a'"),
        (list[str], list[int], "items: string changed to integer"),
        (dict[str, int], dict[str, bool], "values: integer changed to boolean"),
        (Any, int, "any value is no longer accepted (now integer)"),
    ],
)
def test_a_type_narrowed_or_changed(old: Any, new: Any, reason: str) -> None:
    Old = _event("compat.narrowed", value=(old, ...))
    New = _event("compat.narrowed", value=(new, ...))
    assert breaking(compare(Old, New)) == [
        f"compat.narrowed.value: type changed incompatibly: {reason}"
    ]


def test_constraints_tightened() -> None:
    Old = _event("compat.bounds", code=(str, Field(max_length=10)))
    New = _event("compat.bounds", code=(str, Field(max_length=5)))
    assert breaking(compare(Old, New)) == [
        "compat.bounds.code: type changed incompatibly: maxLength 5 added or lowered"
    ]


def test_a_nested_model_that_requires_more() -> None:
    class LineV1(BaseModel):
        sku: str

    class LineV2(BaseModel):
        sku: str
        quantity: int

    Old = _event("compat.nested", lines=(list[LineV1], ...))
    New = _event("compat.nested", lines=(list[LineV2], ...))
    assert breaking(compare(Old, New)) == [
        "compat.nested.lines: type changed incompatibly: items: field 'quantity' became required"
    ]


def test_an_optional_field_made_required() -> None:
    Old = _event("compat.required", note=(str, ""))
    New = _event("compat.required", note=(str, ...))
    assert breaking(compare(Old, New)) == [
        "compat.required.note: now required (its default removed) without a default and "
        "without an upcaster to a new version: old events without it would be refused"
    ]


def test_a_required_field_added_without_default_or_upcaster() -> None:
    Old = _event("compat.added", sale_id=(int, ...))
    New = _event("compat.added", sale_id=(int, ...), currency=(str, ...))
    assert breaking(compare(Old, New)) == [
        "compat.added.currency: required field added without a default and without an "
        "upcaster to a new version: old events without it would be refused"
    ]


def test_a_version_raised_without_its_upcasters() -> None:
    Old = _event("compat.no_upcaster", sale_id=(int, ...))
    New = _event("compat.no_upcaster", version=3, sale_id=(int, ...), currency=(str, ...))
    upcaster(New, from_version=2)(_with_currency)  # 1 -> 2 is missing
    report = compare(Old, New)
    assert breaking(report) == [
        "compat.no_upcaster: version raised from 1 to 3 without an upcaster for 1 → 2: "
        "stored events of version 1 would be dead letters",
        "compat.no_upcaster.currency: required field added without a default and without "
        "an upcaster to a new version: old events without it would be refused",
    ]


def test_a_version_lowered() -> None:
    Old = _event("compat.lowered", version=2, n=(int, ...))
    New = _event("compat.lowered", n=(int, ...))
    assert breaking(compare(Old, New)) == [
        "compat.lowered: version lowered from 2 to 1: stored events of version 2 would be refused"
    ]


def test_durability_changed() -> None:
    Old = _event("compat.durability", n=(int, ...))
    New = _event("compat.durability", durable=False, n=(int, ...))
    report = compare(Old, New)
    assert breaking(report) == ["compat.durability: durability changed: durable → ephemeral"]
    assert report.breaking[0].field is None


def test_an_event_type_removed() -> None:
    Kept = _event("compat.kept", n=(int, ...))
    Gone = _event("compat.gone", n=(int, ...))
    report = check_compatibility(catalogue_of(Kept, Gone), catalogue_of(Kept))
    assert breaking(report) == ["compat.gone: event type removed"]
    assert not report.compatible


# -- not breaking ----------------------------------------------------------------------


def test_non_breaking_changes_pass_and_are_listed() -> None:
    Old = _event(
        "compat.fine",
        count=(int, ...),
        kind=(Literal["a"], ...),
        note=(str, ...),
        code=(str, Field(max_length=5)),
    )
    New = _event(
        "compat.fine",
        count=(float, ...),
        kind=(Literal["a", "b"], ...),
        note=(str | None, None),
        code=(str, Field(max_length=50)),
        extra=(str, ""),
    )
    Added = _event("compat.new_type", n=(int, ...))
    report = check_compatibility(catalogue_of(Old), catalogue_of(New, Added))
    assert report.compatible
    assert info(report) == [
        "compat.fine.count: type widened",
        "compat.fine.kind: type widened",
        "compat.fine.note: type widened",
        "compat.fine.note: now optional (a default added)",
        "compat.fine.code: type widened",
        "compat.fine.extra: optional field added",
        "compat.new_type: new event type",
    ]


def test_an_unchanged_catalogue_has_no_changes() -> None:
    Same = _event("compat.same", n=(int, ...), lines=(list[str], []))
    assert compare(Same, Same).changes == ()


def test_a_required_field_added_with_an_upcaster_to_the_new_version() -> None:
    Old = _event("compat.upcast", sale_id=(int, ...))
    New = _event("compat.upcast", version=2, sale_id=(int, ...), currency=(str, ...))
    upcaster(New, from_version=1)(_with_currency)
    report = compare(Old, New)
    assert report.compatible
    assert info(report) == [
        "compat.upcast: version raised from 1 to 2, upcast",
        "compat.upcast.currency: required field added, upcast to version 2",
    ]


def test_the_check_reads_a_saved_baseline(tmp_path: Path) -> None:
    Old = _event("compat.saved", sale_id=(int, ...), total=(Decimal, ...))
    baseline = tmp_path / "events.json"
    catalogue_of(Old).save(baseline)
    New = _event("compat.saved", sale_id=(str, ...))
    report = check_compatibility(load_catalogue(baseline), catalogue_of(New))
    assert breaking(report) == [
        "compat.saved.sale_id: type changed incompatibly: integer changed to string",
        "compat.saved.total: field removed",
    ]
    assert [(c.event, c.field) for c in report.breaking] == [
        ("compat.saved", "sale_id"),
        ("compat.saved", "total"),
    ]


def _with_currency(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


def _event(name: str, *, version: int = 1, durable: bool = True, **fields: Any) -> type[Event]:
    """An event class named ``name`` with ``fields`` as (annotation, default or ...)."""

    def body(namespace: dict[str, Any]) -> None:
        namespace["__module__"] = __name__
        namespace["__annotations__"] = {field: spec[0] for field, spec in fields.items()}
        for field, (_, default) in fields.items():
            if default is not ...:
                namespace[field] = default

    keywords = {"name": name, "version": version, "durable": durable}
    cls = types.new_class("Dynamic", (Event,), keywords, body)
    assert issubclass(cls, Event)
    return cls
