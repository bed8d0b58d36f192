"""The event catalogue: entries from a bus, JSON Schemas, the saved form, AsyncAPI 3.0."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from evolving_events import NAME, SaleClosed
from hookbus import ConfigurationError, Event, EventBus
from hookbus.catalogue import (
    Catalogue,
    asyncapi_document,
    build_catalogue,
    event_schema,
    load_catalogue,
)

ASYNCAPI_SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.json"


class Line(BaseModel):
    sku: str
    quantity: int = 1


class Receipt(Event, name="catalogue.receipt", version=3):
    """A receipt was printed.

    Second paragraph."""

    sale_id: int
    total: Decimal
    printed_at: datetime | None = None
    lines: list[Line] = Field(default_factory=list)
    channel: Literal["till", "web"] = "till"


class Other(BaseModel):  # a model of the same name as another event's, but different
    n: int


class Shown(Event, name="catalogue:shown", durable=False):
    who: str
    line: Other


def the_bus() -> EventBus:
    bus = EventBus(mode="local")

    @bus.on(Receipt, name="archive")
    async def archive(event: Receipt) -> None: ...

    @bus.on(Receipt, name="mailer")
    async def mail(event: Receipt) -> None: ...

    @bus.on(SaleClosed, name="books")
    def book(event: SaleClosed) -> None: ...

    bus.register(Shown)
    return bus


def test_entries_list_fields_versions_durability_and_subscribers() -> None:
    catalogue = build_catalogue(the_bus(), declared=False, senders={Receipt: ["shop.till"]})
    assert list(catalogue.events) == ["catalogue.receipt", "catalogue:shown", NAME]
    receipt = catalogue.events["catalogue.receipt"]
    assert (receipt.version, receipt.durable) == (3, True)
    assert receipt.class_path == f"{__name__}.Receipt"
    assert receipt.description == "A receipt was printed.\n\nSecond paragraph."
    assert [f.to_json() for f in receipt.fields] == [
        {"name": "sale_id", "type": "int", "required": True},
        {"name": "total", "type": "Decimal", "required": True},
        {"name": "printed_at", "type": "datetime | None", "required": False, "default": None},
        {"name": "lines", "type": "list[Line]", "required": False},
        {"name": "channel", "type": "Literal['till', 'web']", "required": False, "default": "till"},
    ]
    assert [(s.id, s.module) for s in receipt.subscribers] == [
        ("archive", __name__),
        ("mailer", __name__),
    ]
    assert receipt.subscribers[1].handler == f"{__name__}.the_bus.<locals>.mail"
    assert receipt.senders == ("shop.till",)
    sale = catalogue.events[NAME]
    assert (sale.version, sale.upcasters) == (2, (1,))
    assert catalogue.events["catalogue:shown"].durable is False


def test_declared_classes_are_included_by_default() -> None:
    class OnlyDeclared(Event, name="catalogue.only_declared"):
        n: int

    assert "catalogue.only_declared" in build_catalogue().events
    assert "catalogue.only_declared" in build_catalogue(the_bus()).events
    assert "catalogue.only_declared" not in build_catalogue(the_bus(), declared=False).events


# -- JSON Schema ----------------------------------------------------------------


def test_each_event_schema_has_an_id_and_a_title_and_checks_payloads() -> None:
    schema = event_schema(Receipt)
    assert schema["$id"] == "urn:hookbus:event:catalogue.receipt:3"
    assert schema["title"] == "catalogue.receipt"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert (schema["x-hookbus-version"], schema["x-hookbus-durable"]) == (3, True)
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    sample = Receipt(
        sale_id=1,
        total=Decimal("12.50"),
        printed_at=datetime(2026, 1, 2, 10, 0),
        lines=[Line(sku="lamp", quantity=2)],
    )
    assert list(validator.iter_errors(sample.model_dump(mode="json"))) == []
    assert list(validator.iter_errors({"sale_id": 1, "total": 3})) == []
    for bad in (
        {"total": "1"},  # sale_id missing
        {"sale_id": "one", "total": "1"},
        {"sale_id": 1, "total": "1", "channel": "fax"},
        {"sale_id": 1, "total": "1", "lines": [{"quantity": 1}]},
        {"sale_id": 1, "total": "1", "unknown": True},
    ):
        assert list(validator.iter_errors(bad)), bad


# -- the saved form -----------------------------------------------------------------


def test_the_saved_form_round_trips(tmp_path: Path) -> None:
    catalogue = build_catalogue(the_bus(), declared=False, title="shop", version="1.2.0")
    path = tmp_path / "events.json"
    catalogue.save(path)
    loaded = load_catalogue(path)
    assert loaded == catalogue
    doc = json.loads(path.read_text())
    assert doc["catalogue"] == 1
    assert [e["name"] for e in doc["events"]] == sorted(catalogue.events)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ('{"events": {}}', "not a saved hookbus catalogue"),
        ('{"catalogue": 9, "events": []}', "unsupported catalogue format 9"),
        ('{"catalogue": 1, "events": [{"no": "name"}]}', "malformed catalogue entry"),
    ],
)
def test_a_bad_saved_catalogue_is_a_configuration_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "events.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        load_catalogue(path)


# -- AsyncAPI -----------------------------------------------------------------------


def asyncapi_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))


def test_the_asyncapi_document_validates_against_the_official_schema() -> None:
    catalogue = build_catalogue(the_bus(), senders={Receipt: ["shop.till", "shop.web"]})
    document = asyncapi_document(catalogue, title="shop", version="1.2.0")
    errors = [f"{list(e.path)}: {e.message}" for e in asyncapi_validator().iter_errors(document)]
    assert errors == []
    assert json.loads(json.dumps(document)) == document  # plain JSON


def test_the_validator_refuses_a_broken_document() -> None:
    document = asyncapi_document(build_catalogue(the_bus(), declared=False))
    document["operations"]["x"] = {"action": "publish", "channel": {"$ref": "#/channels/a"}}
    del document["info"]["version"]
    assert len(list(asyncapi_validator().iter_errors(document))) >= 2


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_asyncapi_document_has_channels_messages_and_operations() -> None:
    catalogue = build_catalogue(the_bus(), declared=False, senders={Receipt: ["shop.till"]})
    document = asyncapi_document(catalogue, title="shop", version="1.2.0")
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "shop"
    assert document["info"]["version"] == "1.2.0"
    assert set(document["channels"]) == {
        "evolve.sale_closed",
        "catalogue.receipt",
        "catalogue_shown",
    }
    shown = document["channels"]["catalogue_shown"]
    assert shown["address"] == "catalogue:shown"
    assert shown["x-hookbus-durable"] is False
    operations = document["operations"]
    assert operations[f"{__name__}.receive.catalogue.receipt"]["x-hookbus-subscribers"] == [
        "archive",
        "mailer",
    ]
    assert operations["shop.till.send.catalogue.receipt"]["action"] == "send"
    assert {op["action"] for op in operations.values()} == {"send", "receive"}
    for ref in _refs(document):  # every reference resolves inside the document
        assert _resolve(document, ref) is not None, ref
    schemas = document["components"]["schemas"]
    assert schemas["catalogue.receipt.envelope"]["properties"]["eventversion"] == {
        "const": 3,
        "description": "version of data (absent: 1); older ones are upcast",
    }
    assert "Line" in schemas
    assert schemas["catalogue_shown"]["properties"]["line"] == {
        "$ref": "#/components/schemas/Other"
    }


def test_models_of_one_name_in_two_events_are_kept_apart() -> None:
    class Dup(Event, name="catalogue.dup"):
        line: Other

    class Line(BaseModel):  # not the module's Line
        label: str

    class Dup2(Event, name="catalogue.dup2"):
        line: Line

    catalogue = Catalogue(
        events={
            name: entry
            for name, entry in build_catalogue().events.items()
            if name in ("catalogue.receipt", "catalogue.dup", "catalogue.dup2")
        }
    )
    document = asyncapi_document(catalogue)
    schemas = document["components"]["schemas"]
    # Events in name order: the first Line keeps its name, the other is prefixed.
    assert schemas["Line"]["properties"].keys() == {"label"}
    assert schemas["catalogue.receipt.Line"]["properties"].keys() == {"sku", "quantity"}
    receipt_lines = schemas["catalogue.receipt"]["properties"]["lines"]
    assert receipt_lines["items"] == {"$ref": "#/components/schemas/catalogue.receipt.Line"}
    assert schemas["catalogue.dup"]["properties"]["line"] == {"$ref": "#/components/schemas/Other"}
    assert list(asyncapi_validator().iter_errors(document)) == []
