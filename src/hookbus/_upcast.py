"""Upcasters: functions that upgrade an older event payload to the next version.

An event class declares its version (``class SaleClosed(Event, version=2)``)
and, for each older version still stored somewhere, an upcaster::

    @hookbus.upcaster("sale_closed", from_version=1)
    def sale_closed_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": "EUR"}

When an envelope of version 1 is decoded for the version-3 class, the
upcasters from 1 and from 2 run in order on the payload (a plain dict, as
decoded from JSON), then the result is validated by the class. A step that
is missing, that fails, or that returns something else than a dict makes
the envelope invalid (:class:`InvalidEnvelopeError`), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ._event import Event
from ._exceptions import ConfigurationError, InvalidEnvelopeError, error_text

__all__ = ["Upcaster", "upcast", "upcaster", "upcasters_of"]

#: An upcaster: the payload of version N in, the payload of version N + 1 out.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
U = TypeVar("U", bound=Upcaster)

# event name -> {from_version: upcaster}
_upcasters: dict[str, dict[int, Upcaster]] = {}


def upcaster(event_type: type[Event] | str, *, from_version: int) -> Callable[[U], U]:
    """Decorator declaring ``fn(data) -> data`` as the upgrade of ``event_type``'s
    payload from ``from_version`` to ``from_version + 1``; returns ``fn`` unchanged.

    Declaring a second, different function for the same step raises
    :class:`ConfigurationError` (the same function again, as on a module
    reload, replaces the first).
    """
    name = event_type if isinstance(event_type, str) else event_type.__event_name__
    if type(from_version) is not int or from_version < 1:
        raise ConfigurationError(f"from_version must be an integer >= 1, got {from_version!r}")

    def decorator(fn: U) -> U:
        if not callable(fn):
            raise TypeError(f"an upcaster must be callable, got {fn!r}")
        steps = _upcasters.setdefault(name, {})
        previous = steps.get(from_version)
        if previous is not None and _qualified(previous) != _qualified(fn):
            raise ConfigurationError(
                f"{name!r} already has an upcaster from version {from_version}: "
                f"{_qualified(previous)} (and now {_qualified(fn)})"
            )
        steps[from_version] = fn
        return fn

    return decorator


def upcasters_of(name: str) -> dict[int, Upcaster]:
    """The upcasters of event type ``name``, by the version they upgrade from (a copy)."""
    return dict(_upcasters.get(name, {}))


def upcast(cls: type[Event], version: int, data: Any) -> Any:
    """The payload ``data`` of ``version`` upgraded to ``cls``'s version.

    Raises :class:`InvalidEnvelopeError` naming both versions when ``version``
    is newer than the class, or when an upcaster is missing or fails.
    """
    name = cls.__event_name__
    current = cls.__event_version__
    if version > current:
        raise InvalidEnvelopeError(
            f"{name!r} of version {version} is newer than {cls.__qualname__} (version "
            f"{current}): this process runs an older declaration of the event"
        )
    steps = _upcasters.get(name, {})
    for step in range(version, current):
        fn = steps.get(step)
        if fn is None:
            raise InvalidEnvelopeError(
                f"{name!r} of version {version} cannot be read as version {current}: "
                f"no upcaster from version {step} to {step + 1}"
            )
        if not isinstance(data, dict):
            raise InvalidEnvelopeError(
                f"{name!r} of version {version}: data is not a JSON object, so it cannot be upcast"
            )
        try:
            data = fn(data)
        except Exception as exc:
            raise InvalidEnvelopeError(
                f"{name!r}: the upcaster from version {step} to {step + 1} failed "
                f"({error_text(exc)}) on an event of version {version}"
            ) from exc
        if not isinstance(data, dict):
            raise InvalidEnvelopeError(
                f"{name!r}: the upcaster from version {step} to {step + 1} returned "
                f"{type(data).__name__}, not a dict"
            )
    return data


def _qualified(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
