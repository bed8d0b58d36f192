"""A recording handler for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .._context import current_envelope
from .._event import Event
from .._retry import RetryPolicy
from .._settings import Settings

__all__ = ["Recorder", "test_settings"]

E = TypeVar("E", bound=Event)


def test_settings(**options: Any) -> Settings:
    """Settings for tests: fast retries (1-5 ms), 5 s stop timeout; ``options`` override."""
    base = Settings(
        retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.005),
        stop_timeout=5.0,
    )
    return base.with_options(**options) if options else base


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


class Recorder(Generic[E]):
    """An async handler that records every event it receives.

    ``fail`` may raise to simulate a failing subscriber; it gets the event
    and the number of the attempt for this event id (1, 2, ...). Use
    :meth:`wait_for` to wait, with a timeout, until enough events arrived.
    """

    def __init__(self, fail: Callable[[E, int], None] | None = None) -> None:
        self.events: list[E] = []
        self.ids: list[str] = []
        self.attempts: dict[str, int] = {}
        self._fail = fail
        self._changed = asyncio.Event()

    async def __call__(self, event: E) -> None:
        envelope = current_envelope()
        event_id = envelope.id if envelope is not None else ""
        attempt = self.attempts.get(event_id, 0) + 1
        self.attempts[event_id] = attempt
        self._changed.set()
        if self._fail is not None:
            self._fail(event, attempt)
        self.events.append(event)
        self.ids.append(event_id)
        self._changed.set()

    @property
    def calls(self) -> int:
        """Handler calls so far, failed ones included."""
        return sum(self.attempts.values())

    async def wait_for(
        self, count: int = 1, timeout: float = 10.0, *, calls: bool = False
    ) -> list[E]:
        """Wait until ``count`` events were handled (or ``calls`` attempts made); return events.

        Raises :class:`TimeoutError` naming what was seen.
        """

        def reached() -> bool:
            return (self.calls if calls else len(self.events)) >= count

        try:
            async with asyncio.timeout(timeout):
                while not reached():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} {'calls' if calls else 'events'} within {timeout}s, "
                f"got {self.calls} calls and {len(self.events)} handled events"
            ) from None
        return list(self.events)
