"""Consumer-group commands the redis backend's parts share.

Each durable subscription is a consumer group (named by subscriber id) on
its event type's stream and on its re-queue stream; this process is one
consumer of every group (``shared.consumer``).
"""

from __future__ import annotations

import logging
from typing import Any

from .._logging import log_extra
from .client import Redis, id_key, redis_errors
from .shared import RedisShared

__all__ = [
    "create_group",
    "delivery_counts",
    "group_caught_up",
    "hand_back",
    "record_lost",
]

logger = logging.getLogger("hookbus")


async def create_group(client: Redis, stream: bytes, group: str, start: str | bytes) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists."""
    try:
        await client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis_errors.ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):
            raise


async def hand_back(shared: RedisShared, group: str, stream: bytes, ids: list[bytes]) -> None:
    """Entries this process will not handle, as it stops: mark them long idle so
    that another consumer of the group takes them over at once."""
    if ids:
        idle_ms = int(shared.options.claim_idle * 1000) * 10
        await shared.client.xclaim(
            stream, group, shared.consumer, 0, ids, idle=idle_ms, justid=True
        )


async def record_lost(shared: RedisShared, subscriber: str, stream: bytes, ids: list[Any]) -> None:
    """Pending entries that vanished from the stream (trimmed or deleted by hand):
    count them in Redis and report them."""
    await shared.client.hincrby(shared.keys.lost(), stream, len(ids))
    logger.error(
        "subscriber %s: %d pending entr%s of %s vanished before being handled (trimmed "
        "or deleted by hand): %s",
        subscriber,
        len(ids),
        "y" if len(ids) == 1 else "ies",
        stream.decode(),
        ", ".join(i.decode() if isinstance(i, bytes) else str(i) for i in ids[:10]),
        extra=log_extra("redis", subscriber=subscriber),
    )


async def delivery_counts(
    shared: RedisShared, group: str, stream: bytes, ids: list[bytes]
) -> dict[bytes, int]:
    """How many times each entry was delivered to this consumer (this delivery included)."""
    if not ids:
        return {}
    rows = await shared.client.xpending_range(
        stream,
        group,
        min=min(ids, key=id_key),
        max=max(ids, key=id_key),
        count=len(ids) * 2 + 10,
        consumername=shared.consumer,
    )
    return {row["message_id"]: int(row["times_delivered"]) for row in rows}


async def group_caught_up(client: Redis, stream: bytes, group: str) -> bool:
    """No entry of ``stream`` is pending or undelivered for ``group``."""
    try:
        info = await client.xinfo_stream(stream)
        groups = await client.xinfo_groups(stream)
    except Exception as exc:
        if "no such key" in str(exc):
            return True
        raise
    last = info["last-generated-id"]
    for row in groups:
        name = row["name"]
        if (name.decode() if isinstance(name, bytes) else name) != group:
            continue
        return int(row["pending"]) == 0 and id_key(row["last-delivered-id"]) >= id_key(last)
    return True
