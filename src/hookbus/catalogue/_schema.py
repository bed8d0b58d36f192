"""The JSON Schema of an event's payload (the envelope's ``data``)."""

from __future__ import annotations

from typing import Any

from .._event import Event

__all__ = ["JSON_SCHEMA_DIALECT", "event_schema", "schema_id"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(name: str, version: int) -> str:
    """The ``$id`` of the schema of version ``version`` of event type ``name``."""
    return f"urn:hookbus:event:{name}:{version}"


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """Pydantic's JSON Schema (draft 2020-12, validation mode: what the class accepts)
    of ``cls``'s payload, with ``$id`` (the name and version), ``title`` (the event
    name) and ``x-hookbus-version`` / ``x-hookbus-durable``."""
    schema = cls.model_json_schema()
    name = cls.__event_name__
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(name, cls.__event_version__),
        **schema,
        "title": name,
        "x-hookbus-version": cls.__event_version__,
        "x-hookbus-durable": cls.__event_durable__,
    }
