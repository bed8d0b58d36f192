"""Ctrl+C and SIGTERM as an :class:`asyncio.Event`, for the commands that run until then."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["stop_signal"]


def stop_signal() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM (on the running loop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
