"""Emitting on a fixed schedule, for the latency benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["paced"]


async def paced(count: int, rate: float, send: Callable[[int], Awaitable[None]]) -> float:
    """Call ``send(i)`` ``count`` times at ``rate`` per second on a fixed schedule
    (deadlines from ``loop.time()``, so sleep overshoot does not accumulate).

    Returns the rate achieved.
    """
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    began = loop.time()
    for i in range(count):
        delay = began + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    return count / max(loop.time() - began, 1e-9)
