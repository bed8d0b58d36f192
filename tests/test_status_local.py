"""``bus.status()`` in local mode, in-process: queued events are lag, the event in the
handler and retries waiting are pending, a running worker is a consumer, dead letters
are counted; growth (a lag, the outbox's backlog) is seen against the previous status."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from hookbus import Event, EventBus, Problem, Severity
from hookbus._outbox_options import OutboxOptions
from hookbus.outbox import OutboxStatistics, create_tables
from hookbus.testing import test_settings


class Parcel(Event, name="status_local.parcel"):
    number: int


class Ping(Event, name="status_local.ping", durable=False):
    number: int


def kinds(problems: tuple[Problem, ...]) -> list[tuple[str, str | None]]:
    return [(p.kind, p.subscriber) for p in problems]


async def test_lag_pending_consumers_and_dead_letters() -> None:
    gate = asyncio.Event()
    bus = EventBus(mode="local", settings=test_settings())

    @bus.on(Parcel, name="slow")
    async def slow(parcel: Parcel) -> None:
        await gate.wait()

    @bus.on(Parcel, name="broken", max_attempts=1)
    async def broken(parcel: Parcel) -> None:
        raise RuntimeError("broken")

    @bus.on(Ping, name="pinged")
    async def pinged(ping: Ping) -> None:
        return

    before = await bus.status()  # not started: no worker runs
    assert [(r.subscriber, r.consumers) for r in before.subscribers] == [
        ("slow", 0),
        ("broken", 0),
        ("pinged", 0),
    ]
    assert ("no_consumer", "slow") in kinds(before.problems)
    assert ("no_consumer", "pinged") not in kinds(before.problems)  # ephemeral: not a problem

    async with bus:
        for number in range(3):
            await bus.emit(Parcel(number=number))
        await asyncio.sleep(0)  # let the workers take their first event

        async with asyncio.timeout(10):
            while len(await bus.dead_letters("broken")) < 3:  # noqa: ASYNC110 - polls the bus
                await asyncio.sleep(0.01)
        status = await bus.status()
        slow_row = status.subscriber("slow", "status_local.parcel")
        assert slow_row is not None
        assert (slow_row.lag, slow_row.pending, slow_row.consumers) == (2, 1, 1)
        assert slow_row.oldest_pending_age is not None
        assert slow_row.oldest_pending_age >= 0
        broken_row = status.subscriber("broken", "status_local.parcel")
        assert broken_row is not None
        assert (broken_row.lag, broken_row.pending, broken_row.dead_letters) == (0, 0, 3)
        assert [t.name for t in status.event_types] == ["status_local.parcel", "status_local.ping"]
        assert all(t.stored is None for t in status.event_types)
        assert kinds(status.problems) == [("dead_letters", "broken")]
        assert status.problems[0].severity is Severity.WARNING
        assert not status.healthy

        growing = await bus.status()
        await bus.emit(Parcel(number=3))
        later = await bus.status(growing)
        assert ("lag_growing", "slow") in kinds(later.problems)
        message = next(p.message for p in later.problems if p.kind == "lag_growing")
        assert message == "lag grew from 2 to 3"

        gate.set()
        await bus.drain(10)
        for letter in await bus.dead_letters():
            await bus.discard_dead_letter(letter)
        done = await bus.status(later)
        assert done.healthy, done.problems
        assert done.to_dict()["healthy"] is True


async def test_outbox_backlog_and_its_growth(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    await create_tables(url)
    bus = EventBus(
        mode="local", outbox_url=url, settings=test_settings(outbox=OutboxOptions(relay=False))
    )

    @bus.on(Parcel, name="keeper")
    async def keep(parcel: Parcel) -> None:
        return

    async with bus:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await bus.emit(Parcel(number=1), session=connection)
            first = await bus.status()
            assert isinstance(first.outbox, OutboxStatistics)
            assert first.outbox.waiting == 1
            assert first.healthy
            async with engine.begin() as connection:
                await bus.emit(Parcel(number=2), session=connection)
            second = await bus.status(first)
        finally:
            await engine.dispose()
    assert second.outbox is not None
    assert second.outbox.waiting == 2
    assert [(p.kind, p.severity) for p in second.problems] == [("outbox_growing", Severity.WARNING)]
    assert second.problems[0].message == "outbox backlog grew from 1 to 2 row(s)"
    assert second.to_dict()["outbox"]["waiting"] == 2
