"""The catalogue as an AsyncAPI 3.0 document.

One channel per event type (its address is the event name), one message per
channel whose payload is the CloudEvents envelope with the event's schema as
``data``; one ``receive`` operation per module that subscribes to the type (the
handlers' ``__module__``, subscriber ids in ``x-hookbus-subscribers``) and one
``send`` operation per module known to emit it. The events' nested models
become shared schemas under ``components.schemas``.
"""

from __future__ import annotations

import re
from typing import Any

from ._model import Catalogue, EventEntry

__all__ = ["ASYNCAPI_VERSION", "CONTENT_TYPE", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/cloudevents+json"
_KEY_UNSAFE = re.compile(r"[^\w.\-]")
_DEFS_REF = "#/$defs/"


def asyncapi_document(
    catalogue: Catalogue,
    *,
    title: str | None = None,
    version: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) of ``catalogue``; ``title`` and
    ``version`` default to the catalogue's."""
    info: dict[str, Any] = {
        "title": title if title is not None else catalogue.title,
        "version": version if version is not None else catalogue.version,
        "description": description
        or (
            "Events of the application on its hookbus event bus. Every message is a "
            "CloudEvents 1.0 envelope in structured JSON mode; its `data` is the event."
        ),
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    keys = {_key(name) for name in catalogue.events}
    reserved = keys | {f"{key}.envelope" for key in keys}
    for entry in catalogue.events.values():
        key = _key(entry.name)
        schemas[key] = _data_schema(entry, key, schemas, reserved)
        schemas[f"{key}.envelope"] = _envelope_schema(entry, key)
        messages[key] = _message(entry, key)
        channels[key] = {
            "address": entry.name,
            "title": entry.name,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "x-hookbus-durable": entry.durable,
        }
        if entry.description:
            channels[key]["description"] = entry.description
        operations.update(_operations(entry, key))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _key(name: str) -> str:
    """A component key (letters, digits, ``_ . -``) for an event or model name."""
    return _KEY_UNSAFE.sub("_", name)


def _message(entry: EventEntry, key: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": entry.name,
        "title": entry.class_path.rpartition(".")[2] or entry.name,
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{key}.envelope"},
        "x-hookbus-version": entry.version,
    }
    if entry.description:
        message["summary"] = entry.description.splitlines()[0]
    return message


def _operations(entry: EventEntry, key: str) -> dict[str, Any]:
    channel = {"$ref": f"#/channels/{key}"}
    message = [{"$ref": f"#/channels/{key}/messages/{key}"}]
    operations: dict[str, Any] = {}
    for module in entry.senders:
        operations[f"{_key(module)}.send.{key}"] = {
            "action": "send",
            "channel": channel,
            "messages": message,
            "summary": f"{module} emits {entry.name}",
        }
    by_module: dict[str, list[str]] = {}
    for sub in entry.subscribers:
        by_module.setdefault(sub.module, []).append(sub.id)
    for module, ids in sorted(by_module.items()):
        operations[f"{_key(module)}.receive.{key}"] = {
            "action": "receive",
            "channel": channel,
            "messages": message,
            "summary": f"{module} handles {entry.name}",
            "x-hookbus-subscribers": ids,
        }
    return operations


def _envelope_schema(entry: EventEntry, key: str) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "title": f"{entry.name} envelope",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {**text, "description": "UUIDv7, unique; stable across redeliveries"},
            "source": text,
            "type": {"const": entry.name},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "eventversion": {
                "const": entry.version,
                "description": "version of data (absent: 1); older ones are upcast",
            },
            "correlationid": text,
            "causationid": text,
            "traceparent": text,
            "data": {"$ref": f"#/components/schemas/{key}"},
        },
    }


def _data_schema(
    entry: EventEntry, key: str, shared: dict[str, Any], reserved: set[str]
) -> dict[str, Any]:
    """The event's schema for ``components.schemas``: its ``$defs`` moved there under
    their own names or, when one of them would clash with a different schema already
    there (or with an event's key), all under names prefixed with the event's key."""
    schema = {k: v for k, v in entry.schema.items() if k not in ("$schema", "$defs")}
    defs: dict[str, Any] = entry.schema.get("$defs") or {}
    renamed = {name: _key(name) for name in defs}
    moved = {name: _rewrite(d, renamed) for name, d in defs.items()}
    if any(
        renamed[name] in reserved or shared.get(renamed[name], moved[name]) != moved[name]
        for name in defs
    ):
        renamed = {name: f"{key}.{_key(name)}" for name in defs}
        moved = {name: _rewrite(d, renamed) for name, d in defs.items()}
    for name, definition in moved.items():
        shared[renamed[name]] = definition
    rewritten: dict[str, Any] = _rewrite(schema, renamed)
    return rewritten


def _rewrite(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        out = {k: _rewrite(v, renamed) for k, v in node.items()}
        if isinstance(ref, str) and ref.startswith(_DEFS_REF):
            name = ref[len(_DEFS_REF) :]
            out["$ref"] = f"#/components/schemas/{renamed.get(name, _key(name))}"
        return out
    if isinstance(node, list):
        return [_rewrite(v, renamed) for v in node]
    return node
