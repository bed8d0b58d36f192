"""Serving an ASGI app with a real uvicorn server on a free loopback port, in tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run ``app`` (lifespan included) until the block ends; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


class SSEParser:
    """Server-Sent Events, one line at a time: events' fields, comments aside."""

    def __init__(self) -> None:
        self.comments: list[str] = []
        self._fields: dict[str, str] = {}

    def line(self, line: str) -> dict[str, str] | None:
        """Take one line; return an event's fields (id, event, data) once it is complete."""
        if not line:
            fields, self._fields = self._fields, {}
            return fields or None
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            self._fields[name] = value.removeprefix(" ")
        return None


class SSEReader(SSEParser):
    """Reads Server-Sent Events from an httpx streaming response."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        super().__init__()
        self._lines = lines

    async def next_event(self, timeout: float = 10.0) -> dict[str, str]:
        """The next event's fields (id, event, data); comments are collected aside."""
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                fields = self.line(line)
                if fields is not None:
                    return fields
        raise EOFError("stream ended")


def poll_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Block until ``condition()`` (server-side state) holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
