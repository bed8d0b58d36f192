"""Shutdown signals: do something first, then pass the signal on to the server.

Servers such as uvicorn catch SIGTERM and SIGINT with Python handlers
(``signal.signal``) before the lifespan starts. :func:`before_shutdown_signals`
puts its own handler in front of each, keeping the one it replaces: the first
signal starts an action on the event loop (closing the feeds), and the
server's handler gets that signal — and any that came meanwhile, in order —
once the action is over. Later signals go straight to the server's handler.
Leaving the block puts the server's handlers back.

Nothing is patched: the process's handler table is the public interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import FrameType

__all__ = ["SHUTDOWN_SIGNALS", "before_shutdown_signals"]

#: The signals a server stops on: ``kill``, ``docker stop`` and Ctrl+C.
SHUTDOWN_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], object]


class _SignalChain:
    """One handler in front of the server's: the action first, then the signals passed on."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        action: Callable[[], Awaitable[None]],
        previous: dict[int, Handler],
    ) -> None:
        self._loop = loop
        self._action = action
        self._previous = previous
        #: Signals received while the action runs; None before the first one.
        self._pending: list[tuple[int, FrameType | None]] | None = None
        self._passing_through = False
        self._task: asyncio.Task[None] | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: runs in the main thread, between two bytecodes of
        whatever the loop was doing, so it only schedules."""
        if self._passing_through:
            self._previous[signum](signum, frame)
            return
        if self._pending is not None:
            self._pending.append((signum, frame))
            return
        self._pending = [(signum, frame)]
        try:
            self._loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop is closed: nothing left to do first
            self._pass_on()

    def _start(self) -> None:
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._action()
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        self._passing_through = True
        pending, self._pending = self._pending or [], []
        for signum, frame in pending:
            self._previous[signum](signum, frame)


@contextlib.contextmanager
def before_shutdown_signals(
    action: Callable[[], Awaitable[None]], signals: Iterable[int] = SHUTDOWN_SIGNALS
) -> Iterator[None]:
    """While the block runs, the first of ``signals`` runs ``action`` on the
    running loop before the handler it replaced gets the signal.

    Only signals that already have a Python handler (the server's) are taken:
    with the default action or none, no Python code would run on the signal
    anyway. Does nothing outside the main thread (where Python delivers
    signals), e.g. under Starlette's ``TestClient``. ``action`` should bound
    its own duration: the server does not see the signal until it returns.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Handler] = {}
    for signum in signals:
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
    chain = _SignalChain(asyncio.get_running_loop(), action, previous)
    for signum in previous:
        signal.signal(signum, chain.handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) == chain.handle:  # not replaced since
                signal.signal(signum, handler)
