"""Comparing a catalogue with a saved baseline: breaking changes and the others.

Breaking (each names the event and, where there is one, the field):

* an event type removed;
* its durability changed;
* its version lowered, or raised without upcasters from the baseline's version
  up to the new one (stored events would become dead letters);
* a field removed;
* a field's type narrowed or changed (a value the old schema accepted is refused);
* a field that may be missing from old payloads is now required (added without
  a default, or its default removed), unless upcasters cover every version from
  the baseline's to the current one.

Anything else is listed as information: a new event type, an optional field
added, a type widened, a default added, a version raised with its upcasters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._model import Catalogue, EventEntry
from ._narrowing import narrowing

__all__ = ["Change", "CompatibilityReport", "check_compatibility"]


@dataclass(frozen=True)
class Change:
    """One difference between the baseline and the current catalogue."""

    event: str
    field: str | None
    message: str
    breaking: bool

    def __str__(self) -> str:
        where = self.event if self.field is None else f"{self.event}.{self.field}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class CompatibilityReport:
    """Every change found; :attr:`compatible` when none of them is breaking."""

    changes: tuple[Change, ...]

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def info(self) -> list[Change]:
        return [c for c in self.changes if not c.breaking]

    @property
    def compatible(self) -> bool:
        return not self.breaking


def check_compatibility(baseline: Catalogue, current: Catalogue) -> CompatibilityReport:
    """The changes from ``baseline`` (a saved catalogue) to ``current``."""
    changes: list[Change] = []
    for name, old in sorted(baseline.events.items()):
        new = current.events.get(name)
        if new is None:
            changes.append(Change(name, None, "event type removed", True))
        else:
            changes += _event_changes(old, new)
    for name in sorted(set(current.events) - set(baseline.events)):
        changes.append(Change(name, None, "new event type", False))
    return CompatibilityReport(tuple(changes))


def _event_changes(old: EventEntry, new: EventEntry) -> list[Change]:
    name = old.name
    changes: list[Change] = []
    if old.durable != new.durable:
        kinds = {True: "durable", False: "ephemeral"}
        change = f"durability changed: {kinds[old.durable]} → {kinds[new.durable]}"
        changes.append(Change(name, None, change, True))
    missing = [v for v in range(old.version, new.version) if v not in new.upcasters]
    upcast = new.version > old.version and not missing
    if new.version < old.version:
        changes.append(
            Change(
                name,
                None,
                f"version lowered from {old.version} to {new.version}: stored events of "
                f"version {old.version} would be refused",
                True,
            )
        )
    elif missing:
        steps = ", ".join(f"{v} → {v + 1}" for v in missing)
        changes.append(
            Change(
                name,
                None,
                f"version raised from {old.version} to {new.version} without an upcaster "
                f"for {steps}: stored events of version {old.version} would be dead letters",
                True,
            )
        )
    elif upcast:
        changes.append(
            Change(name, None, f"version raised from {old.version} to {new.version}, upcast", False)
        )
    changes += _field_changes(old, new, upcast)
    return changes


def _field_changes(old: EventEntry, new: EventEntry, upcast: bool) -> list[Change]:
    old_props: dict[str, Any] = old.schema.get("properties") or {}
    new_props: dict[str, Any] = new.schema.get("properties") or {}
    old_required = set(old.schema.get("required") or ())
    new_required = set(new.schema.get("required") or ())
    changes: list[Change] = []
    for field in old_props:
        if field not in new_props:
            changes.append(Change(old.name, field, "field removed", True))
            continue
        changes += _type_change(old, new, field)
        was, now = field in old_required, field in new_required
        if now and not was:
            changes.append(_now_required(new, field, upcast, "now required (its default removed)"))
        elif was and not now:
            changes.append(Change(old.name, field, "now optional (a default added)", False))
    for field in new_props:
        if field in old_props:
            continue
        if field in new_required:
            changes.append(_now_required(new, field, upcast, "required field added"))
        else:
            changes.append(Change(old.name, field, "optional field added", False))
    return changes


def _type_change(old: EventEntry, new: EventEntry, field: str) -> list[Change]:
    old_schema = old.schema["properties"][field]
    new_schema = new.schema["properties"][field]
    reason = narrowing(old_schema, new_schema, old.schema, new.schema)
    if reason is not None:
        return [Change(old.name, field, f"type changed incompatibly: {reason}", True)]
    if _bare(old_schema) != _bare(new_schema):
        return [Change(old.name, field, "type widened", False)]
    return []


def _now_required(new: EventEntry, field: str, upcast: bool, what: str) -> Change:
    """A field old events may lack: fine when they are upcast to the new version."""
    if upcast:
        return Change(new.name, field, f"{what}, upcast to version {new.version}", False)
    return Change(
        new.name,
        field,
        f"{what} without a default and without an upcaster to a new version: "
        "old events without it would be refused",
        True,
    )


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema without its annotations (title, description, default)."""
    return {k: v for k, v in schema.items() if k not in ("title", "description", "default")}
