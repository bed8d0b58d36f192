"""Each process reports its subscribers' counters as an ephemeral ``CountersReported``.

Counters live in the process that handled the events; with several web
workers, the dashboard adds up the last report of each. A report goes out
when the counters changed (checked every ``EVERY`` seconds), and at least
every ``KEEPALIVE`` seconds so that a dashboard opened later sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

from fastapi import APIRouter

from hookbus import EventBus, HookbusError

from ..events import CountersReported, SubscriberCounters

__all__ = ["EVERY", "KEEPALIVE", "Counters"]

EVERY = 0.5
KEEPALIVE = 5.0


class Counters:
    """Reports this process's counters while :meth:`run` runs."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    def current(self) -> CountersReported:
        """This process's counters now."""
        counters = [
            SubscriberCounters(
                subscriber=s.subscriber,
                event_type=s.event_type,
                handled=s.handled,
                retried=s.retried,
                dead_lettered=s.dead_lettered,
            )
            for s in self._bus.statistics()
        ]
        return CountersReported(process=self.process, counters=counters)

    async def run(self) -> None:
        """Report until cancelled."""
        last: CountersReported | None = None
        sent_at = 0.0
        while True:
            report = self.current()
            now = time.monotonic()
            if report != last or now - sent_at >= KEEPALIVE:
                with contextlib.suppress(HookbusError):  # redis down: report later
                    await self._bus.emit(report)
                    last, sent_at = report, now
            await asyncio.sleep(EVERY)

    def routes(self) -> APIRouter:
        """``GET /api/counters``: this process's report."""
        router = APIRouter(prefix="/api/counters", tags=["counters"])

        @router.get("")
        async def counters() -> CountersReported:
            """The subscriber counters of the process that answers."""
            return self.current()

        return router
