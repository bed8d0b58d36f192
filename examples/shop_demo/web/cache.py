"""A per-process read cache, emptied everywhere by ``CacheInvalidated``.

Each web process keeps its own copy of slow-changing lists (members,
catalogue). The module that changes one emits ``CacheInvalidated(key=...)``:
an ephemeral event, broadcast to every process, each dropping its copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hookbus import EventBus

from ..events import CacheInvalidated

__all__ = ["SUBSCRIBER", "Cache"]

SUBSCRIBER = "cache"


class Cache:
    """Values by key, loaded on first read and kept until invalidated."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.invalidations = 0

    def install(self, bus: EventBus) -> None:
        """Subscribe to ``CacheInvalidated`` (every process gets it)."""

        @bus.on(CacheInvalidated, name=SUBSCRIBER)
        async def drop(event: CacheInvalidated) -> None:
            self.invalidate(event.key)

    def invalidate(self, key: str) -> None:
        """Forget ``key`` in this process."""
        self._generation[key] = self._generation.get(key, 0) + 1
        if self._values.pop(key, None) is not None:
            self.invalidations += 1

    async def get(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        keep: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The cached value of ``key``, loaded with ``load()`` if missing; a loaded
        value is kept only if ``keep(value)`` (default: always)."""
        if key in self._values:
            self.hits += 1
            return self._values[key]
        generation = self._generation.get(key, 0)
        value = await load()
        unchanged = self._generation.get(key, 0) == generation  # not invalidated meanwhile
        if unchanged and (keep is None or keep(value)):
            self._values[key] = value
        return value
