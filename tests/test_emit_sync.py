"""``emit_sync`` in local mode: backpressure on threads, and a bus or loop that goes away.

What every backend must do with ``emit_sync`` is in the conformance suite
(``hookbus.testing._thread_conformance``); these tests need local mode's
bounded queues or drive an event loop by hand.
"""

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from hookbus import BusClosedError, Event, EventBus
from hookbus.testing import test_settings


class Scanned(Event, name="emit_sync.scanned"):
    n: int


def local_bus(**options: object) -> EventBus:
    return EventBus(mode="local", settings=test_settings(**options))


def start_emitting(
    bus: EventBus, count: int
) -> tuple[threading.Thread, list[str], list[BaseException]]:
    """A thread emitting ``count`` events with ``emit_sync``; its accepted ids and error."""
    accepted: list[str] = []
    errors: list[BaseException] = []

    def emit_all() -> None:
        try:
            for i in range(count):
                accepted.append(bus.emit_sync(Scanned(n=i)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=emit_all)
    thread.start()
    return thread, accepted, errors


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - another thread's progress
            await asyncio.sleep(0.001)


async def test_thread_waits_for_room_while_the_loop_runs() -> None:
    bus = local_bus(queue_size=4)
    gate = asyncio.Event()
    highest = 0

    @bus.on(Scanned, name="gated")
    async def gated(event: Scanned) -> None:
        nonlocal highest
        highest = max(highest, bus.statistics()[0].queued)
        await gate.wait()

    async with bus:
        thread, accepted, errors = start_emitting(bus, 10)
        await until(lambda: len(accepted) == 5)  # 1 in the handler, 4 queued
        ticks = 0
        for _ in range(20):  # the loop turns while the thread waits for room
            await asyncio.sleep(0.002)
            ticks += 1
        assert ticks == 20
        assert len(accepted) == 5
        assert thread.is_alive()
        gate.set()
        await asyncio.to_thread(thread.join, 10)
        await bus.drain(timeout=10)
        (stats,) = bus.statistics()
    assert not thread.is_alive()
    assert errors == []
    assert len(accepted) == 10
    assert stats.handled == 10
    assert highest <= 5  # the bound held: the thread waited instead of overflowing


async def test_stop_while_emits_wait_for_room_raises_bus_closed() -> None:
    bus = local_bus(queue_size=2)
    started = asyncio.Event()

    @bus.on(Scanned, name="stuck")
    async def stuck(event: Scanned) -> None:
        started.set()
        await asyncio.Event().wait()

    await bus.start()
    thread, accepted, errors = start_emitting(bus, 10)
    await asyncio.wait_for(started.wait(), 10)
    await until(lambda: len(accepted) == 3)  # 1 in the handler, 2 queued, the 4th waits
    waiting_on_loop = asyncio.create_task(bus.emit(Scanned(n=99)))
    await asyncio.sleep(0)  # its first step: it waits for room too
    await bus.stop(timeout=0.1)
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()
    assert [type(exc) for exc in errors] == [BusClosedError]
    assert len(accepted) == 3
    with pytest.raises(BusClosedError, match="waited for room"):
        await asyncio.wait_for(waiting_on_loop, 10)


def test_emit_sync_on_a_bus_whose_loop_is_closed_raises() -> None:
    bus = local_bus()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(bus.start())
    loop.close()  # without stopping the bus
    with pytest.raises(BusClosedError):
        bus.emit_sync(Scanned(n=1))


def test_thread_waiting_on_a_loop_that_closes_gets_bus_closed() -> None:
    bus = local_bus(queue_size=1)
    started = asyncio.Event()

    @bus.on(Scanned, name="stuck")
    async def stuck(event: Scanned) -> None:
        started.set()
        await asyncio.Event().wait()

    async def fill() -> int:
        await bus.start()
        await bus.emit(Scanned(n=-2))
        await asyncio.wait_for(started.wait(), 10)  # in the handler
        await bus.emit(Scanned(n=-1))  # queued: the queue is full
        return len(asyncio.all_tasks())

    async def until_the_thread_emit_waits(before: int) -> None:
        await until(lambda: len(asyncio.all_tasks()) > before)

    loop = asyncio.new_event_loop()
    tasks = loop.run_until_complete(fill())
    thread, accepted, errors = start_emitting(bus, 1)
    loop.run_until_complete(until_the_thread_emit_waits(tasks))
    begin = time.monotonic()
    loop.set_exception_handler(lambda _loop, _context: None)  # "Task was destroyed": expected
    loop.close()  # without stopping the bus: its tasks are destroyed, never cancelled
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - begin < 5
    assert accepted == []
    assert [type(exc) for exc in errors] == [BusClosedError]


def test_emit_that_never_ran_on_a_closed_loop_raises_bus_closed() -> None:
    bus = local_bus()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(bus.start())  # then the loop is not running: nothing runs the emit
    thread, accepted, errors = start_emitting(bus, 1)
    loop.close()  # before or after the thread handed its emit over
    thread.join(10)
    assert not thread.is_alive()
    assert accepted == []
    assert [type(exc) for exc in errors] == [BusClosedError]
