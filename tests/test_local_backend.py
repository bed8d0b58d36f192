"""Behaviour specific to the in-process backend: bounded queues, stop, drain."""

import asyncio
import logging
from decimal import Decimal

import pytest

from hookbus import DrainTimeoutError, Event, EventBus
from hookbus.testing import Recorder, test_settings


class ItemScanned(Event, name="local.item_scanned"):
    n: int


class CursorMoved(Event, name="local.cursor_moved", durable=False):
    n: int


class Refund(Event, name="local.refund"):
    amount: Decimal


def local_bus(**options: object) -> EventBus:
    return EventBus(mode="local", settings=test_settings(**options))


async def test_full_queue_makes_emit_wait() -> None:
    bus = local_bus(queue_size=4)
    gate = asyncio.Event()
    started = asyncio.Event()

    @bus.on(ItemScanned, name="gated")
    async def gated(event: ItemScanned) -> None:
        started.set()
        await gate.wait()

    async with bus:
        await bus.emit(ItemScanned(n=0))
        await asyncio.wait_for(started.wait(), 5)  # event 0 is in the handler
        for i in range(1, 5):  # 4 queued: the queue is full
            await bus.emit(ItemScanned(n=i))
        blocked = asyncio.create_task(bus.emit(ItemScanned(n=5)))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # backpressure: waits for room
        gate.set()
        await asyncio.wait_for(blocked, 5)
        await bus.drain(timeout=5)
        (stats,) = bus.statistics()
        assert stats.handled == 6


async def test_full_queue_drops_ephemeral_events() -> None:
    bus = local_bus(queue_size=2)
    gate = asyncio.Event()
    started = asyncio.Event()
    seen: list[int] = []

    @bus.on(CursorMoved, name="cursor")
    async def cursor(event: CursorMoved) -> None:
        started.set()
        await gate.wait()
        seen.append(event.n)

    async with bus:
        await bus.emit(CursorMoved(n=0))
        await asyncio.wait_for(started.wait(), 5)
        for i in range(1, 10):
            await bus.emit(CursorMoved(n=i))  # never waits
        gate.set()
        await bus.drain(timeout=5)
        (stats,) = bus.statistics()
    assert stats.dropped == 10 - len(seen)
    assert seen[0] == 0
    assert len(seen) == 3  # one in the handler, two queued


async def test_handler_emitting_into_its_own_full_queue_does_not_deadlock() -> None:
    bus = local_bus(queue_size=2)
    seen: list[int] = []

    @bus.on(ItemScanned, name="chain")
    async def chain(event: ItemScanned) -> None:
        seen.append(event.n)
        if event.n < 50:
            for k in range(3):  # fans out faster than the queue drains
                await bus.emit(ItemScanned(n=100 + event.n * 3 + k))

    async with bus:
        await bus.emit(ItemScanned(n=0))
        await bus.drain(timeout=5)
    assert len(seen) == 4  # 0, then 100, 101, 102 (all >= 50)


async def test_drain_times_out_with_a_clear_error() -> None:
    bus = local_bus()

    @bus.on(ItemScanned, name="forever")
    async def forever(event: ItemScanned) -> None:
        await asyncio.sleep(60)

    async with bus:
        await bus.emit(ItemScanned(n=1))
        with pytest.raises(DrainTimeoutError, match="1 deliveries still pending"):
            await bus.drain(timeout=0.05)
        await bus.stop(timeout=0.05)


async def test_stop_reports_abandoned_deliveries(caplog: pytest.LogCaptureFixture) -> None:
    bus = local_bus()

    @bus.on(ItemScanned, name="stuck")
    async def stuck(event: ItemScanned) -> None:
        await asyncio.sleep(60)

    await bus.start()
    for i in range(3):
        await bus.emit(ItemScanned(n=i))
    with caplog.at_level(logging.WARNING, logger="hookbus"):
        await bus.stop(timeout=0.05)
    assert "3 deliveries not done (lost)" in caplog.text


async def test_stopped_bus_can_start_again() -> None:
    bus = local_bus()
    rec = Recorder[ItemScanned]()
    bus.subscribe(ItemScanned, rec, name="again")
    async with bus:
        await bus.emit(ItemScanned(n=1))
        await rec.wait_for(1)
    async with bus:
        await bus.emit(ItemScanned(n=2))
        await rec.wait_for(2)
    assert [e.n for e in rec.events] == [1, 2]


async def test_subscribing_while_running_starts_delivery() -> None:
    bus = local_bus()
    async with bus:
        rec = Recorder[ItemScanned]()
        bus.subscribe(ItemScanned, rec, name="late")
        await bus.emit(ItemScanned(n=1))
        assert [e.n for e in await rec.wait_for(1)] == [1]


async def test_event_without_subscribers_is_accepted() -> None:
    async with local_bus() as bus:
        assert await bus.emit(Refund(amount=Decimal("3.20")))
        await bus.drain(timeout=1)


async def test_plain_function_returning_a_coroutine_is_a_clear_failure() -> None:
    bus = local_bus()

    async def really_async(event: ItemScanned) -> None:
        return None

    def wrapper(event: ItemScanned) -> object:
        return really_async(event)

    bus.subscribe(ItemScanned, wrapper, name="confused", max_attempts=1)
    async with bus:
        await bus.emit(ItemScanned(n=1))
        await bus.drain(timeout=5)
        (letter,) = await bus.dead_letters()
    assert letter.error_type == "TypeError"
    assert "async def" in letter.error_message


async def test_dead_letter_store_is_bounded() -> None:
    bus = local_bus(max_dead_letters=3)

    @bus.on(ItemScanned, name="rejects", max_attempts=1)
    async def rejects(event: ItemScanned) -> None:
        raise ValueError(event.n)

    async with bus:
        for i in range(5):
            await bus.emit(ItemScanned(n=i))
        await bus.drain(timeout=5)
        letters = await bus.dead_letters()
    assert [d.error_message for d in letters] == ["2", "3", "4"]


async def test_a_burst_of_emits_lets_the_handlers_run_as_it_goes() -> None:
    # Far below queue_size: no backpressure, yet handlers run during the burst
    # (every 256 queued events the emitter yields), so queues stay short.
    bus = local_bus(queue_size=10_000)
    rec = Recorder[ItemScanned]()
    bus.subscribe(ItemScanned, rec, name="books")
    handled_during_burst: list[int] = []
    async with bus:
        for i in range(2_000):
            await bus.emit(ItemScanned(n=i))
            handled_during_burst.append(len(rec.events))
        await bus.drain(timeout=10)
    assert handled_during_burst[254] == 0  # nothing ran before the first pause
    assert handled_during_burst[255] == 256  # the 256 queued ran at the pause
    assert max(i + 1 - n for i, n in enumerate(handled_during_burst)) <= 255
    assert [e.n for e in rec.events] == list(range(2_000))
