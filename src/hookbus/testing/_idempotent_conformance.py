"""The conformance suite's tests of idempotent subscribers (``idempotent=True``).

Part of :class:`~hookbus.testing.conformance.BusConformance`. A duplicate is
made the way the backend would see one after a crash or a second relay of
an outbox row: the same envelope (same event id) published again through
the backend.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .._context import current_envelope
from .._envelope import Envelope
from .._event import Event
from ._recorder import Recorder

if TYPE_CHECKING:
    from .._bus import EventBus
    from .conformance import MakeBus

__all__ = ["IdempotentConformance"]


class Booked(Event, name="conformance.idempotent.booked"):
    n: int


async def publish_again(bus: EventBus, envelope: Envelope) -> None:
    """Publish an envelope that was published already, as a redelivery would."""
    pending = bus._backend.publish(envelope)
    if pending is not None:
        await pending


def stats_of(bus: EventBus, subscriber: str) -> tuple[int, int]:
    """(handled, skipped) of one subscriber."""
    [stats] = [s for s in bus.statistics() if s.subscriber == subscriber]
    return stats.handled, stats.skipped


class IdempotentConformance:
    """Effectively-once subscribers: a completed event id is never run again."""

    async def test_idempotent_subscriber_skips_an_event_it_completed(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        once: Recorder[Booked] = Recorder()
        every: Recorder[Booked] = Recorder()
        bus.subscribe(Booked, once, name="once", idempotent=True)
        bus.subscribe(Booked, every, name="every")
        seen: list[Envelope] = []

        async def keep(event: Booked) -> None:
            envelope = current_envelope()
            assert envelope is not None
            seen.append(envelope)

        bus.subscribe(Booked, keep, name="keep")
        async with bus:
            await bus.emit(Booked(n=1))
            await bus.drain(10)
            await publish_again(bus, seen[0])
            await every.wait_for(2)
            await bus.drain(10)
            assert [e.n for e in once.events] == [1]
            assert [e.n for e in every.events] == [1, 1]
            assert stats_of(bus, "once") == (1, 1)
            assert stats_of(bus, "every") == (2, 0)

    async def test_only_a_completed_event_is_skipped(self, make_bus: MakeBus) -> None:
        """A failed attempt records nothing: the retry runs, then the event is done."""

        def fail_first(event: Booked, attempt: int) -> None:
            if attempt == 1:
                raise RuntimeError("the accounting is down")

        bus = make_bus()
        flaky: Recorder[Booked] = Recorder(fail=fail_first)
        bus.subscribe(Booked, flaky, name="flaky", idempotent=True)
        async with bus:
            await bus.emit(Booked(n=7))
            await flaky.wait_for(1)
            await bus.drain(10)
            assert flaky.calls == 2
            envelope = await _envelope_of(bus, flaky)
            await publish_again(bus, envelope)
            await bus.drain(10)
            assert flaky.calls == 2
            assert stats_of(bus, "flaky") == (1, 1)

    async def test_completions_are_kept_per_subscriber(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        first: Recorder[Booked] = Recorder()
        second: Recorder[Booked] = Recorder()
        bus.subscribe(Booked, first, name="first", idempotent=True)
        bus.subscribe(Booked, second, name="second", idempotent=True)
        async with bus:
            ids = [await bus.emit(Booked(n=n)) for n in range(5)]
            await first.wait_for(5)
            await second.wait_for(5)
            assert first.ids == ids
            assert second.ids == ids

    async def test_completions_expire_after_the_retention(self, make_bus: MakeBus) -> None:
        bus = make_bus(idempotency_retention=0.5)
        once: Recorder[Booked] = Recorder()
        bus.subscribe(Booked, once, name="once-for-a-while", idempotent=True)
        async with bus:
            emitted = time.monotonic()
            await bus.emit(Booked(n=3))
            await once.wait_for(1)
            await bus.drain(10)
            recorded = time.monotonic()  # the record was written between the two
            envelope = await _envelope_of(bus, once)
            await publish_again(bus, envelope)
            await bus.drain(10)
            if time.monotonic() - emitted < 0.5:  # surely within the retention
                assert len(once.events) == 1
            await asyncio.sleep(max(0.0, recorded + 0.6 - time.monotonic()))
            await publish_again(bus, envelope)
            await once.wait_for(2)
            assert [e.n for e in once.events] == [3, 3]


async def _envelope_of(bus: EventBus, recorder: Recorder[Booked]) -> Envelope:
    """The envelope of the one event ``recorder`` handled, rebuilt from its id."""
    [event] = recorder.events[-1:]
    return Envelope(recorder.ids[-1], event, bus.settings.source)
