"""Conformance: what a hostile handler raises never stalls a subscriber.

Part of :class:`hookbus.testing.conformance.BusConformance`. Handlers raise
what real code can raise: exceptions whose message cannot be printed, a
recursion or memory error, a message of megabytes, an exception group, a
cancellation of their own. Each such event must become exactly one dead
letter with a readable, bounded message, and the events around it must be
delivered as usual.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from .._event import Event
from ._recorder import Recorder

if TYPE_CHECKING:
    from .conformance import MakeBus

__all__ = ["HostileHandlerConformance"]


class Ticket(Event, name="conformance.ticket"):
    number: int
    trouble: str = ""
    amount: Decimal = Decimal("1.00")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this message cannot be shown")


def _recursion() -> BaseException:
    def dive(depth: int) -> int:
        return dive(depth + 1) + 1

    try:
        dive(0)
    except RecursionError as exc:
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


TROUBLES: dict[str, Callable[[], BaseException]] = {
    "unprintable": _Unprintable,
    "recursion": _recursion,
    "memory": MemoryError,
    "huge-message": lambda: ValueError("x" * 5_000_000),
    "unicode": lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    "group": lambda: ExceptionGroup("several", [ValueError("a"), KeyError("b")]),
    "own-cancellation": asyncio.CancelledError,
}


class HostileHandlerConformance:
    """The hostile-handler tests of the conformance suite."""

    async def test_hostile_handler_errors_become_dead_letters_and_nothing_stalls(
        self, make_bus: MakeBus
    ) -> None:
        bus = make_bus()
        troubled = Recorder[Ticket]()

        async def hostile(event: Ticket) -> None:
            if event.trouble:
                raise TROUBLES[event.trouble]()
            await troubled(event)

        bus.subscribe(Ticket, hostile, name="hostile", max_attempts=1)
        calm = Recorder[Ticket]()
        bus.subscribe(Ticket, calm, name="calm")
        fine: list[str] = []
        bad: dict[str, str] = {}
        async with bus:
            for round_ in range(3):
                for number, trouble in enumerate(TROUBLES):
                    fine.append(await bus.emit(Ticket(number=round_ * 100 + number)))
                    event_id = await bus.emit(Ticket(number=-number, trouble=trouble))
                    bad[event_id] = trouble
            await calm.wait_for(len(fine) + len(bad), timeout=30)
            await bus.drain(timeout=30)
            letters = await bus.dead_letters()
            stats = {s.subscriber: s for s in bus.statistics()}
        assert Counter(troubled.ids) == Counter(fine)
        assert Counter(calm.ids) == Counter(fine + list(bad))
        assert Counter(letter.event_id for letter in letters) == Counter(list(bad))
        for letter in letters:
            trouble = bad[letter.event_id]
            assert letter.subscriber == "hostile"
            assert letter.attempts == 1
            assert isinstance(letter.error_message, str)
            assert len(letter.error_message) <= 2001, trouble
            assert isinstance(letter.event, Ticket)
            assert letter.event.trouble == trouble
            if trouble == "unprintable":
                assert "cannot be shown" in letter.error_message
                assert letter.error_type.endswith("_Unprintable")
        assert stats["hostile"].queued == 0
        assert stats["hostile"].dead_lettered == len(bad)
