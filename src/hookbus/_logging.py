"""The structured extras of hookbus's log records.

hookbus logs with the standard :mod:`logging` module, on the ``hookbus``
logger. Besides its message, every record carries what applies of these
attributes (``extra=``), for JSON formatters and log pipelines::

    hookbus.mode          local, redis or rabbitmq
    hookbus.subscriber    the subscriber id
    hookbus.event_type    the event type's name
    hookbus.event_id      the event id
    hookbus.attempt       the delivery's attempt number (1 for the first try)

A plain formatter reaches them as ``%(hookbus.event_id)s`` (only on records
that carry them), a filter or a JSON formatter as
``getattr(record, "hookbus.event_id", None)``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ATTEMPT", "EVENT_ID", "EVENT_TYPE", "MODE", "SUBSCRIBER", "log_extra"]

MODE = "hookbus.mode"
SUBSCRIBER = "hookbus.subscriber"
EVENT_TYPE = "hookbus.event_type"
EVENT_ID = "hookbus.event_id"
ATTEMPT = "hookbus.attempt"


def log_extra(
    mode: str | None = None,
    *,
    subscriber: str | None = None,
    event_type: str | None = None,
    event_id: str | None = None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """The ``extra=`` of a log record: the attributes given (not ``None``)."""
    extra: dict[str, Any] = {}
    if mode is not None:
        extra[MODE] = mode
    if subscriber is not None:
        extra[SUBSCRIBER] = subscriber
    if event_type is not None:
        extra[EVENT_TYPE] = event_type
    if event_id is not None:
        extra[EVENT_ID] = event_id
    if attempt is not None:
        extra[ATTEMPT] = attempt
    return extra
