"""Whether a new JSON Schema still accepts every value an old one accepted.

Used on pydantic's schemas of one field, old and new: ``narrowing(old, new)``
is None when the new schema accepts at least what the old one did (same
type, a wider one such as integer to number, a union that gained members,
a looser constraint), else a short reason (``"string is no longer
accepted"``). It is conservative: what it cannot prove accepted is reported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["narrowing"]

Schema = dict[str, Any]

# Keyword -> how a new bound may differ and still accept the old values.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "multipleOf", "format", "uniqueItems")
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)


class _Resolver:
    """``$ref`` lookups in the ``$defs`` of the two root schemas."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.roots = (old_root, new_root)
        self.seen: set[tuple[str, str]] = set()

    def deref(self, schema: Schema, side: int) -> Schema:
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            target: Any = self.roots[side]
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else rest
        return schema


def narrowing(
    old: Schema, new: Schema, old_root: Schema | None = None, new_root: Schema | None = None
) -> str | None:
    """None if ``new`` accepts every value ``old`` accepts, else why not."""
    return _narrowing(old, new, _Resolver(old_root or old, new_root or new))


def _narrowing(old: Schema, new: Schema, resolver: _Resolver) -> str | None:
    old_refs = (old.get("$ref"), new.get("$ref"))
    if all(isinstance(r, str) for r in old_refs):
        key = (str(old_refs[0]), str(old_refs[1]))
        if key in resolver.seen:  # a recursive model, compared already up the stack
            return None
        resolver.seen.add(key)
    new_alternatives = _alternatives(new, resolver, 1)
    old_alternatives = _alternatives(old, resolver, 0)
    for alternative in old_alternatives:
        reasons = [_accepts(alternative, n, resolver) for n in new_alternatives]
        if all(reason is not None for reason in reasons):
            if len(reasons) == 1 == len(old_alternatives) and reasons[0]:
                return reasons[0]  # one type to another: say how
            return f"{_describe(alternative)} is no longer accepted"
    return None


def _alternatives(schema: Schema, resolver: _Resolver, side: int) -> list[Schema]:
    """The schema as a list of alternatives without anyOf/oneOf or type lists."""
    schema = resolver.deref(schema, side)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            rest = {k: v for k, v in schema.items() if k != key}
            found: list[Schema] = []
            for member in schema[key]:
                found += _alternatives({**rest, **member}, resolver, side)
            return found
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return _alternatives({**rest, **schema["allOf"][0]}, resolver, side)
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return [{**schema, "type": kind} for kind in kinds]
    return [schema]


def _is_any(schema: Schema) -> bool:
    return not (set(schema) - _ANNOTATIONS)


def _values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    return None


def _accepts(old: Schema, new: Schema, resolver: _Resolver) -> str | None:
    """None if the single alternative ``new`` accepts every value of ``old``."""
    if _is_any(new):
        return None
    if _is_any(old):
        return f"any value is no longer accepted (now {_describe(new)})"
    new_values, old_values = _values(new), _values(old)
    if new_values is not None:
        if old_values is None:
            return f"{_describe(old)} narrowed to {_describe(new)}"
        missing = [v for v in old_values if v not in new_values]
        if missing:
            return f"values {', '.join(map(repr, missing))} are no longer accepted"
        return None
    old_type, new_type = old.get("type"), new.get("type")
    widened = old_type == "integer" and new_type == "number"
    if new_type is not None and old_type != new_type and not widened:
        return f"{_describe(old)} changed to {_describe(new)}"
    if old_values is not None:
        return None  # values of a type the new schema accepts, constraints aside
    reason = _constraints(old, new)
    if reason is None and new_type == "array":
        reason = _arrays(old, new, resolver)
    if reason is None and new_type == "object":
        reason = _objects(old, new, resolver)
    return reason


def _constraints(old: Schema, new: Schema) -> str | None:
    """None unless ``new`` has a bound, pattern or format ``old`` did not have as strict."""
    for key in _LOWER_BOUNDS:
        if key in new and not (key in old and old[key] >= new[key]):
            return f"{key} {new[key]!r} added or raised"
    for key in _UPPER_BOUNDS:
        if key in new and not (key in old and old[key] <= new[key]):
            return f"{key} {new[key]!r} added or lowered"
    for key in _EXACT:
        if key in new and old.get(key) != new[key]:
            return f"{key} {new[key]!r} required"
    return None


def _arrays(old: Schema, new: Schema, resolver: _Resolver) -> str | None:
    old_prefix, new_prefix = old.get("prefixItems"), new.get("prefixItems")
    if isinstance(new_prefix, list):
        if not isinstance(old_prefix, list) or len(old_prefix) > len(new_prefix):
            return "items narrowed to a tuple"
        for index, (o, n) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            reason = _narrowing(o, n, resolver)
            if reason is not None:
                return f"item {index}: {reason}"
    if isinstance(new.get("items"), dict):
        old_items = old.get("items")
        if not isinstance(old_items, dict):
            return None if isinstance(old_prefix, list) else "items narrowed"
        reason = _narrowing(old_items, new["items"], resolver)
        if reason is not None:
            return f"items: {reason}"
    return None


def _objects(old: Schema, new: Schema, resolver: _Resolver) -> str | None:
    old_props: Schema = old.get("properties") or {}
    new_props: Schema = new.get("properties") or {}
    old_required = set(old.get("required") or ())
    for name in new.get("required") or ():
        if name not in old_required:
            return f"field {name!r} became required"
    for name, schema in old_props.items():
        if name in new_props:
            reason = _narrowing(schema, new_props[name], resolver)
            if reason is not None:
                return f"field {name!r}: {reason}"
        elif new.get("additionalProperties") is False:
            return f"field {name!r} is no longer accepted"
    extra = new.get("additionalProperties")
    if isinstance(extra, dict) and not _is_any(extra):
        old_extra = old.get("additionalProperties")
        if not isinstance(old_extra, dict):
            return None if old_extra is False else "additional properties narrowed"
        reason = _narrowing(old_extra, extra, resolver)
        if reason is not None:
            return f"values: {reason}"
    if extra is False and old.get("additionalProperties") is not False:
        return "additional properties no longer accepted"
    return None


def _describe(schema: Schema) -> str:
    values = _values(schema)
    if values is not None:
        return " | ".join(map(repr, values))
    kind = schema.get("type")
    if kind is None:
        return "any value" if _is_any(schema) else "a value"
    text = str(kind)
    if "format" in schema:
        text += f" ({schema['format']})"
    return text
