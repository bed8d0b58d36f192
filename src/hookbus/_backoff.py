"""Backoff for reconnect loops, and retrying until a server is reachable: shared by the
backends that talk to a server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from ._exceptions import BusUnavailableError

__all__ = ["Backoff", "until_reachable"]


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


async def until_reachable(
    action: Callable[[], Awaitable[None]],
    *,
    timeout: float,
    server: str,
    refusal: Callable[[BaseException], Exception | None],
    transient: Callable[[BaseException], bool],
) -> None:
    """Run ``action``, retrying with backoff while the server is unreachable.

    ``refusal(exc)`` returns the error to raise at once when the server refuses
    us for good (credentials, permissions, TLS), else ``None``; errors for which
    ``transient`` is false are raised as they are. After ``timeout`` seconds
    of transient errors: :class:`~hookbus.BusUnavailableError` naming ``server``.
    """
    backoff = Backoff()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await action()
            return
        except Exception as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from exc
            if not (transient(exc) or isinstance(exc, TimeoutError)):
                raise
            if loop.time() >= deadline:
                cause = str(exc) or type(exc).__name__
                raise BusUnavailableError(
                    f"{server} unreachable for {timeout:.1f}s: {cause}"
                ) from exc
            await backoff.sleep()
