"""Building the catalogue from a bus and the declared event classes."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from .._event import Event, event_types
from .._upcast import upcasters_of
from ._model import Catalogue, EventEntry, FieldEntry, SubscriberEntry
from ._schema import event_schema

if TYPE_CHECKING:
    from .._bus import EventBus

__all__ = ["build_catalogue", "event_entry", "type_name"]

_TYPING_PREFIX = re.compile(r"\b(typing|typing_extensions|collections\.abc|builtins)\.")


def build_catalogue(
    bus: EventBus | None = None,
    *,
    declared: bool = True,
    senders: Mapping[str | type[Event], Iterable[str]] | None = None,
    title: str = "hookbus events",
    version: str = "0.0.0",
) -> Catalogue:
    """The catalogue of ``bus``'s event types (subscribed or registered) and their
    subscribers and, with ``declared`` (default), of every declared ``Event`` subclass.

    ``senders`` maps event types to the modules that emit them, when known (emitting
    is not recorded by the bus); ``title`` and ``version`` name the application.
    """
    classes: dict[str, type[Event]] = dict(event_types()) if declared else {}
    subscribers: dict[str, list[SubscriberEntry]] = {}
    if bus is not None:
        classes.update(bus.event_types)
        for sub in bus.subscriptions:
            entry = _subscriber(sub.id, sub.handler, sub.idempotent)
            subscribers.setdefault(sub.event_name, []).append(entry)
    sent: dict[str, list[str]] = {}
    for key, modules in (senders or {}).items():
        name = key if isinstance(key, str) else key.__event_name__
        sent.setdefault(name, []).extend(modules)
    events = {
        name: event_entry(
            cls,
            subscribers=subscribers.get(name, ()),
            senders=sorted(set(sent.get(name, ()))),
        )
        for name, cls in classes.items()
    }
    return Catalogue(events=dict(sorted(events.items())), title=title, version=version)


def event_entry(
    cls: type[Event],
    *,
    subscribers: Iterable[SubscriberEntry] = (),
    senders: Iterable[str] = (),
) -> EventEntry:
    """The catalogue entry of one event class."""
    name = cls.__event_name__
    return EventEntry(
        name=name,
        class_path=f"{cls.__module__}.{cls.__qualname__}",
        version=cls.__event_version__,
        durable=cls.__event_durable__,
        description=inspect.cleandoc(cls.__doc__) if cls.__doc__ else "",
        fields=tuple(_field(n, f) for n, f in cls.model_fields.items()),
        schema=event_schema(cls),
        upcasters=tuple(sorted(v for v in upcasters_of(name) if v < cls.__event_version__)),
        subscribers=tuple(subscribers),
        senders=tuple(senders),
    )


def type_name(annotation: Any) -> str:
    """A readable name of a field's type: ``int``, ``Decimal``, ``str | None``, ``list[Line]``."""
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or _TYPING_PREFIX.sub("", repr(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return _TYPING_PREFIX.sub("", repr(annotation))


def _field(name: str, info: FieldInfo) -> FieldEntry:
    required = info.is_required()
    has_default = not required and info.default is not PydanticUndefined
    default = None
    if has_default:
        try:
            default = to_jsonable_python(info.default)
        except Exception:  # a default JSON cannot carry: shown as text
            default = repr(info.default)
    return FieldEntry(
        name=info.alias or name,
        type=type_name(info.annotation),
        required=required,
        default=default,
        has_default=has_default,
    )


def _subscriber(sub_id: str, handler: Any, idempotent: bool) -> SubscriberEntry:
    module = str(getattr(handler, "__module__", None) or type(handler).__module__)
    qualname = str(getattr(handler, "__qualname__", None) or type(handler).__qualname__)
    return SubscriberEntry(
        id=sub_id, module=module, handler=f"{module}.{qualname}", idempotent=idempotent
    )
