"""Building redis-mode buses and raw clients in tests."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from hookbus import EventBus
from hookbus._redis_options import RedisOptions
from hookbus.testing import test_settings


def redis_bus(
    url: str, prefix: str, *, bus_options: dict[str, Any] | None = None, **redis_options: Any
) -> EventBus:
    """A redis-mode bus under ``prefix`` with fast retries; ``redis_options`` for RedisOptions."""
    options = RedisOptions(prefix=prefix, **redis_options)
    return EventBus(
        mode="redis", redis_url=url, settings=test_settings(redis=options, **(bus_options or {}))
    )


def raw_client(url: str) -> Any:
    """A plain redis-py client (bytes replies)."""
    return aioredis.Redis.from_url(url)
