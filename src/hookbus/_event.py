"""The :class:`Event` base class and the registry of declared event types."""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ._exceptions import ConfigurationError, InvalidEventError, UnknownEventError
from ._logging import log_extra

__all__ = [
    "Event",
    "declared",
    "event_name",
    "event_types",
    "event_version",
    "is_durable",
    "resolve_event_type",
]

logger = logging.getLogger("hookbus")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

# name -> class. A later declaration under the same name replaces the earlier
# one (module reloads, classes declared inside tests); the bus's own types,
# from its subscriptions, are looked up first.
_registry: dict[str, type[Event]] = {}


def _snake_case(class_name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", class_name).lower()


class Event(BaseModel):
    """Base class of every event: a frozen pydantic model.

    Declare an event by subclassing, with three optional class keywords::

        class SaleClosed(Event):                       # name "sale_closed", durable
            session_id: int

        class ProgressUpdated(Event, durable=False):   # ephemeral: live, at most once
            percent: float

        class MemberCreated(Event, version=2):         # the payload's second version
            member_id: int
            email: str

    ``name`` defaults to the snake_case of the class name; ``durable``
    defaults to the parent's value (``True`` for direct subclasses). Durable
    (critical) events are retried and dead-lettered and, in redis mode,
    stored in a stream; ephemeral ones go only to the subscribers present.
    ``version`` (default 1, not inherited: it belongs to the name) is
    stamped on every envelope; envelopes of older versions are upgraded by
    the upcasters declared with :func:`hookbus.upcaster` when decoded.

    Building an event with bad fields raises :class:`InvalidEventError`, which
    is also a :class:`pydantic.ValidationError`. Unknown fields are refused,
    and so are infinite and NaN floats, which JSON cannot carry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    __event_name__: ClassVar[str] = "event"
    __event_durable__: ClassVar[bool] = True
    __event_version__: ClassVar[int] = 1

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        durable: bool | None = None,
        version: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        event_type = name if name is not None else _snake_case(cls.__name__)
        if not isinstance(event_type, str) or not _NAME_RE.match(event_type):
            raise ConfigurationError(
                f"invalid event name {event_type!r} for {cls.__qualname__}: use 1-200 "
                "letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
            )
        if durable is not None and not isinstance(durable, bool):
            raise ConfigurationError(f"durable= must be True or False, got {durable!r}")
        if type(version) is not int or version < 1:
            raise ConfigurationError(
                f"version= of {cls.__qualname__} must be an integer >= 1, got {version!r}"
            )
        cls.__event_name__ = event_type
        cls.__event_version__ = version
        if durable is not None:
            cls.__event_durable__ = durable
        previous = _registry.get(event_type)
        if previous is not None and (previous.__module__, previous.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            logger.warning(
                "event name %r of %s.%s replaces %s.%s in the registry; emit by name on a bus "
                "that did not subscribe or register either class resolves to the newer one",
                event_type,
                cls.__module__,
                cls.__qualname__,
                previous.__module__,
                previous.__qualname__,
                extra=log_extra(event_type=event_type),
            )
        _registry[event_type] = cls

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except InvalidEventError:
            raise
        except ValidationError as exc:
            raise InvalidEventError.from_validation(exc) from None

    # Only the error differs from pydantic's own __init__: marked as such, pydantic
    # builds decoded events directly instead of calling it (which would validate the
    # data a second time).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def event_name(event_type: type[Event] | Event) -> str:
    """The wire name of an event class or instance (``"sale_closed"``)."""
    return event_type.__event_name__


def is_durable(event_type: type[Event] | Event) -> bool:
    """Whether events of this type are critical (durable) or ephemeral."""
    return event_type.__event_durable__


def event_version(event_type: type[Event] | Event) -> int:
    """The payload version of an event class or instance (1 unless declared)."""
    return event_type.__event_version__


def event_types() -> dict[str, type[Event]]:
    """Every declared event type, by name (a copy)."""
    return dict(_registry)


def declared(name: str) -> type[Event] | None:
    """The class declared under ``name``, or None (no copy of the registry)."""
    return _registry.get(name)


def resolve_event_type(name: str, preferred: dict[str, type[Event]] | None = None) -> type[Event]:
    """Find the class declared under ``name``; raise :class:`UnknownEventError`."""
    if preferred and name in preferred:
        return preferred[name]
    cls = _registry.get(name)
    if cls is None:
        known = set(_registry) | set(preferred or ())
        raise UnknownEventError(name, sorted(known))
    return cls
