"""What ``benchmarks.cluster`` and ``benchmarks.scale`` share: the throughput workload, the
worker processes of the consumer-scaling section, polling, rotation and log collection.

* :func:`throughput`: events per second, emit -> handler -> ack, on any bus (not started,
  no subscription yet), every :data:`~benchmarks._cluster_app.SALE_TYPES` round-robin;
* :func:`preemit`: store events for the workers' subscriber with a bus that consumes nothing;
* :func:`run_workers`: start ``hookbus worker benchmarks._cluster_app:gated_bus`` processes
  (configured by environment), wait until each has imported everything, tell them all to go
  and time until ``all_handled()`` says the work is done;
* Redis helpers: :func:`new_redis_bus`, :func:`admin_client`, :func:`group_caught_up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis.asyncio
import redis.asyncio.cluster

from benchmarks._cluster_app import READY, SALE_TYPES, SCALE_SUBSCRIBER, SPIN_ENV
from benchmarks._redis_baselines import Client
from benchmarks.redis import Tally, emit_all
from hookbus import Event, EventBus, Settings
from hookbus._redis_options import RedisOptions

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.01
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 15.0
WORKER_TARGET = "benchmarks._cluster_app:gated_bus"


# --------------------------------------------------------------------------- small helpers


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = POLL
) -> None:
    """Poll ``condition`` until true; TimeoutError naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def rotated(items: Sequence[Any], r: int) -> list[Any]:
    """Start each round with another contender: no one always runs first."""
    shift = r % len(items)
    return list(items[shift:]) + list(items[:shift])


def prefix(tag: str, round_no: int) -> str:
    """A key (or exchange and queue name) prefix used by one run only."""
    return f"bench{round_no}{tag}{uuid.uuid4().hex[:8]}"


class LogTally(logging.Handler):
    """Counts what hookbus logs (by level, and by the start of the message)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.levels: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        self.messages[" ".join(record.getMessage().split())[:200]] += 1


@contextlib.contextmanager
def hookbus_logs() -> Iterator[LogTally]:
    """Collect hookbus's warnings and errors instead of printing them among the tables."""
    logger = logging.getLogger("hookbus")
    tally = LogTally()
    logger.addHandler(tally)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield tally
    finally:
        logger.removeHandler(tally)
        logger.propagate = propagate


# --------------------------------------------------------------------------- redis


def new_redis_bus(url: str, key_prefix: str, **options: Any) -> EventBus:
    """A redis-mode bus (cluster if the URL says so), nothing read from the environment."""
    settings = Settings(mode="redis", redis_url=url, redis=RedisOptions(key_prefix, **options))
    return EventBus(settings=settings)


def admin_client(url: str, cluster: bool) -> Client:
    """A plain client to look at streams and flush: a cluster client for the cluster."""
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, socket_timeout=10.0)
    return redis.asyncio.Redis.from_url(url, socket_timeout=10.0)


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def group_caught_up(client: Client, stream: str, group: str) -> bool:
    """``group`` has been delivered every entry of ``stream`` and acknowledged them all."""
    info, groups = await asyncio.gather(client.xinfo_stream(stream), client.xinfo_groups(stream))
    for row in groups:
        name = row["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            return bool(
                int(row["pending"]) == 0
                and _id(row["last-delivered-id"]) >= _id(info["last-generated-id"])
            )
    raise RuntimeError(f"no consumer group {group!r} on {stream}")


# --------------------------------------------------------------------------- workloads


async def throughput(
    bus: EventBus, subscribers: int, *, events: Sequence[Event], chunk: int, timeout: float
) -> float:
    """Events per second on ``bus`` (not started), emit -> handler -> ack, every type
    round-robin, ``subscribers`` subscribers (``bench-0``...) of every type."""
    tallies = [Tally(len(events)) for _ in range(subscribers)]
    for i, tally in enumerate(tallies):
        for cls in SALE_TYPES:
            bus.subscribe(cls, tally.handler, name=f"bench-{i}")
    await bus.start()
    try:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(emit_all(bus, events, chunk), timeout)
            await asyncio.wait_for(asyncio.gather(*(t.done for t in tallies)), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"throughput: timed out ({timeout}s); subscribers saw "
                f"{[t.count for t in tallies]} of {len(events)} events"
            ) from None
        await bus.drain(timeout)
        elapsed = time.perf_counter() - start
        counts = [t.count for t in tallies]
        assert counts == [len(events)] * subscribers, (counts, len(events))
        return len(events) / elapsed
    finally:
        await bus.stop(5.0)


async def preemit(bus: EventBus, events: Sequence[Event], chunk: int) -> None:
    """Store ``events`` with a bus built with ``consume=False`` (not started): the workers'
    subscriber (:data:`SCALE_SUBSCRIBER`) gets its groups or queues, nothing is consumed."""

    async def never_called(event: Event) -> None:
        raise AssertionError("consume=False: no handler runs here")

    for cls in SALE_TYPES:
        bus.subscribe(cls, never_called, name=SCALE_SUBSCRIBER)
    async with bus:
        await emit_all(bus, events, chunk)


# --------------------------------------------------------------------------- worker processes


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


@dataclass
class WorkerProcess:
    """One ``hookbus worker`` process, its stderr in a file."""

    process: subprocess.Popen[str]
    log: IO[bytes]

    def tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]


def start_worker(config: Mapping[str, str], spin_us: float, log: IO[bytes]) -> WorkerProcess:
    """A worker configured by ``config`` (``EVENT_BUS_MODE``, URL, prefix...) and nothing
    else of this process's ``EVENT_BUS_*`` / ``HOOKBUS_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    env.update(
        {"HOOKBUS_STOP_TIMEOUT": "5", SPIN_ENV: str(spin_us), "PYTHONUNBUFFERED": "1", **config}
    )
    command = [sys.executable, "-m", "hookbus", "--log-level", "WARNING", "worker", WORKER_TARGET]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl
    )
    return WorkerProcess(process, log)


async def wait_ready(worker: WorkerProcess) -> None:
    stdout = worker.process.stdout
    assert stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), WORKER_READY_TIMEOUT)
    if line.strip() != READY:
        raise RuntimeError(f"worker did not get ready ({line!r}):\n{worker.tail()}")


async def stop_workers(workers: Sequence[WorkerProcess]) -> list[str]:
    """SIGTERM every worker, wait for them (SIGKILL after a while); what went wrong."""
    problems = []
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            code = await asyncio.to_thread(worker.process.wait, WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            await asyncio.to_thread(worker.process.wait, 5.0)
            problems.append(f"worker {worker.process.pid} did not stop on SIGTERM")
            continue
        if code != 0:
            problems.append(f"worker {worker.process.pid} exited {code}:\n{worker.tail()}")
    return problems


async def run_workers(
    workers: int, config: Mapping[str, str], *, spin_us: float,
    all_handled: Callable[[], Awaitable[bool]], timeout: float,
) -> float:  # fmt: skip
    """Seconds from the go given to ``workers`` ready processes until ``all_handled()``
    (polled every :data:`POLL` s, at most ``timeout`` s); the workers are stopped after."""
    pool: list[WorkerProcess] = []
    with contextlib.ExitStack() as files:
        try:
            for _ in range(workers):
                log = files.enter_context(tempfile.TemporaryFile())
                pool.append(start_worker(config, spin_us, log))
            await asyncio.gather(*(wait_ready(w) for w in pool))
            start = time.perf_counter()
            for worker in pool:
                assert worker.process.stdin is not None
                worker.process.stdin.write("go\n")
                worker.process.stdin.close()
            try:
                await wait_for(all_handled, timeout, f"{workers} worker(s) to handle everything")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}\n{pool[0].tail()}") from None
            elapsed = time.perf_counter() - start
        finally:
            problems = await stop_workers(pool)
        if problems:
            raise RuntimeError("\n".join(problems))
    return elapsed
