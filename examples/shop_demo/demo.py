"""Wires the shop's modules on one local bus and runs a day at the till."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import hookbus.outbox
from hookbus import DeadLetter, EventBus, RetryPolicy, SubscriberStats

from . import accounting, progress, receipts, register
from .database import open_engine

__all__ = ["DB_NAME", "DemoResult", "run_demo"]

DB_NAME = "shop.sqlite3"
SALES = 40
DRAIN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run did, for printing or for a test to check."""

    db_path: Path
    sales: int
    register_total: Decimal
    accounting_entries: int
    booked_total: Decimal
    stats: tuple[SubscriberStats, ...]
    dead_letters: tuple[DeadLetter, ...]
    elapsed: float

    def stats_of(self, subscriber: str, event_type: str) -> SubscriberStats:
        """The counters of one subscription (``KeyError`` if there is none)."""
        for stats in self.stats:
            if (stats.subscriber, stats.event_type) == (subscriber, event_type):
                return stats
        raise KeyError((subscriber, event_type))

    @property
    def consistent(self) -> bool:
        """Every sale booked but the refused one, which is the only dead letter."""
        return self.accounting_entries == self.sales - 1 and len(self.dead_letters) == 1


async def run_demo(data_dir: Path, *, out: Callable[[str], None] = print) -> DemoResult:
    """Run one day of sales with every module subscribed; the journal goes in ``data_dir``.

    ``out`` receives the live lines (progress, Z report); pass ``lambda _: None``
    for a quiet run.
    """
    started = time.perf_counter()
    db_path = data_dir / DB_NAME
    bus = EventBus(mode="local", retry=RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.1))
    engine = open_engine(db_path)
    try:
        await hookbus.outbox.create_tables(engine)  # the accounting's inbox
        await accounting.create_tables(engine)
        accounting.install(bus, engine)
        receipts.install(bus, out)
        progress.install(bus, out)
        async with bus:
            closed = await register.run_day(bus, session_id=1, sales=SALES)
            await bus.drain(timeout=DRAIN_TIMEOUT)
            letters = await bus.dead_letters()
            stats = bus.statistics()
        entries, booked_total = await accounting.booked(engine)
    finally:
        await engine.dispose()
    return DemoResult(
        db_path=db_path,
        sales=closed.sales,
        register_total=closed.total,
        accounting_entries=entries,
        booked_total=booked_total,
        stats=tuple(stats),
        dead_letters=tuple(letters),
        elapsed=time.perf_counter() - started,
    )
