"""The redis mode's status (see :mod:`hookbus._status`), read from Redis.

Per durable event type: the stream's length (``XLEN``) and its consumer
groups (``XINFO GROUPS``). Per subscriber (group), over the type's stream and
the subscriber's re-queue stream:

* ``lag``: the group's ``lag`` (Redis 7); when Redis cannot tell (a group set
  back by hand), 0 if the group was delivered the stream's last entry, else
  unknown;
* ``pending``: the group's pending entries; the age of the oldest is the time
  since it was stored (its entry id's time, on the server's clock, ``XPENDING``);
* ``consumers``: the processes consuming the group: those whose heartbeat in
  ``<p>:live-consumers:<type>:<subscriber>`` has not expired (renewed every
  ``claim_idle / 3``; a process that stops removes it, one that dies stops
  counting ``claim_idle`` later, when its entries are taken over). ``XINFO
  CONSUMERS`` cannot tell: before Redis 7.2 a consumer is listed only once it
  was delivered something, and its idle time grows while its reads find
  nothing;
* ``dead_letters``: counted per subscriber and type on the server, a page at a
  time (:data:`~hookbus._redis.scripts.COUNT_DEAD`).

Groups on these streams that the application does not declare are listed too
(``declared=False``); on a cluster, so are the groups of the other durable
types in ``<p>:types``. The work is a few commands per group and one script
call per 2,000 dead letters; nothing reads the events themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._exceptions import BusUnavailableError
from .._status import BackendStatus, EventTypeStatus, SubscriberStatus
from .._subscription import Subscription
from .client import Redis, id_key
from .scripts import COUNT_DEAD
from .shared import RedisShared

__all__ = ["redis_status"]

_DEAD_PAGE = 2000


async def redis_status(shared: RedisShared, subscriptions: Sequence[Subscription]) -> BackendStatus:
    """The status of ``subscriptions`` and of the groups found beside them."""
    client = shared.client
    if client is None:
        raise BusUnavailableError("the redis backend is not started")
    keys = shared.keys
    declared: dict[str, list[str]] = {}
    ephemeral: dict[str, list[str]] = {}
    for sub in subscriptions:
        target = declared if sub.durable else ephemeral
        target.setdefault(sub.event_name, []).append(sub.id)
    durable_types = list(declared)
    if keys.cluster:
        members = await client.smembers(keys.types())
        durable_types += sorted({m.decode() for m in members} - set(declared))
    seconds, micros = await client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    dead = await _dead_letter_counts(client, shared, durable_types)
    types: list[EventTypeStatus] = []
    rows: list[SubscriberStatus] = []
    for name in durable_types:
        stream = keys.stream(name)
        groups = {_text(g["name"]): g for g in await _groups(client, stream)}
        types.append(EventTypeStatus(name, True, int(await client.xlen(stream))))
        wanted = declared.get(name, [])
        for group in [*wanted, *sorted(set(groups) - set(wanted))]:
            reading = _Reading(client, now_ms)
            await reading.add(stream, group, groups.get(group))
            requeue = keys.requeue(name, group)
            found = {_text(g["name"]): g for g in await _groups(client, requeue)}
            await reading.add(requeue, group, found.get(group))
            beating = await client.zrangebyscore(keys.live_consumers(name, group), now_ms, "+inf")
            reading.consumers.update(_text(member) for member in beating)
            rows.append(reading.row(group, name, group in wanted, dead.get((group, name), 0)))
    for name, subscribers in ephemeral.items():
        types.append(EventTypeStatus(name, False))
        rows += [SubscriberStatus(s, name, False, dead_letters=0) for s in subscribers]
    return BackendStatus(tuple(types), tuple(rows))


class _Reading:
    """One subscriber's figures, summed over its streams."""

    def __init__(self, client: Redis, now_ms: int) -> None:
        self._client = client
        self._now_ms = now_ms
        self.exists = False
        self.lag: int | None = 0
        self.pending = 0
        self.oldest_ms: int | None = None
        self.consumers: set[str] = set()

    async def add(self, stream: str, group: str, info: dict[str, Any] | None) -> None:
        if info is None:
            return
        self.exists = True
        lag = await self._lag(stream, info)
        self.lag = None if lag is None or self.lag is None else self.lag + lag
        pending = int(info["pending"])
        self.pending += pending
        if pending:
            summary = await self._client.xpending(stream, group)
            if summary["min"] is not None:
                oldest = id_key(summary["min"])[0]
                self.oldest_ms = oldest if self.oldest_ms is None else min(oldest, self.oldest_ms)

    async def _lag(self, stream: str, info: dict[str, Any]) -> int | None:
        lag = info.get("lag")
        if lag is not None:
            return int(lag)
        last = (await self._client.xinfo_stream(stream))["last-generated-id"]
        return 0 if id_key(info["last-delivered-id"]) >= id_key(last) else None

    def row(self, group: str, event_type: str, declared: bool, dead: int) -> SubscriberStatus:
        if not self.exists:  # no process declaring it has started: nothing is kept for it
            return SubscriberStatus(group, event_type, True, consumers=0, dead_letters=dead)
        age = None
        if self.oldest_ms is not None:
            age = max(0.0, (self._now_ms - self.oldest_ms) / 1000)
        return SubscriberStatus(
            group,
            event_type,
            True,
            lag=self.lag,
            pending=self.pending,
            oldest_pending_age=age,
            consumers=len(self.consumers),
            dead_letters=dead,
            declared=declared,
        )


async def _groups(client: Redis, stream: str) -> list[dict[str, Any]]:
    """``XINFO GROUPS`` of ``stream``; none if it does not exist."""
    try:
        groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    except Exception as exc:
        if "no such key" in str(exc):
            return []
        raise
    return groups


async def _dead_letter_counts(
    client: Redis, shared: RedisShared, types: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Dead letters per (subscriber, event type), counted on the server."""
    keys = shared.keys
    streams = sorted({keys.dead(name) for name in types}) if keys.cluster else [keys.dead("")]
    script = client.register_script(COUNT_DEAD)
    counts: dict[tuple[str, str], int] = {}
    for stream in streams:
        start = "-"
        while True:
            read, last, flat = await script(keys=[stream], args=[start, _DEAD_PAGE])
            for index in range(0, len(flat), 2):
                subscriber, _, event_type = _text(flat[index]).partition("\n")
                key = (subscriber, event_type)
                counts[key] = counts.get(key, 0) + int(flat[index + 1])
            if int(read) < _DEAD_PAGE:
                break
            start = "(" + _text(last)
    return counts


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
