"""Dead letters as text lines and as a detailed view (as JSON: ``DeadLetter.to_dict``)."""

from __future__ import annotations

import json

from .._dead_letter import DeadLetter

__all__ = ["letter_details", "letter_line"]


def letter_line(letter: DeadLetter) -> str:
    """One dead letter on one line: id, subscriber, type, event id, attempts, error,
    then where it came from and, if it could not be decoded, the start of its bytes."""
    message = " ".join(letter.error_message.split())
    line = (
        f"{letter.id}  {letter.subscriber}  {letter.event_type}  {letter.event_id or '-'}  "
        f"attempts={letter.attempts}  {letter.error_type}: {message}"
    )
    if letter.source is not None:
        line += f"  [from {letter.source} entry {letter.position}]"
    if letter.envelope is None and letter.payload is not None:
        line += f"  [payload, {len(letter.payload)} bytes: {_preview(letter.payload)}]"
    return line


def letter_details(letter: DeadLetter) -> list[tuple[str, str]]:
    """``(label, value)`` pairs: every detail of a dead letter, the event's data last."""
    rows = [
        ("id", letter.id),
        ("subscriber", letter.subscriber),
        ("event type", letter.event_type),
        ("event id", letter.event_id or "-"),
        ("attempts", str(letter.attempts)),
        ("failed at", letter.failed_at.isoformat()),
        ("error", f"{letter.error_type}: {letter.error_message}"),
    ]
    if letter.source is not None:
        rows.append(("from", f"{letter.source} entry {letter.position}"))
    if letter.envelope is not None:
        envelope = json.loads(letter.envelope.encode())
        rows.append(("emitted at", str(envelope.get("time", "-"))))
        rows.append(("data", json.dumps(envelope.get("data"), indent=2, ensure_ascii=False)))
    elif letter.payload is not None:
        rows.append(("payload", f"{len(letter.payload)} bytes: {_preview(letter.payload, 2000)}"))
    return rows


def _preview(payload: bytes, limit: int = 120) -> str:
    """The start of a raw payload, printable whatever its bytes."""
    text = repr(payload[:limit])[2:-1]
    return text + ("..." if len(payload) > limit else "")
