"""The event catalogue: every event type of an application, as data and as documents.

From a bus (its subscribed and registered event types, its subscribers) and the
declared :class:`~hookbus.Event` subclasses::

    from hookbus.catalogue import asyncapi_document, build_catalogue, check_compatibility

    catalogue = build_catalogue(bus, title="shop", version="1.4.0")
    catalogue.save("events.json")                    # the baseline, kept in the repository
    document = asyncapi_document(catalogue)          # AsyncAPI 3.0, a JSON-ready dict
    report = check_compatibility(load_catalogue("events.json"), catalogue)
    for change in report.breaking:
        print(change)                                # "sale_closed.total: field removed"

Each entry has the event's name, class, version, durability, fields (name,
type, required, default), JSON Schema (:func:`event_schema`), upcasters,
subscribers and, when given, the modules that emit it. The rules of the
compatibility check are in docs/events.md ("Events that evolve").
"""

from ._asyncapi import asyncapi_document
from ._build import build_catalogue, event_entry
from ._compat import Change, CompatibilityReport, check_compatibility
from ._model import Catalogue, EventEntry, FieldEntry, SubscriberEntry, load_catalogue
from ._schema import event_schema

__all__ = [
    "Catalogue",
    "Change",
    "CompatibilityReport",
    "EventEntry",
    "FieldEntry",
    "SubscriberEntry",
    "asyncapi_document",
    "build_catalogue",
    "check_compatibility",
    "event_entry",
    "event_schema",
    "load_catalogue",
]
