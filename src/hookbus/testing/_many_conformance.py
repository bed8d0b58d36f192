"""The conformance suite's tests of ``emit_many``: many events in one call.

Part of :class:`~hookbus.testing.conformance.BusConformance`, which inherits
these tests; kept in a file of their own.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from .._context import current_envelope
from .._event import Event
from .._exceptions import BusClosedError, EventTooLargeError
from ._recorder import Recorder

if TYPE_CHECKING:
    from .conformance import MakeBus

__all__ = ["EmitManyConformance"]


class Counted(Event, name="conformance.many.counted"):
    n: int
    note: str = ""


class Announced(Event, name="conformance.many.announced"):
    n: int


class EmitManyConformance:
    """``emit_many``: vetted all first, handed over in order, ids returned."""

    async def test_emit_many_delivers_every_event_with_the_ids_returned(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        recorders = [Recorder[Counted]() for _ in range(2)]
        for i, rec in enumerate(recorders):
            bus.subscribe(Counted, rec, name=f"many-{i}")
        async with bus:
            ids = await bus.emit_many(Counted(n=i) for i in range(600))
            assert len(ids) == len(set(ids)) == 600
            assert ids == sorted(ids)
            for rec in recorders:
                events = await rec.wait_for(600)
                by_id = dict(zip(rec.ids, events, strict=True))
                assert [by_id[i].n for i in ids] == list(range(600))
                if bus.capabilities.ordered:
                    assert [e.n for e in events] == list(range(600))

    async def test_emit_many_of_several_types_reaches_each_type_subscriber(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        counted, announced = Recorder[Counted](), Recorder[Announced]()
        bus.subscribe(Counted, counted, name="many-counted")
        bus.subscribe(Announced, announced, name="many-announced")
        async with bus:
            mixed: list[Event] = []
            for i in range(50):
                mixed += [Counted(n=i), Announced(n=i)]
            assert len(await bus.emit_many(mixed)) == 100
            assert sorted(e.n for e in await counted.wait_for(50)) == list(range(50))
            assert sorted(e.n for e in await announced.wait_for(50)) == list(range(50))

    async def test_emit_many_emits_none_when_one_event_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus(max_event_size=4096)
        rec = Recorder[Counted]()
        bus.subscribe(Counted, rec, name="many-vetted")
        async with bus:
            with pytest.raises(EventTooLargeError):
                await bus.emit_many([Counted(n=1), Counted(n=2, note="x" * 5000), Counted(n=3)])
            bad: list[Any] = [Counted(n=4), {"n": 5}]
            with pytest.raises(TypeError, match="Event instances"):
                await bus.emit_many(bad)
            assert await bus.emit_many([]) == []
            await bus.emit(Counted(n=6))
            await rec.wait_for(1)
            await bus.drain(timeout=10)
        assert [e.n for e in rec.events] == [6]

    async def test_emit_many_outside_running_bus_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        with pytest.raises(BusClosedError):
            await bus.emit_many([Counted(n=1)])
        async with bus:
            assert len(await bus.emit_many([Counted(n=1)])) == 1
        with pytest.raises(BusClosedError):
            await bus.emit_many([Counted(n=2)])

    async def test_emit_many_from_a_handler_carries_the_correlation(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        seen: asyncio.Queue[tuple[str | None, str | None]] = asyncio.Queue()

        async def fan_out(event: Announced) -> None:
            await bus.emit_many(Counted(n=event.n * 10 + k) for k in range(3))

        async def child(event: Counted) -> None:
            envelope = current_envelope()
            assert envelope is not None
            await seen.put((envelope.causation_id, envelope.correlation_id))

        bus.subscribe(Announced, fan_out, name="many-fan-out")
        bus.subscribe(Counted, child, name="many-child")
        async with bus:
            parent = await bus.emit(Announced(n=1))
            links = [await asyncio.wait_for(seen.get(), 10) for _ in range(3)]
        assert links == [(parent, parent)] * 3
