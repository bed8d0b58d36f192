"""Replay in redis mode: where to rewind a consumer group to.

``bus.replay(subscriber, since=...)`` sets the subscriber's group back so
that every entry from ``since`` on is delivered again (to that subscriber
only). ``since`` is an event id (as returned by ``emit``) or a time.
"""

from __future__ import annotations

from datetime import datetime

from .._exceptions import HookbusError
from .._ids import id_time
from .client import Redis, id_key
from .scripts import COUNT_RANGE

__all__ = ["entries_read_at", "entry_of_event_in", "replay_position"]

_MAX_SEQ = 2**64 - 1
_COUNT_PAGE = 10_000
_SEARCH_WINDOW_MS = 60_000  # clocks of emitter and Redis may differ by this much


async def replay_position(client: Redis, stream: bytes, since: str | datetime) -> str:
    """The group position (last delivered id) from which ``since`` is delivered again."""
    if isinstance(since, datetime):
        ms = int(since.timestamp() * 1000)
        return "0-0" if ms <= 0 else f"{ms - 1}-{_MAX_SEQ}"
    entry_id = await _entry_of_event(client, stream, since)
    previous = await client.xrevrange(stream, max=b"(" + entry_id, min="-", count=1)
    return previous[0][0].decode() if previous else "0-0"


async def entries_read_at(client: Redis, stream: bytes, position: str) -> int | None:
    """How many entries a group set back to ``position`` has read (for ``XGROUP SETID
    ... ENTRIESREAD``), so that Redis keeps telling its lag during the replay; ``None``
    when entries were deleted from the stream (Redis cannot count then either).

    The entries after ``position`` are counted on the server, a page at a time, up to
    the stream's last entry when counting began; entries added since then are after
    it, so ``entries added then - entries counted`` is exact.
    """
    info = await client.xinfo_stream(stream)
    deleted = info.get("max-deleted-entry-id")
    if deleted is not None and id_key(deleted) != (0, 0):
        return None
    last = info["last-generated-id"]
    last = last.decode() if isinstance(last, bytes) else str(last)
    count_range = client.register_script(COUNT_RANGE)
    counted = 0
    start = "(" + position
    while True:
        read, end = await count_range(keys=[stream], args=[start, last, _COUNT_PAGE])
        counted += int(read)
        if int(read) < _COUNT_PAGE:
            break
        start = "(" + (end.decode() if isinstance(end, bytes) else str(end))
    return max(0, int(info["entries-added"]) - counted)


async def entry_of_event_in(client: Redis, streams: list[bytes], event_id: str) -> bytes | None:
    """The entry id of event ``event_id`` in one of ``streams``, or None."""
    for stream in streams:
        try:
            return await _entry_of_event(client, stream, event_id)
        except HookbusError:
            continue
    return None


async def _entry_of_event(client: Redis, stream: bytes, event_id: str) -> bytes:
    """The stream entry holding event ``event_id`` (searched around its time)."""
    emitted = id_time(event_id)
    if emitted is None:
        raise HookbusError(f"{event_id!r} is not a hookbus event id; pass an id or a datetime")
    ms = int(emitted.timestamp() * 1000)
    start = f"{max(0, ms - _SEARCH_WINDOW_MS)}-0"
    needle = f'"id":"{event_id}"'.encode()
    while True:
        entries = await client.xrange(stream, min=start, max=f"{ms + _SEARCH_WINDOW_MS}", count=500)
        for entry_id, fields in entries:
            if needle in fields.get(b"e", b""):
                return bytes(entry_id)
        if len(entries) < 500:
            raise HookbusError(
                f"event {event_id} is not in {stream.decode()} (trimmed, or another type)"
            )
        start = "(" + entries[-1][0].decode()
