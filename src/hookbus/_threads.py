"""Running a coroutine on the bus's event loop from another thread, and waiting for it.

``EventBus.emit_sync`` is built on it. The coroutine's task runs in a copy of
the calling thread's context (``asyncio.run_coroutine_threadsafe`` schedules
it with the thread's current context), which is how an emit made by a plain
handler finds the delivery pinned in that handler's context.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._exceptions import BusClosedError

__all__ = ["on_loop_thread", "run_on_loop"]

T = TypeVar("T")

#: How often a waiting thread looks whether the loop was closed under it.
_CLOSED_CHECK = 1.0

_GONE = "the bus's event loop is closed or shut down: the bus accepts no more events"


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the calling thread is running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def run_on_loop(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``coro`` on ``loop`` (running in another thread); block until it is done.

    Returns its result or raises its exception in the calling thread. Raises
    :class:`BusClosedError` when the loop is closed, or shuts down before the
    coroutine finished: cancelled (``asyncio.run``'s end), never run, or its
    task destroyed with the closed loop (noticed within ``_CLOSED_CHECK``
    seconds). Never call it on ``loop``'s own thread: it would wait forever.
    """
    try:
        future = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError:  # the loop is closed
        coro.close()
        raise BusClosedError(_GONE) from None
    while not future.done():
        concurrent.futures.wait((future,), timeout=_CLOSED_CHECK)
        if not future.done() and loop.is_closed():
            future.cancel()
            with contextlib.suppress(RuntimeError):
                coro.close()  # no "never awaited" warning for a coroutine that never ran
            raise BusClosedError(_GONE)
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise BusClosedError(_GONE) from None
