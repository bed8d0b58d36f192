"""Reading a RabbitMQ stream from an offset up to "now".

A stream has no end to read to: :func:`read_stream` first appends a marker
message of its own to the stream (confirmed), then reads from the offset
until that marker comes by. Everything stored before the call has then been
read. Markers carry the ``x-hookbus-marker`` header; readers skip them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aio_pika

from .publisher import Publisher
from .shared import RabbitShared

__all__ = ["MARKER_HEADER", "read_stream"]

MARKER_HEADER = "x-hookbus-marker"
_READ_TIMEOUT = 30.0


async def read_stream(
    shared: RabbitShared,
    publisher: Publisher,
    stream: str,
    offset: str | int | datetime = "first",
) -> AsyncIterator[Any]:
    """The messages of ``stream`` from ``offset`` (``"first"``, an offset number or a
    time) up to the moment of the call, markers left out."""
    token = secrets.token_hex(8)
    await publisher.send(stream, aio_pika.Message(b"", headers={MARKER_HEADER: token}))
    channel = await shared.live_connection().channel(publisher_confirms=False)
    arrived: asyncio.Queue[Any] = asyncio.Queue()
    try:
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(stream, ensure=False)
        # A consumer callback, not aio-pika's queue iterator: leaving the iterator
        # rejects what it buffered, which a stream answers by closing the connection.
        await queue.consume(arrived.put, arguments={"x-stream-offset": offset})
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
