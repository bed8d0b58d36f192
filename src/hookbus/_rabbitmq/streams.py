"""Reading a RabbitMQ stream from an offset up to "now", and on.

A stream has no end to read to: both readers first append a marker message
of their own to the stream (confirmed), then read from the offset until that
marker comes by. Everything stored before the call has then been read.
Markers carry the ``x-hookbus-marker`` header; readers skip them.

* :func:`read_stream` yields the messages up to its marker, then closes its
  channel (replay, feed resume, dead letters);
* :func:`follow_stream` hands every message to a callback, returns once its
  marker came by, and goes on consuming until its channel is closed (the
  completion records of idempotent subscribers). The robust channel consumes
  again after a reconnect, from the same offset.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aio_pika

from .publisher import Publisher
from .shared import RabbitShared

__all__ = ["MARKER_HEADER", "follow_stream", "read_stream"]

MARKER_HEADER = "x-hookbus-marker"
_READ_TIMEOUT = 30.0
_PREFETCH = 500

Offset = str | int | datetime


async def _send_marker(publisher: Publisher, stream: str) -> str:
    """Append a marker of our own to ``stream`` (confirmed); return its token."""
    token = secrets.token_hex(8)
    await publisher.send(stream, aio_pika.Message(b"", headers={MARKER_HEADER: token}))
    return token


async def _consume(
    channel: Any,
    stream: str,
    offset: Offset,
    callback: Callable[[Any], Awaitable[Any]],
    *,
    restored: bool,
) -> None:
    """Consume ``stream`` from ``offset`` on ``channel`` with ``callback``; ``restored``:
    declared (passively) through the robust channel, which then consumes again after
    a reconnect, rather than merely named."""
    await channel.set_qos(prefetch_count=_PREFETCH)
    if restored:
        queue = await channel.declare_queue(stream, passive=True)
    else:
        queue = await channel.get_queue(stream, ensure=False)
    # A consumer callback, not aio-pika's queue iterator: leaving the iterator
    # rejects what it buffered, which a stream answers by closing the connection.
    await queue.consume(callback, arguments={"x-stream-offset": offset})


async def read_stream(
    shared: RabbitShared,
    publisher: Publisher,
    stream: str,
    offset: Offset = "first",
) -> AsyncIterator[Any]:
    """The messages of ``stream`` from ``offset`` (``"first"``, an offset number or a
    time) up to the moment of the call, markers left out."""
    token = await _send_marker(publisher, stream)
    channel = await shared.live_connection().channel(publisher_confirms=False)
    arrived: asyncio.Queue[Any] = asyncio.Queue()
    try:
        await _consume(channel, stream, offset, arrived.put, restored=False)
        async with asyncio.timeout(_READ_TIMEOUT):
            while True:
                message = await arrived.get()
                await message.ack()
                marker = (message.headers or {}).get(MARKER_HEADER)
                if marker is not None:
                    if marker == token:
                        return
                    continue
                yield message
    finally:
        if not channel.is_closed:
            await channel.close()  # what it still held is released, not rejected


async def follow_stream(
    shared: RabbitShared,
    publisher: Publisher,
    stream: str,
    on_message: Callable[[Any], None],
    offset: Offset = "first",
) -> Any:
    """Pass each message of ``stream`` from ``offset`` on to ``on_message`` (markers
    left out), in stream order; return once every message stored before the call was
    passed. The returned channel goes on consuming: close it to stop.

    Raises :class:`TimeoutError` when nothing arrives for 30 seconds before the
    marker did."""
    token = await _send_marker(publisher, stream)
    caught_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    arrived = 0

    async def received(message: Any) -> None:
        nonlocal arrived
        arrived += 1
        marker = (message.headers or {}).get(MARKER_HEADER)
        if marker is None:
            on_message(message)  # before any await: passed in the order delivered
        elif marker == token and not caught_up.done():
            caught_up.set_result(None)
        await message.ack()

    channel = await shared.live_connection().channel(publisher_confirms=False)
    try:
        await _consume(channel, stream, offset, received, restored=True)
        while True:
            before = arrived
            done, _ = await asyncio.wait({caught_up}, timeout=_READ_TIMEOUT)
            if done:
                return channel
            if arrived == before:
                raise TimeoutError(f"reading stream {stream}: nothing arrived for {_READ_TIMEOUT}s")
    except BaseException:
        if not channel.is_closed:
            await channel.close()
        raise
