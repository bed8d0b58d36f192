"""Durations and points in time on the command line: ``90``, ``30s``, ``10m``, ``2h``,
``7d``; ``2025-11-03T14:00`` (ISO 8601, local time unless it says otherwise)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ._errors import EXIT_USAGE, CliError

__all__ = ["parse_duration", "parse_since"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """``30s``, ``10m``, ``2h``, ``7d``, ``1w`` or a number of seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise CliError(f"not a duration: {text!r} (e.g. 90, 30s, 10m, 2h, 7d)", EXIT_USAGE)
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def parse_since(text: str) -> str | datetime:
    """A replay's start: an event id (kept as text), a time, or a duration ago."""
    if _DURATION.match(text.lower()):
        return datetime.now(UTC) - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # an event id; the backend says if it is not one
    return moment if moment.tzinfo is not None else moment.astimezone()
