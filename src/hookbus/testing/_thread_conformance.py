"""The conformance suite's tests of ``emit_sync``: emitting from threads.

Part of :class:`~hookbus.testing.conformance.BusConformance`, which inherits
these tests; kept in a file of their own. Plain-function handlers run in
worker threads and emit with ``bus.emit_sync``; so may threads that the
application starts.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from .._context import current_envelope
from .._event import Event
from .._exceptions import (
    BusClosedError,
    EventTooLargeError,
    InvalidEventError,
    UnknownEventError,
)
from ._recorder import Recorder

if TYPE_CHECKING:
    from .._bus import EventBus
    from .conformance import MakeBus

__all__ = ["ThreadEmitConformance"]


class Packing(Event, name="conformance.thread.packing"):
    n: int
    note: str = ""


class Packed(Event, name="conformance.thread.packed"):
    n: int


class Labelled(Event, name="conformance.thread.labelled"):
    n: int


class Split(Event, name="conformance.thread.split"):
    depth: int
    branch: int


def _trace(bus: EventBus, event_type: type[Event], seen: dict[str, tuple[str | None, ...]]) -> None:
    """Subscribe an async handler recording (correlation id, causation id) by event id."""

    async def trace(event: Event) -> None:
        envelope = current_envelope()
        assert envelope is not None
        seen[envelope.id] = (envelope.correlation_id, envelope.causation_id)

    bus.subscribe(event_type, trace, name=f"trace-{event_type.__name__}")


async def _join(*threads: threading.Thread) -> None:
    """Wait for threads without blocking the loop; fail if one is still running after 60 s."""
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)
        assert not thread.is_alive(), f"{thread.name} did not finish"


class ThreadEmitConformance:
    """``emit_sync`` from plain handlers and other threads (inherited by ``BusConformance``)."""

    async def test_plain_handler_emits_with_causation_and_correlation(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        seen: dict[str, tuple[str | None, ...]] = {}
        packed_ids: list[str] = []
        labelled_ids: list[str] = []
        handler_threads: set[int] = set()

        @bus.on(Packing, name="thread-packer")
        def pack(event: Packing) -> None:
            handler_threads.add(threading.get_ident())
            packed_ids.append(bus.emit_sync(Packed(n=event.n)))

        @bus.on(Packed, name="thread-labeller")
        def label(event: Packed) -> None:
            labelled_ids.append(bus.emit_sync("conformance.thread.labelled", n=event.n))

        _trace(bus, Packed, seen)
        _trace(bus, Labelled, seen)
        async with bus:
            packing_id = await bus.emit(Packing(n=1))
            await bus.drain(timeout=10)
        assert threading.get_ident() not in handler_threads
        (packed_id,) = packed_ids
        (labelled_id,) = labelled_ids
        # The same chain as emits from async handlers: the root's id as
        # correlation, the handled event's id as causation.
        assert seen == {packed_id: (packing_id, packing_id), labelled_id: (packing_id, packed_id)}

    async def test_emit_sync_raises_emit_errors_in_the_calling_thread(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus(max_event_size=4096)
        packed = Recorder[Packed]()
        bus.subscribe(Packed, packed, name="thread-valid-only")
        raised: list[tuple[type[BaseException], int]] = []
        accepted: list[str] = []

        @bus.on(Packing, name="thread-validator")
        def validate(event: Packing) -> None:
            bad: list[tuple[Event | str, dict[str, object]]] = [
                ("conformance.thread.pakced", {"n": 1}),  # unknown name
                ("conformance.thread.packed", {"n": "one"}),  # invalid
                (Packing(n=2, note="x" * 5000), {}),  # too large
                (Packed(n=3), {"n": 4}),  # fields with an instance
            ]
            for event_or_name, fields in bad:
                try:
                    bus.emit_sync(event_or_name, **fields)
                except Exception as exc:
                    raised.append((type(exc), threading.get_ident()))
            accepted.append(bus.emit_sync(Packed(n=event.n)))

        async with bus:
            await bus.emit(Packing(n=1))
            await bus.drain(timeout=10)
        assert [kind for kind, _ in raised] == [
            UnknownEventError,
            InvalidEventError,
            EventTooLargeError,
            TypeError,
        ]
        assert threading.get_ident() not in {thread for _, thread in raised}
        assert [e.n for e in packed.events] == [1]
        assert packed.ids == accepted

    async def test_emit_sync_outside_running_bus_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        packed = Recorder[Packed]()
        bus.subscribe(Packed, packed, name="thread-refused")
        with pytest.raises(BusClosedError):
            await asyncio.to_thread(bus.emit_sync, Packed(n=1))
        async with bus:
            event_id = await asyncio.to_thread(bus.emit_sync, Packed(n=2))
            await packed.wait_for(1)
        with pytest.raises(BusClosedError):
            await asyncio.to_thread(bus.emit_sync, Packed(n=3))
        assert packed.ids == [event_id]

    async def test_emit_sync_on_the_loop_thread_raises(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        packed = Recorder[Packed]()
        bus.subscribe(Packed, packed, name="thread-never")
        in_handler: list[BaseException] = []

        @bus.on(Packing, name="thread-async-misuse", max_attempts=1)
        async def misuse(event: Packing) -> None:
            try:
                bus.emit_sync(Packed(n=event.n))
            except RuntimeError as exc:
                in_handler.append(exc)

        async with bus:
            with pytest.raises(RuntimeError) as on_loop:
                bus.emit_sync(Packed(n=1))
            await bus.emit(Packing(n=2))
            await bus.drain(timeout=10)
        for exc in (on_loop.value, *in_handler):
            assert type(exc) is RuntimeError  # not a BusClosedError: a misuse
            assert "await bus.emit" in str(exc)
        assert len(in_handler) == 1
        assert packed.events == []

    async def test_many_threads_emit_concurrently(self, make_bus: MakeBus) -> None:
        bus = make_bus(queue_size=16)  # local mode: emitters wait for room
        fast = Recorder[Packed]()
        bus.subscribe(Packed, fast, name="thread-fast")
        slow_ids: list[str] = []

        @bus.on(Packed, name="thread-slow")
        def slow(event: Packed) -> None:  # a thread hop per event: slower than 8 emitters
            envelope = current_envelope()
            assert envelope is not None
            slow_ids.append(envelope.id)

        per_thread: list[list[str]] = [[] for _ in range(8)]
        failures: list[BaseException] = []

        def emitter(index: int) -> None:
            try:
                for i in range(200):
                    per_thread[index].append(bus.emit_sync(Packed(n=index * 1000 + i)))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=emitter, args=(i,)) for i in range(8)]
        async with bus:
            for thread in threads:
                thread.start()
            await _join(*threads)
            await bus.drain(timeout=60)
        assert failures == []
        emitted = [event_id for ids in per_thread for event_id in ids]
        assert len(set(emitted)) == 1600
        assert sorted(fast.ids) == sorted(emitted)
        assert sorted(slow_ids) == sorted(emitted)
        if bus.capabilities.ordered:  # each thread's events arrive in its emit order
            for ids in per_thread:
                mine = set(ids)
                assert [i for i in fast.ids if i in mine] == ids
                assert [i for i in slow_ids if i in mine] == ids

    async def test_plain_handler_emitting_its_own_type_does_not_deadlock(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus(queue_size=2)  # local mode: far fewer than one level of the tree
        seen: list[tuple[int, int]] = []

        @bus.on(Split, name="thread-splitter")
        def split(event: Split) -> None:
            seen.append((event.depth, event.branch))
            if event.depth < 4:
                for k in range(3):
                    bus.emit_sync(Split(depth=event.depth + 1, branch=event.branch * 3 + k))

        async with bus:
            await bus.emit(Split(depth=0, branch=0))
            await bus.drain(timeout=30)
        assert len(seen) == 1 + 3 + 9 + 27 + 81
        assert sorted(seen) == sorted({(d, b) for d in range(5) for b in range(3**d)})

    async def test_stopping_the_bus_ends_a_thread_emit_with_bus_closed(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        bus.subscribe(Packed, Recorder[Packed](), name="thread-until-stop")
        loop = asyncio.get_running_loop()
        emitting = asyncio.Event()
        accepted: list[str] = []
        ended: list[BaseException] = []

        def emitter() -> None:
            try:
                while True:
                    accepted.append(bus.emit_sync(Packed(n=len(accepted))))
                    if len(accepted) == 20:
                        loop.call_soon_threadsafe(emitting.set)
            except BaseException as exc:
                ended.append(exc)

        thread = threading.Thread(target=emitter)
        await bus.start()
        try:
            thread.start()
            await asyncio.wait_for(emitting.wait(), 10)
        finally:
            await bus.stop()
        await _join(thread)
        assert [type(exc) for exc in ended] == [BusClosedError]

    async def test_timed_out_plain_handler_keeps_its_delivery(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        seen: dict[str, tuple[str | None, ...]] = {}
        release = threading.Event()
        late: list[tuple[str | None, str]] = []
        emitted = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = Recorder[Packing]()
        bus.subscribe(Packing, handled, name="thread-other")

        @bus.on(Packing, name="thread-too-slow", max_attempts=1, timeout=0.05)
        def too_slow(event: Packing) -> None:
            if event.n == 1:  # keeps running in its thread after its timeout
                assert release.wait(10)
                envelope = current_envelope()
                late.append((envelope.id if envelope else None, bus.emit_sync(Packed(n=1))))
                loop.call_soon_threadsafe(emitted.set)

        _trace(bus, Packed, seen)
        async with bus:
            first = await bus.emit(Packing(n=1))
            await bus.emit(Packing(n=2))
            await handled.wait_for(2)
            await bus.drain(timeout=10)  # the worker moved on: n=1 timed out, n=2 handled
            release.set()
            await asyncio.wait_for(emitted.wait(), 10)
            await bus.drain(timeout=10)
        ((envelope_id, packed_id),) = late
        assert envelope_id == first
        assert seen == {packed_id: (first, first)}
