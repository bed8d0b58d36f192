"""The catalogue as data, and its saved JSON form.

A saved catalogue is one JSON object::

    {"catalogue": 1, "title": "shop", "version": "1.4.0",
     "events": [{"name": "sale_closed", "class": "shop.events.SaleClosed",
                 "version": 2, "durable": true, "description": "...",
                 "fields": [{"name": "total", "type": "Decimal", "required": true}, ...],
                 "upcasters": [1],
                 "subscribers": [{"id": "accounting", "module": "shop.accounting",
                                  "handler": "shop.accounting.sync", "idempotent": false}],
                 "senders": ["shop.till"],
                 "schema": {...the payload's JSON Schema...}}, ...]}

``catalogue`` is the format's version. Events are sorted by name, fields in
declaration order; a field with a default has ``"default"`` (its JSON value;
absent when made by a factory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["FORMAT", "Catalogue", "EventEntry", "FieldEntry", "SubscriberEntry", "load_catalogue"]

FORMAT = 1


@dataclass(frozen=True)
class FieldEntry:
    """One field of an event's payload."""

    name: str
    type: str
    required: bool
    default: Any = None
    has_default: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.has_default:
            doc["default"] = self.default
        return doc


@dataclass(frozen=True)
class SubscriberEntry:
    """A subscription to an event type: its id, the handler and the handler's module."""

    id: str
    module: str
    handler: str
    idempotent: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "module": self.module,
            "handler": self.handler,
            "idempotent": self.idempotent,
        }


@dataclass(frozen=True)
class EventEntry:
    """One event type: name, version, durability, fields, JSON Schema, who sends and
    who receives it, and the versions its upcasters upgrade from."""

    name: str
    class_path: str
    version: int
    durable: bool
    description: str
    fields: tuple[FieldEntry, ...]
    schema: dict[str, Any]
    upcasters: tuple[int, ...] = ()
    subscribers: tuple[SubscriberEntry, ...] = ()
    senders: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.class_path,
            "version": self.version,
            "durable": self.durable,
            "description": self.description,
            "fields": [f.to_json() for f in self.fields],
            "upcasters": list(self.upcasters),
            "subscribers": [s.to_json() for s in self.subscribers],
            "senders": list(self.senders),
            "schema": self.schema,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EventEntry:
        return cls(
            name=doc["name"],
            class_path=doc.get("class", ""),
            version=int(doc.get("version", 1)),
            durable=bool(doc.get("durable", True)),
            description=doc.get("description", ""),
            fields=tuple(
                FieldEntry(
                    name=f["name"],
                    type=f.get("type", ""),
                    required=bool(f.get("required", False)),
                    default=f.get("default"),
                    has_default="default" in f,
                )
                for f in doc.get("fields", [])
            ),
            schema=doc.get("schema") or {},
            upcasters=tuple(int(v) for v in doc.get("upcasters", [])),
            subscribers=tuple(
                SubscriberEntry(
                    id=s["id"],
                    module=s.get("module", ""),
                    handler=s.get("handler", ""),
                    idempotent=bool(s.get("idempotent", False)),
                )
                for s in doc.get("subscribers", [])
            ),
            senders=tuple(doc.get("senders", [])),
        )


@dataclass(frozen=True)
class Catalogue:
    """Every event type of an application (see :func:`build_catalogue`)."""

    events: dict[str, EventEntry] = field(default_factory=dict)
    title: str = "hookbus events"
    version: str = "0.0.0"

    def to_json(self) -> dict[str, Any]:
        """The saved form (a JSON-ready dict)."""
        return {
            "catalogue": FORMAT,
            "title": self.title,
            "version": self.version,
            "events": [self.events[name].to_json() for name in sorted(self.events)],
        }

    def dumps(self) -> str:
        """The saved form as JSON text (indented, keys in a stable order)."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the saved form to ``path``."""
        Path(path).write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def from_json(cls, doc: object) -> Catalogue:
        """A catalogue from its saved form; :class:`ConfigurationError` if it is not one."""
        if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
            raise ConfigurationError("not a saved hookbus catalogue (no list of events)")
        if doc.get("catalogue") != FORMAT:
            raise ConfigurationError(
                f"unsupported catalogue format {doc.get('catalogue')!r} (expected {FORMAT})"
            )
        try:
            entries = [EventEntry.from_json(e) for e in doc["events"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"malformed catalogue entry: {exc!r}") from exc
        return cls(
            events={e.name: e for e in entries},
            title=str(doc.get("title", "hookbus events")),
            version=str(doc.get("version", "0.0.0")),
        )


def load_catalogue(path: str | Path) -> Catalogue:
    """Read a saved catalogue; :class:`ConfigurationError` (one line) if it cannot be."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{str(path)!r} is not JSON: {exc}") from exc
    return Catalogue.from_json(doc)
