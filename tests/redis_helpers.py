"""Helpers for the tests that run ``hookbus worker`` subprocesses and check Redis directly.

* :class:`Worker` / :class:`WorkerPool`: ``python -m hookbus worker tests.apps.shop:bus``
  subprocesses with their output in files; every process started is killed on ``close``
  (and by Linux if the test process dies: ``PR_SET_PDEATHSIG``).
* :func:`shop_env`: the environment of such a process (redis mode, prefix, fast retries).
* :func:`wait_until`: a bounded wait on a condition, the only way these tests wait.
* Small async readers of what the shop app recorded and of consumer-group state.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from apps.shop import SUBSCRIBERS, SaleClosed, calls_key, handled_key
from hookbus import EventBus, event_name
from redis_bus import redis_bus

REPO_ROOT = Path(__file__).resolve().parents[1]
SHOP_TARGET = "tests.apps.shop:bus"
SALE_STREAM = f"stream:{event_name(SaleClosed)}"
READY_LINE = "hookbus worker running"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without hookbus/shop variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_", "SHOP_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def shop_env(url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Environment of a redis-mode shop worker: short retries and stop timeout."""
    settings = {
        "EVENT_BUS_MODE": "redis",
        "HOOKBUS_REDIS_URL": url,
        "HOOKBUS_REDIS_PREFIX": prefix,
        "HOOKBUS_STOP_TIMEOUT": "5",
        "HOOKBUS_RETRY_BASE_DELAY": "0.001",
        "HOOKBUS_RETRY_MAX_DELAY": "0.005",
    }
    return clean_env(**{**settings, **extra})


def hookbus_command(*args: str) -> list[str]:
    """``python -m hookbus ARGS``."""
    return [sys.executable, "-m", "hookbus", *args]


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float = 30.0) -> Any:
    """Run ``hookbus ARGS`` to completion (killed after ``timeout``); the CompletedProcess."""
    return subprocess.run(
        hookbus_command(*args),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,  # not a terminal: destructive commands need --yes
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes Linux SIGKILL the child if this (main) thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return setup


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it is true; AssertionError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


class Worker:
    """One ``hookbus worker`` subprocess; each start writes a new log file."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, name: str, target: str = SHOP_TARGET
    ) -> None:
        self.env = env
        self.log_dir = log_dir
        self.name = name
        self.target = target
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / f"{name}.0.log"

    def start(self) -> None:
        """Start the process (it must not be running)."""
        assert not self.running, f"worker {self.name} is already running"
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                hookbus_command("worker", self.target),
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """Everything the current run printed."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the worker logged that it runs (its bus started: groups exist)."""

        async def ready() -> bool:
            if READY_LINE in self.log():
                return True
            if not self.running:
                raise AssertionError(f"worker {self.name} exited early:\n{self.log()[-3000:]}")
            return False

        await wait_until(ready, timeout, f"worker {self.name} to start")

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; its return code."""
        process = self.process
        assert process is not None

        async def exited() -> bool:
            return process.poll() is not None

        await wait_until(exited, timeout, f"worker {self.name} to exit", interval=0.02)
        assert process.returncode is not None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the process, as in a crash, and reap it."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait(timeout=10)


class WorkerPool:
    """Workers of one test; :meth:`close` kills whatever still runs."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.workers: list[Worker] = []

    def start(self, env: dict[str, str], name: str | None = None) -> Worker:
        worker = Worker(env, self.log_dir, name or f"worker{len(self.workers)}")
        self.workers.append(worker)
        worker.start()
        return worker

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.kill()


@pytest.fixture(name="workers")
def workers_fixture(tmp_path: Path) -> Iterator[WorkerPool]:
    """Import it into a test module to get the ``workers`` fixture: a pool killed at the end."""
    pool = WorkerPool(tmp_path)
    try:
        yield pool
    finally:
        pool.close()


@contextlib.asynccontextmanager
async def raw_redis(url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client (closed at the end) to look at what hookbus stored."""
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


def emitter_bus(url: str, prefix: str, **options: Any) -> EventBus:
    """A redis-mode bus that only emits, declaring the shop's subscribers (so their groups
    exist from its start on) without consuming."""
    bus = redis_bus(url, prefix, consume=False, **options)

    async def never_called(sale: SaleClosed) -> None:
        raise AssertionError("consume=False: no handler may run here")

    for subscriber in SUBSCRIBERS:
        bus.subscribe(SaleClosed, never_called, name=subscriber)
    return bus


async def handled(client: aioredis.Redis, prefix: str, subscriber: str) -> dict[int, int]:
    """``sale_id -> successful handlings`` recorded by the shop app."""
    raw = await client.hgetall(handled_key(prefix, subscriber))
    return {int(k): int(v) for k, v in raw.items()}


async def calls(client: aioredis.Redis, prefix: str, subscriber: str) -> dict[int, int]:
    """``sale_id -> handler calls`` recorded by the shop app."""
    raw = await client.hgetall(calls_key(prefix, subscriber))
    return {int(k): int(v) for k, v in raw.items()}


async def pending(client: aioredis.Redis, prefix: str, group: str) -> int:
    """Entries of the sale stream delivered to ``group`` and not acknowledged."""
    summary = await client.xpending(f"{prefix}:{SALE_STREAM}", group)
    return int(summary["pending"])


async def caught_up(client: aioredis.Redis, prefix: str, group: str) -> bool:
    """``group`` has read every entry of the sale stream and acknowledged all of them."""
    stream = f"{prefix}:{SALE_STREAM}"
    info = await client.xinfo_stream(stream)
    for row in await client.xinfo_groups(stream):
        if row["name"].decode() == group:
            return bool(
                int(row["pending"]) == 0
                and _id(row["last-delivered-id"]) >= _id(info["last-generated-id"])
            )
    raise AssertionError(f"no consumer group {group!r} on {stream}")


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def sale(sale_id: int) -> SaleClosed:
    """Sale ``sale_id`` (its total in cents is its id)."""
    return SaleClosed(sale_id=sale_id, total=Decimal(sale_id) / 100)


def all_caught_up(client: aioredis.Redis, prefix: str) -> Callable[[], Awaitable[bool]]:
    """A condition for :func:`wait_until`: both shop subscribers handled everything stored."""

    async def condition() -> bool:
        return all([await caught_up(client, prefix, s) for s in SUBSCRIBERS])

    return condition


def in_flight(client: aioredis.Redis, prefix: str, sale_id: int) -> Callable[[], Awaitable[bool]]:
    """A condition for :func:`wait_until`: both shop handlers were called on ``sale_id``."""

    async def condition() -> bool:
        return all([sale_id in await calls(client, prefix, s) for s in SUBSCRIBERS])

    return condition


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
