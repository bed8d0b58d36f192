"""A uvicorn server with open feeds stops on SIGTERM or Ctrl+C.

Real ``uvicorn tests.apps.web:app`` processes (one, or a supervisor and two
workers), in local and redis modes, with an SSE and a WebSocket client
connected and a handler in progress: on the signal, the SSE stream ends
after a complete message, the WebSocket is closed with 1001, the handler
finishes (and, in redis mode, its acknowledgement is written), and the
process exits within the bus's stop timeout plus a second. The demo
(``python -m examples.shop_demo``) stops the same way on Ctrl+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.shop import SUBSCRIBERS
from demo_server import demo_server
from hookbus.testing.redis_server import RedisServer
from redis_helpers import REPO_ROOT, caught_up, clean_env, free_port, handled, raw_redis, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

STOP_TIMEOUT = 2.0
HANDLER_DELAY = 1.0
START_TIMEOUT = 20.0
SALE = 7


@dataclass
class Server:
    """A running ``uvicorn tests.apps.web:app``: its URL, process, and what it wrote."""

    base: str
    process: subprocess.Popen[bytes]
    log_path: Path
    record_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def recorded(self, what: str) -> bool:
        """Every shop handler wrote ``<subscriber>.<SALE>.<what>``."""
        return all((self.record_dir / f"{s}.{SALE}.{what}").exists() for s in SUBSCRIBERS)


@contextlib.contextmanager
def uvicorn_server(env: dict[str, str], tmp_path: Path, workers: int) -> Iterator[Server]:
    """Start uvicorn in a session of its own; whatever still runs at the end is killed."""
    record_dir = tmp_path / "handled"
    record_dir.mkdir()
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.apps.web:app"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
    ]
    settings = {
        "HOOKBUS_STOP_TIMEOUT": str(STOP_TIMEOUT),
        "SHOP_HANDLER_DELAY": str(HANDLER_DELAY),
        "SHOP_RECORD_DIR": str(record_dir),
    }
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**env, **settings},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers are killed with it
        )
    try:
        yield Server(f"http://127.0.0.1:{port}", process, log_path, record_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


async def _serving(server: Server, workers: int) -> None:
    """Wait until ``workers`` distinct processes have answered (new connection each time)."""
    pids: set[int] = set()

    async def all_answered() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{server.log()}")
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=2) as client:
                pids.add((await client.get("/pid")).json())
        except httpx.HTTPError:
            return False
        return len(pids) == workers

    await wait_until(all_answered, START_TIMEOUT, f"{workers} uvicorn worker(s) to serve")


async def _follow_sse(base: str, opened: asyncio.Event) -> list[str]:
    """Read the SSE feed until the server ends it; every line read. A stream cut
    short (an incomplete chunked body) raises."""
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        client.stream("GET", "/events/stream") as response,
    ):
        assert response.status_code == 200
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            opened.set()
        return lines


async def _follow_websocket(base: str, opened: asyncio.Event) -> int | None:
    """Read the WebSocket feed until the server closes it; the close code."""
    async with connect(base.replace("http", "ws", 1) + "/events/ws") as websocket:
        opened.set()
        with contextlib.suppress(ConnectionClosed):
            async for _ in websocket:
                pass
        return websocket.close_code


@dataclass
class Clients:
    """An SSE and a WebSocket client following the feed in the background."""

    sse: asyncio.Task[list[str]]
    websocket: asyncio.Task[int | None]


@contextlib.asynccontextmanager
async def feed_clients(base: str) -> AsyncIterator[Clients]:
    """Both clients, connected (the server sent its first bytes) when the block starts."""
    sse_open, websocket_open = asyncio.Event(), asyncio.Event()
    clients = Clients(
        asyncio.create_task(_follow_sse(base, sse_open)),
        asyncio.create_task(_follow_websocket(base, websocket_open)),
    )
    tasks = [clients.sse, clients.websocket]
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(sse_open.wait(), websocket_open.wait())
        yield clients
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)


async def _signal_until_exit(
    process: subprocess.Popen[Any], clients: Clients, sig: signal.Signals
) -> tuple[list[str], int | None, float]:
    """Send ``sig``, wait for the process to exit; the SSE lines, the WebSocket close
    code and how long the exit took (each client must have ended without error)."""
    process.send_signal(sig)
    sent = time.monotonic()

    async def exited() -> bool:
        return process.poll() is not None

    await wait_until(exited, STOP_TIMEOUT + 5, "the server to exit", interval=0.02)
    took = time.monotonic() - sent
    async with asyncio.timeout(2):
        lines = await clients.sse  # ended without error: the last chunk was sent
        code = await clients.websocket
    return lines, code, took


async def _stop_with_feeds_open(server: Server, workers: int, sig: signal.Signals) -> float:
    """Connect both clients, start a handler, send ``sig``; check that the feeds end
    properly and the handler finished. How long the server took to exit."""
    await _serving(server, workers)
    async with feed_clients(server.base) as clients:
        async with httpx.AsyncClient(base_url=server.base, timeout=5) as till:
            (await till.post(f"/sales/{SALE}")).raise_for_status()

        async def in_progress() -> bool:
            return server.recorded("called")

        await wait_until(in_progress, 10, "the handlers to start")
        assert not server.recorded("handled")
        lines, code, took = await _signal_until_exit(server.process, clients, sig)
    assert lines[-1] == "", f"the stream ended in the middle of a message: {lines[-3:]}"
    assert code == 1001
    assert server.recorded("handled"), "the handler in progress did not finish"
    assert took < STOP_TIMEOUT + 1, f"exited after {took:.2f} s:\n{server.log()}"
    assert "Waiting for connections to close" not in server.log()
    return took


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_closes_the_feeds_and_stops_local_mode(tmp_path: Path, workers: int) -> None:
    with uvicorn_server(clean_env(EVENT_BUS_MODE="local"), tmp_path, workers) as server:
        await _stop_with_feeds_open(server, workers, signal.SIGTERM)


@pytest.mark.redis
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_closes_the_feeds_and_stops_redis_mode(
    tmp_path: Path, workers: int, redis_server: RedisServer, redis_prefix: str
) -> None:
    env = clean_env(
        EVENT_BUS_MODE="redis",
        HOOKBUS_REDIS_URL=redis_server.url,
        HOOKBUS_REDIS_PREFIX=redis_prefix,
    )
    with uvicorn_server(env, tmp_path, workers) as server:
        await _stop_with_feeds_open(server, workers, signal.SIGTERM)
    async with raw_redis(redis_server.url) as client:
        for subscriber in SUBSCRIBERS:
            assert await handled(client, redis_prefix, subscriber) == {SALE: 1}
            assert await caught_up(client, redis_prefix, subscriber)  # acknowledged


async def test_ctrl_c_closes_the_feeds_and_stops(tmp_path: Path) -> None:
    with uvicorn_server(clean_env(EVENT_BUS_MODE="local"), tmp_path, 1) as server:
        await _stop_with_feeds_open(server, 1, signal.SIGINT)


async def test_ctrl_c_stops_the_demo_with_its_dashboard_connected(tmp_path: Path) -> None:
    env = clean_env(HOOKBUS_STOP_TIMEOUT=str(STOP_TIMEOUT))
    with demo_server(env, tmp_path) as demo:
        async with feed_clients(demo.base) as clients:
            lines, code, took = await _signal_until_exit(demo.process, clients, signal.SIGINT)
        assert lines[-1] == ""
        assert code == 1001
        assert took < STOP_TIMEOUT + 1, "\n".join(demo.output)
