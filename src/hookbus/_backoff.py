"""Backoff for reconnect loops, shared by the backends that talk to a server."""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with jitter for reconnect loops: 0.05 s doubling to ``cap``."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def reset(self) -> None:
        """Call after a success."""
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next try (and count one more failure)."""
        delay = min(self.cap, self.first * float(1 << min(self.failures, 20)))
        self.failures += 1
        return delay * (0.5 + random.random() / 2)

    async def sleep(self) -> None:
        """Wait the next delay."""
        await asyncio.sleep(self.next_delay())
