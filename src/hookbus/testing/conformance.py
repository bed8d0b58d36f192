"""The behaviour every backend must have, as one test class.

A backend's test module subclasses :class:`BusConformance` and provides the
``make_bus`` fixture: a callable returning a new, *not started*
:class:`~hookbus.EventBus` of that backend, isolated from other tests, with
fast retries (see :func:`hookbus.testing.test_settings`); keyword arguments
are settings options to apply. Tests read ``bus.capabilities`` rather than
the backend's name. Needs pytest-asyncio (``asyncio_mode = "auto"``)::

    class TestLocalBackend(BusConformance):
        @pytest.fixture
        def make_bus(self) -> MakeBus:
            return lambda **options: EventBus(mode="local", settings=test_settings(**options))
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import pytest

from .._bus import EventBus
from .._context import current_envelope
from .._envelope import Envelope, decode_envelope
from .._event import Event
from .._exceptions import (
    BusClosedError,
    DeadLetterNotFoundError,
    DuplicateSubscriberError,
    EventTooLargeError,
    InvalidEventError,
    UnknownEventError,
)
from .._retry import RetryPolicy
from ._hostile import HostileHandlerConformance
from ._idempotent_conformance import IdempotentConformance
from ._many_conformance import EmitManyConformance
from ._recorder import Recorder
from ._thread_conformance import ThreadEmitConformance

__all__ = ["BusConformance", "MakeBus"]


class MakeBus(Protocol):
    """Factory fixture type: a new, not started bus with the given settings options."""

    def __call__(self, **options: Any) -> EventBus: ...


class OrderPlaced(Event, name="conformance.order_placed"):
    order_id: int
    total: Decimal
    note: str = ""


class PriceChanged(Event, name="conformance.price_changed", durable=False):
    sku: str
    price: float


class OrderShipped(Event, name="conformance.order_shipped"):
    order_id: int


def order(i: int, note: str = "") -> OrderPlaced:
    return OrderPlaced(order_id=i, total=Decimal(f"{i}.50"), note=note)


@asynccontextmanager
async def running(bus: EventBus) -> AsyncIterator[EventBus]:
    async with bus:
        yield bus


class BusConformance(
    HostileHandlerConformance, ThreadEmitConformance, IdempotentConformance, EmitManyConformance
):
    """Subclass it and define the ``make_bus`` fixture (see the module docs).

    Tests of hostile handlers, of ``emit_sync`` (emitting from threads), of
    idempotent subscribers and of ``emit_many`` are inherited from
    :mod:`hookbus.testing._hostile`, :mod:`hookbus.testing._thread_conformance`,
    :mod:`hookbus.testing._idempotent_conformance` and
    :mod:`hookbus.testing._many_conformance`.
    """

    @pytest.fixture
    def make_bus(self) -> MakeBus:
        raise NotImplementedError("define the make_bus fixture in the backend's test class")

    # -- delivery ---------------------------------------------------------------

    async def test_every_subscriber_gets_every_event(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        recorders = [Recorder[OrderPlaced]() for _ in range(3)]
        for i, rec in enumerate(recorders):
            bus.subscribe(OrderPlaced, rec, name=f"sub-{i}")
        async with running(bus):
            ids = [await bus.emit(order(i)) for i in range(20)]
            for rec in recorders:
                events = await rec.wait_for(20)
                assert sorted(e.order_id for e in events) == list(range(20))
                assert sorted(rec.ids) == sorted(ids)
                assert events[3].total == Decimal("3.50")

    async def test_emit_returns_unique_sortable_ids(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        rec = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, rec, name="ids")
        async with running(bus):
            ids = [await bus.emit(order(i)) for i in range(50)]
            await rec.wait_for(50)
        assert len(set(ids)) == 50
        assert ids == sorted(ids)
        assert all(uuid.UUID(i).version == 7 for i in ids)

    async def test_handler_sees_its_envelope(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        seen: list[tuple[str, str, datetime]] = []

        @bus.on(OrderPlaced, name="envelope")
        async def handler(event: OrderPlaced) -> None:
            envelope = current_envelope()
            assert envelope is not None
            seen.append((envelope.id, envelope.type, envelope.time))

        async with running(bus):
            event_id = await bus.emit(order(1))
            await bus.drain(timeout=10)
        assert [(s[0], s[1]) for s in seen] == [(event_id, "conformance.order_placed")]
        assert seen[0][2].tzinfo is not None

    async def test_emit_by_name_validates_and_delivers(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        rec = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, rec, name="by-name")
        async with running(bus):
            await bus.emit("conformance.order_placed", order_id="7", total="99.90")
            (event,) = await rec.wait_for(1)
        assert isinstance(event, OrderPlaced)
        assert event.order_id == 7
        assert event.total == Decimal("99.90")

    async def test_sync_handler_runs_in_a_thread(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        threads: list[int] = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        @bus.on(OrderPlaced, name="sync-handler")
        def handler(event: OrderPlaced) -> None:
            time.sleep(0.05)  # blocking on purpose: must not block the loop
            threads.append(threading.get_ident())
            loop.call_soon_threadsafe(done.set)

        async with running(bus):
            await bus.emit(order(1))
            ticks = 0
            while not done.is_set():  # the loop keeps turning while the handler blocks
                ticks += 1
                await asyncio.sleep(0.001)
        assert len(threads) == 1
        assert threads[0] != threading.get_ident()
        assert ticks > 5

    # -- isolation ----------------------------------------------------------------

    async def test_failing_subscriber_does_not_reach_emitter_or_others(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()

        @bus.on(OrderPlaced, name="broken", max_attempts=1)
        async def broken(event: OrderPlaced) -> None:
            raise RuntimeError("broken subscriber")

        healthy = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, healthy, name="healthy")
        async with running(bus):
            for i in range(5):
                await bus.emit(order(i))  # must not raise
            assert len(await healthy.wait_for(5)) == 5

    async def test_slow_subscriber_does_not_slow_emitter_or_others(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        release = asyncio.Event()

        @bus.on(OrderPlaced, name="slow")
        async def slow(event: OrderPlaced) -> None:
            await release.wait()

        fast = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, fast, name="fast")
        async with running(bus):
            start = time.monotonic()
            for i in range(10):
                await bus.emit(order(i))
            assert time.monotonic() - start < 2.0
            await fast.wait_for(10)  # while "slow" is still stuck on the first event
            release.set()
            await bus.drain(timeout=10)

    # -- retries and dead letters -----------------------------------------------

    async def test_failed_delivery_is_retried_until_success(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        def flaky(event: OrderPlaced, attempt: int) -> None:
            if attempt < 3:
                raise ConnectionError(f"attempt {attempt} failed")

        rec = Recorder[OrderPlaced](fail=flaky)
        bus.subscribe(OrderPlaced, rec, name="flaky", max_attempts=5)
        async with running(bus):
            event_id = await bus.emit(order(1))
            await rec.wait_for(1)
            await bus.drain(timeout=10)
            assert rec.attempts[event_id] == 3
            assert await bus.dead_letters() == []

    async def test_exhausted_delivery_becomes_dead_letter(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        def always(event: OrderPlaced, attempt: int) -> None:
            raise ValueError(f"cannot book order {event.order_id}")

        rec = Recorder[OrderPlaced](fail=always)
        bus.subscribe(OrderPlaced, rec, name="doomed", max_attempts=3)
        other = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, other, name="unaffected")
        async with running(bus):
            event_id = await bus.emit(order(42))
            await bus.drain(timeout=10)
            letters = await bus.dead_letters()
            assert rec.attempts[event_id] == 3
            assert len(await other.wait_for(1)) == 1
        assert len(letters) == 1
        letter = letters[0]
        assert letter.subscriber == "doomed"
        assert letter.event_id == event_id
        assert letter.event_type == "conformance.order_placed"
        assert letter.event == order(42)
        assert letter.attempts == 3
        assert letter.error_type.endswith("ValueError")
        assert letter.error_message == "cannot book order 42"

    async def test_other_events_flow_while_one_is_retried(self, make_bus: MakeBus) -> None:
        bus = make_bus(retry=RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=0.5))

        def first_fails(event: OrderPlaced, attempt: int) -> None:
            if event.order_id == 0 and attempt == 1:
                raise RuntimeError("first try of order 0 fails")

        rec = Recorder[OrderPlaced](fail=first_fails)
        bus.subscribe(OrderPlaced, rec, name="retrying")
        async with running(bus):
            for i in range(5):
                await bus.emit(order(i))
            events = await rec.wait_for(4)  # orders 1-4 while order 0 waits 0.25-0.5 s
            assert [e.order_id for e in events[:4]] == [1, 2, 3, 4]
            events = await rec.wait_for(5)
            assert events[4].order_id == 0

    async def test_dead_letter_can_be_retried(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        broken = True

        def maybe(event: OrderPlaced, attempt: int) -> None:
            if broken:
                raise RuntimeError("down")

        rec = Recorder[OrderPlaced](fail=maybe)
        bus.subscribe(OrderPlaced, rec, name="repairable", max_attempts=2)
        async with running(bus):
            await bus.emit(order(5))
            await bus.drain(timeout=10)
            (letter,) = await bus.dead_letters(subscriber="repairable")
            broken = False
            await bus.retry_dead_letter(letter)
            (event,) = await rec.wait_for(1)
            assert event.order_id == 5
            await bus.drain(timeout=10)
            assert await bus.dead_letters() == []
            with pytest.raises(DeadLetterNotFoundError):
                await bus.retry_dead_letter(letter.id)

    async def test_dead_letter_can_be_discarded(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        @bus.on(OrderPlaced, name="discarding", max_attempts=1)
        async def fails(event: OrderPlaced) -> None:
            raise RuntimeError("no")

        async with running(bus):
            await bus.emit(order(1))
            await bus.emit(order(2))
            await bus.drain(timeout=10)
            letters = await bus.dead_letters()
            assert [d.event for d in letters] == [order(1), order(2)]
            assert len(await bus.dead_letters(limit=1)) == 1
            await bus.discard_dead_letter(letters[0].id)
            assert [d.id for d in await bus.dead_letters()] == [letters[1].id]
            with pytest.raises(DeadLetterNotFoundError):
                await bus.discard_dead_letter(letters[0].id)

    async def test_handler_timeout_counts_as_failure(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        @bus.on(OrderPlaced, name="too-slow", max_attempts=2, timeout=0.05)
        async def too_slow(event: OrderPlaced) -> None:
            await asyncio.sleep(10)

        async with running(bus):
            await bus.emit(order(1))
            await bus.drain(timeout=10)
            (letter,) = await bus.dead_letters()
        assert letter.attempts == 2
        assert "Timeout" in letter.error_type

    # -- ordering, ephemeral, drain, stop ----------------------------------------------

    async def test_each_subscriber_sees_emit_order(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        if not bus.capabilities.ordered:
            pytest.skip("backend does not promise ordering")
        recorders = [Recorder[OrderPlaced]() for _ in range(2)]
        for i, rec in enumerate(recorders):
            bus.subscribe(OrderPlaced, rec, name=f"ordered-{i}")
        async with running(bus):
            for i in range(200):
                await bus.emit(order(i))
            for rec in recorders:
                assert [e.order_id for e in await rec.wait_for(200)] == list(range(200))

    async def test_ephemeral_events_are_not_retried(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        def always(event: PriceChanged, attempt: int) -> None:
            raise RuntimeError("live view crashed")

        failing = Recorder[PriceChanged](fail=always)
        live = Recorder[PriceChanged]()
        bus.subscribe(PriceChanged, failing, name="failing-live", max_attempts=5)
        bus.subscribe(PriceChanged, live, name="live")
        async with running(bus):
            await bus.emit(PriceChanged(sku="chair-12", price=15.0))
            (event,) = await live.wait_for(1)
            assert event.price == 15.0
            await failing.wait_for(1, calls=True)
            await bus.drain(timeout=10)
            assert failing.calls == 1
            assert await bus.dead_letters() == []

    async def test_drain_waits_for_slow_handlers(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        done: list[int] = []

        @bus.on(OrderPlaced, name="slowish")
        async def slowish(event: OrderPlaced) -> None:
            await asyncio.sleep(0.01)
            done.append(event.order_id)

        async with running(bus):
            for i in range(10):
                await bus.emit(order(i))
            await bus.drain(timeout=10)
            assert sorted(done) == list(range(10))

    async def test_stop_lets_in_flight_handler_finish(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        started = asyncio.Event()
        finished: list[int] = []

        @bus.on(OrderPlaced, name="in-flight")
        async def in_flight(event: OrderPlaced) -> None:
            started.set()
            await asyncio.sleep(0.2)
            finished.append(event.order_id)

        await bus.start()
        await bus.emit(order(1))
        await asyncio.wait_for(started.wait(), 10)
        await bus.stop(timeout=5)
        assert finished == [1]
        assert not bus.running

    async def test_stop_cancels_handlers_after_timeout(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        started = asyncio.Event()
        cancelled = asyncio.Event()

        @bus.on(OrderPlaced, name="stuck")
        async def stuck(event: OrderPlaced) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await bus.start()
        await bus.emit(order(1))
        await asyncio.wait_for(started.wait(), 10)
        begin = time.monotonic()
        await bus.stop(timeout=0.2)
        assert time.monotonic() - begin < 5
        assert cancelled.is_set()

    async def test_emit_outside_running_bus_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        with pytest.raises(BusClosedError):
            await bus.emit(order(1))
        async with running(bus):
            await bus.emit(order(1))
        with pytest.raises(BusClosedError):
            await bus.emit(order(2))

    # -- bad input ----------------------------------------------------------------

    async def test_invalid_payload_is_refused_and_not_delivered(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        rec = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, rec, name="valid-only")
        async with running(bus):
            with pytest.raises(InvalidEventError) as info:
                await bus.emit("conformance.order_placed", order_id="seven", total="1")
            assert info.value.errors()[0]["loc"] == ("order_id",)
            assert "order_id" in str(info.value)
            with pytest.raises(InvalidEventError):
                await bus.emit("conformance.order_placed", order_id=1, total="1", coupon="X")
            with pytest.raises(InvalidEventError):
                await bus.emit("conformance.order_placed", total="1")
            await bus.emit(order(1))
            await bus.drain(timeout=10)
        assert [e.order_id for e in rec.events] == [1]

    async def test_unknown_event_name_suggests_close_matches(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        async with running(bus):
            with pytest.raises(UnknownEventError) as info:
                await bus.emit("conformance.order_placd", order_id=1, total="1")
        assert "conformance.order_placed" in str(info.value)

    async def test_oversized_event_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus(max_event_size=4096)
        rec = Recorder[OrderPlaced]()
        bus.subscribe(OrderPlaced, rec, name="size")
        async with running(bus):
            with pytest.raises(EventTooLargeError) as info:
                await bus.emit(order(1, note="x" * 5000))
            assert info.value.limit == 4096
            assert info.value.size > 4096
            await bus.emit(order(2, note="x" * 1000))
            await bus.drain(timeout=10)
        assert [e.order_id for e in rec.events] == [2]

    async def test_duplicate_subscriber_id_is_refused(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.subscribe(OrderPlaced, Recorder[OrderPlaced](), name="twice")
        with pytest.raises(DuplicateSubscriberError):
            bus.subscribe(OrderPlaced, Recorder[OrderPlaced](), name="twice")
        bus.subscribe(OrderShipped, Recorder[OrderShipped](), name="twice")  # other type: fine

    # -- metadata -----------------------------------------------------------------

    async def test_events_emitted_by_handlers_carry_correlation(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        seen: dict[str, tuple[str | None, str | None]] = {}

        @bus.on(OrderPlaced, name="shipper")
        async def ship(event: OrderPlaced) -> None:
            await bus.emit(OrderShipped(order_id=event.order_id))

        @bus.on(OrderShipped, name="tracker")
        async def track(event: OrderShipped) -> None:
            envelope = current_envelope()
            assert envelope is not None
            seen[envelope.id] = (envelope.correlation_id, envelope.causation_id)

        async with running(bus):
            placed_id = await bus.emit(order(3))
            await bus.drain(timeout=10)
        assert list(seen.values()) == [(placed_id, placed_id)]

    async def test_envelope_is_cloudevents_json(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        captured: list[bytes] = []

        @bus.on(OrderPlaced, name="encoder")
        async def encode(event: OrderPlaced) -> None:
            envelope = current_envelope()
            assert envelope is not None
            captured.append(envelope.encode())

        async with running(bus):
            event_id = await bus.emit(order(9))
            await bus.drain(timeout=10)
        decoded = decode_envelope(captured[0])
        attrs = decoded.attributes()
        assert attrs["specversion"] == "1.0"
        assert attrs["id"] == event_id
        assert attrs["type"] == "conformance.order_placed"
        assert attrs["datacontenttype"] == "application/json"
        assert {"source", "time"} <= attrs.keys()
        assert decoded.event == order(9)

    async def test_live_listener_sees_both_kinds(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.subscribe(OrderPlaced, Recorder[OrderPlaced](), name="durable-sub")
        async with running(bus):
            async with bus.listen(OrderPlaced, PriceChanged) as feed:
                placed = await bus.emit(order(1))
                changed = await bus.emit(PriceChanged(sku="lamp-3", price=9.5))
                await bus.emit(OrderShipped(order_id=1))  # not listened to
                seen = []
                async with asyncio.timeout(10):
                    async for envelope in feed:
                        seen.append(envelope)
                        if len(seen) == 2:
                            break
            assert feed.closed
        assert sorted(e.id for e in seen) == sorted([placed, changed])
        assert {e.type for e in seen} == {"conformance.order_placed", "conformance.price_changed"}

    async def test_listener_of_every_type_sees_types_nobody_subscribed(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()  # no subscription at all: only the listener wants these types
        async with running(bus), bus.listen() as feed:
            shipped = await bus.emit(OrderShipped(order_id=4))
            changed = await bus.emit(PriceChanged(sku="chair-1", price=12.0))
            seen: list[Envelope] = []
            async with asyncio.timeout(10):
                async for envelope in feed:
                    seen.append(envelope)
                    if len(seen) == 2:
                        break
        assert sorted(e.id for e in seen) == sorted([shipped, changed])

    async def test_stopping_the_bus_ends_its_listeners(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        await bus.start()
        try:
            async with bus.listen() as feed:
                waiting = asyncio.ensure_future(anext(feed, None))
                await bus.stop()
                async with asyncio.timeout(10):
                    assert await waiting is None  # the iteration ended
                assert feed.closed
        finally:
            await bus.stop()

    async def test_statistics_count_outcomes(self, make_bus: MakeBus) -> None:
        bus = make_bus()

        def second_fails_once(event: OrderPlaced, attempt: int) -> None:
            if event.order_id == 2 and attempt == 1:
                raise RuntimeError("once")

        bus.subscribe(OrderPlaced, Recorder[OrderPlaced](fail=second_fails_once), name="counted")
        async with running(bus):
            for i in range(1, 4):
                await bus.emit(order(i))
            await bus.drain(timeout=10)
            (stats,) = [s for s in bus.statistics() if s.subscriber == "counted"]
        assert (stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (3, 1, 1, 0)
