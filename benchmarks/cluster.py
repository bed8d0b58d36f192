"""Redis mode on a Redis Cluster against one Redis server, in one run, and what a failover loses.

Run with ``python -m benchmarks.cluster``. One run starts one server (``RedisServer``) and one
cluster of three masters and three replicas (``RedisCluster``), all on 127.0.0.1, without
persistence, and measures both alike; rounds interleave the two (the order rotates every round,
so that machine noise hits both), each run gets its own key prefix, the data is flushed between
runs, and the tables show the median of the rounds. Every ratio compares numbers of this run.

The load is spread round-robin over four durable event types (``benchmarks._cluster_app``),
whose streams the cluster spreads over its three masters (one hash tag per type).

1. durable throughput, emit -> handler -> ack, with 1 and 3 subscribers (consumer groups),
   in events per second from the first emit until every subscriber saw every event and
   ``drain()`` returned; emits gathered ``--chunk`` at a time, so that they pipeline (the
   workload of the hookbus contender of ``benchmarks.redis``);
2. consumer scaling: the parent emits ``--events`` events first (a bus with
   ``consume=False``), then 1, 2, 4 (up to ``--workers``) ``hookbus worker`` processes consume
   them as one subscriber (one consumer group per stream), each handler spinning the CPU for
   ``--spin-us`` microseconds (a stand-in for the handler's own work). The clock starts when
   every worker has imported its code and is told to go (see ``benchmarks._cluster_app``), and
   stops when ``XINFO GROUPS`` / ``XINFO STREAM`` show every stream's group with everything
   delivered and nothing pending (polled every 10 ms);
3. failover: on a fresh cluster per run, one bus emits without pause (``--failover-chunk``
   emits gathered at a time) while another consumes; once ``--failover-events`` emits were
   accepted, the master serving the stream's slot is SIGKILLed; the bench waits for its replica
   to take over, restarts the killed node (it comes back as a replica), emits
   ``--failover-events`` more, then waits (at most ``--drain-timeout`` s) until the consumer
   handled every accepted event or its group shows nothing left to read. It counts the emits
   accepted (``emit`` returned), refused (``emit`` raised, ``BusUnavailableError`` or not),
   lost (accepted, never handled) and handled more than once, with ``min_replicas=0`` (emit
   returns once the master has the event) and ``min_replicas=1`` (once a replica has it too:
   ``WAIT``). Default options otherwise (``emit_timeout`` 5 s, ``replica_timeout`` 1 s), except
   the consumer's ``claim_idle`` of 1 s, so that entries it held are taken back quickly.
   What the buses logged during these runs is summed up below the table. On loopback a
   replica gets a write almost as soon as its master accepted it, so the window in which
   ``min_replicas=0`` loses an accepted event is tiny here; a replica lagging behind (a slow
   network, a busy replica) widens it: what this table shows for ``min_replicas=0`` is a floor.
   A refused emit is not a promise that the event was not stored: it may still be handled
   (counted below the table), and emitting it again may deliver it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis as redis_py
import redis.asyncio
import redis.asyncio.cluster
from redis.utils import HIREDIS_AVAILABLE

from benchmarks._cluster_app import READY, SALE_TYPES, SCALE_SUBSCRIBER, SPIN_ENV, sale
from benchmarks._redis_baselines import Client, med
from benchmarks.redis import Tally, emit_all
from hookbus import BusUnavailableError, Event, EventBus, Settings, event_name
from hookbus._redis.keys import Keys
from hookbus._redis_options import RedisOptions
from hookbus.testing.redis_cluster import RedisCluster
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name

ROOT = Path(__file__).resolve().parents[1]
THROUGHPUT_SUBSCRIBERS = (1, 3)
WORKER_COUNTS = (1, 2, 4)
POLL = 0.01
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 15.0
FAILOVER_STEP_TIMEOUT = 60.0
WORKER_TARGET = "benchmarks._cluster_app:gated_bus"

SINGLE = "single"
CLUSTER = "cluster"
BACKENDS = (SINGLE, CLUSTER)
CONTENDER = {SINGLE: "hookbus single", CLUSTER: "hookbus cluster"}
STREAM_TYPES = [event_name(cls) for cls in SALE_TYPES]


class Probe(Event, name="bench.failover"):
    n: int


# --------------------------------------------------------------------------- helpers


def new_bus(url: str, prefix: str, **options: Any) -> EventBus:
    """A redis-mode bus (cluster if the URL says so), nothing read from the environment."""
    settings = Settings(mode="redis", redis_url=url, redis=RedisOptions(prefix, **options))
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
    """A key prefix used by one run only."""
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


# --------------------------------------------------------------------------- 1. throughput


async def throughput(
    url: str, key_prefix: str, subscribers: int, *, events: Sequence[Event], chunk: int,
    timeout: float,
) -> float:  # fmt: skip
    """Events per second, emit -> handler -> ack, every type round-robin."""
    bus = new_bus(url, key_prefix)
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


# --------------------------------------------------------------------------- 2. workers


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


def start_worker(url: str, key_prefix: str, spin_us: float, log: IO[bytes]) -> WorkerProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    env.update(
        {
            "EVENT_BUS_MODE": "redis",
            "HOOKBUS_REDIS_URL": url,
            "HOOKBUS_REDIS_PREFIX": key_prefix,
            "HOOKBUS_STOP_TIMEOUT": "5",
            SPIN_ENV: str(spin_us),
            "PYTHONUNBUFFERED": "1",
        }
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


async def preemit(url: str, key_prefix: str, events: Sequence[Event], chunk: int) -> None:
    """Store ``events`` with the workers' consumer groups in place, consuming nothing."""
    bus = new_bus(url, key_prefix, consume=False)

    async def never_called(event: Event) -> None:
        raise AssertionError("consume=False: no handler runs here")

    for cls in SALE_TYPES:
        bus.subscribe(cls, never_called, name=SCALE_SUBSCRIBER)
    async with bus:
        await emit_all(bus, events, chunk)


async def scaling(
    url: str, admin: Client, key_prefix: str, workers: int, *, cluster: bool,
    events: Sequence[Event], chunk: int, spin_us: float, timeout: float,
) -> float:  # fmt: skip
    """Events per second handled by ``workers`` processes, from go to every group caught up."""
    await preemit(url, key_prefix, events, chunk)
    keys = Keys(key_prefix, cluster=cluster)
    streams = [keys.stream(name) for name in STREAM_TYPES]
    stored = sum(await asyncio.gather(*(admin.xlen(s) for s in streams)))
    assert stored == len(events), (stored, len(events))

    async def all_handled() -> bool:
        done = await asyncio.gather(*(group_caught_up(admin, s, SCALE_SUBSCRIBER) for s in streams))
        return all(done)

    pool: list[WorkerProcess] = []
    with contextlib.ExitStack() as files:
        try:
            for _ in range(workers):
                log = files.enter_context(tempfile.TemporaryFile())
                pool.append(start_worker(url, key_prefix, spin_us, log))
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
    return len(events) / elapsed


# --------------------------------------------------------------------------- 3. failover


@dataclass
class FailoverRun:
    accepted: int = 0
    refused: int = 0
    lost: int = 0
    twice: int = 0
    refused_handled: int = 0
    failover: float = 0.0
    drained: bool = True
    errors: Counter[str] = field(default_factory=Counter)


async def failover_run(binary: str, min_replicas: int, args: argparse.Namespace) -> FailoverRun:
    """One run on a fresh cluster (see the module docs, section 3)."""
    cluster = RedisCluster(binary)
    cluster.start()
    try:
        return await Failover(cluster, min_replicas, args).run()
    finally:
        cluster.close()


class Failover:
    """One failover run on ``cluster``: its buses, what was emitted and what was handled."""

    GROUP = "bench-failover"

    def __init__(self, cluster: RedisCluster, min_replicas: int, args: argparse.Namespace):
        self.cluster = cluster
        self.args = args
        key_prefix = prefix("f", min_replicas)
        self.stream = Keys(key_prefix, cluster=True).stream(event_name(Probe))
        self.emitter = new_bus(cluster.url, key_prefix, consume=False, min_replicas=min_replicas)
        self.consumer = new_bus(cluster.url, key_prefix, claim_idle=1.0, claim_interval=0.2)
        self.emitter.subscribe(Probe, self.never_called, name=self.GROUP)
        self.consumer.subscribe(Probe, self.handle, name=self.GROUP)
        self.handled: Counter[int] = Counter()
        self.accepted: set[int] = set()
        self.refused: set[int] = set()
        self.stop = asyncio.Event()
        self.result = FailoverRun()
        self.emits: asyncio.Task[None] | None = None

    @staticmethod
    async def never_called(event: Probe) -> None:
        raise AssertionError("consume=False: no handler runs here")

    async def handle(self, event: Probe) -> None:
        self.handled[event.n] += 1

    async def emit_continuously(self) -> None:
        n, chunk = 0, self.args.failover_chunk
        while not self.stop.is_set():
            batch = range(n, n + chunk)
            n += chunk
            results = await asyncio.gather(
                *(self.emitter.emit(Probe(n=i)) for i in batch), return_exceptions=True
            )
            for i, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    self.refused.add(i)
                    if not isinstance(result, BusUnavailableError):
                        self.result.errors[type(result).__name__] += 1
                else:
                    self.accepted.add(i)

    async def wait_accepted(self, count: int, what: str) -> None:
        async def reached() -> bool:
            if self.emits is not None and self.emits.done():
                self.emits.result()  # raises what stopped it
                raise RuntimeError("the emitter stopped")
            return len(self.accepted) >= count

        await wait_for(reached, FAILOVER_STEP_TIMEOUT, what)

    async def kill_and_recover(self) -> None:
        """Kill the stream's master mid-emission, wait for its replica, restart it."""
        events, cluster = self.args.failover_events, self.cluster
        await self.wait_accepted(events, "the first emits")
        killed = await asyncio.to_thread(cluster.kill_master_of, self.stream)
        began = time.monotonic()
        await asyncio.to_thread(cluster.wait_failover, killed, FAILOVER_STEP_TIMEOUT)
        self.result.failover = time.monotonic() - began
        await asyncio.to_thread(cluster.restart, killed, FAILOVER_STEP_TIMEOUT)
        await self.wait_accepted(len(self.accepted) + events, "emits after the restart")

    async def wait_drained(self) -> bool:
        """Wait until every accepted event was handled, or the group has nothing left."""
        admin = admin_client(self.cluster.seed_url, cluster=True)

        async def drained() -> bool:
            if self.accepted <= self.handled.keys():
                return True
            return await group_caught_up(admin, self.stream, self.GROUP)

        try:
            await wait_for(drained, self.args.drain_timeout, "the consumer to drain", 0.05)
        except TimeoutError:
            return False
        finally:
            await admin.aclose()
        return True

    async def run(self) -> FailoverRun:
        async with self.emitter, self.consumer:
            self.emits = asyncio.create_task(self.emit_continuously())
            try:
                await self.kill_and_recover()
            finally:
                self.stop.set()
                await asyncio.wait_for(self.emits, FAILOVER_STEP_TIMEOUT)
            self.result.drained = await self.wait_drained()
        handled = self.handled
        self.result.accepted, self.result.refused = len(self.accepted), len(self.refused)
        self.result.lost = len(self.accepted - handled.keys())
        self.result.twice = sum(1 for count in handled.values() if count > 1)
        self.result.refused_handled = len(self.refused & handled.keys())
        return self.result


# --------------------------------------------------------------------------- runner


class Runner:
    def __init__(self, args: argparse.Namespace, binary: str) -> None:
        self.args = args
        self.binary = binary
        self.events = [sale(i) for i in range(args.events)]
        self.rates: dict[tuple[str, int], list[float]] = {}
        self.scale: dict[tuple[str, int], list[float]] = {}
        self.failovers: dict[int, list[FailoverRun]] = {0: [], 1: []}
        self.failover_logs = LogTally()
        self.types_per_master = ""

    @property
    def worker_counts(self) -> list[int]:
        most = self.args.workers
        return sorted({c for c in WORKER_COUNTS if c <= most} | {most})

    async def measure(self, single: RedisServer, cluster: RedisCluster) -> None:
        a = self.args
        urls = {SINGLE: single.url, CLUSTER: cluster.url}
        admins = {
            SINGLE: admin_client(single.url, cluster=False),
            CLUSTER: admin_client(cluster.seed_url, cluster=True),
        }
        try:
            for r in range(a.rounds):
                began = time.perf_counter()
                for subs in THROUGHPUT_SUBSCRIBERS:
                    for backend in rotated(BACKENDS, r):
                        rate = await throughput(
                            urls[backend], prefix("t", r), subs, events=self.events,
                            chunk=a.chunk, timeout=a.timeout,
                        )  # fmt: skip
                        self.rates.setdefault((backend, subs), []).append(rate)
                        await admins[backend].flushdb()
                for workers in self.worker_counts:
                    for backend in rotated(BACKENDS, r):
                        rate = await scaling(
                            urls[backend], admins[backend], prefix("w", r), workers,
                            cluster=backend == CLUSTER, events=self.events, chunk=a.chunk,
                            spin_us=a.spin_us, timeout=a.timeout,
                        )  # fmt: skip
                        self.scale.setdefault((backend, workers), []).append(rate)
                        await admins[backend].flushdb()
                took = time.perf_counter() - began
                print(f"round {r + 1}/{a.rounds} done in {took:.1f} s", flush=True)
        finally:
            for client in admins.values():
                await client.aclose()

    async def measure_failovers(self) -> None:
        with hookbus_logs() as logs:
            for r in range(self.args.failover_runs):
                began = time.perf_counter()
                for setting in rotated((0, 1), r):
                    self.failovers[setting].append(
                        await failover_run(self.binary, setting, self.args)
                    )
                took = time.perf_counter() - began
                print(f"failover run {r + 1}/{self.args.failover_runs} done in {took:.1f} s",
                      flush=True)  # fmt: skip
        self.failover_logs = logs

    # -- report ------------------------------------------------------------------

    def report(self, header: str) -> None:
        a = self.args
        print(f"\n{header}")
        print(
            f"{a.events} events over {len(SALE_TYPES)} durable types (round-robin; on the "
            f"cluster, types per master: {self.types_per_master}), median of {a.rounds} "
            "rounds (interleaved, same servers)"
        )
        print(
            "\n1. durable throughput, emit -> handler -> ack "
            f"({a.chunk} emits gathered, {len(SALE_TYPES)} event types round-robin)\n"
        )
        print(f"{'contender':<20}{'subscribers':>12}{'events/s':>12}{'cluster/single':>16}")
        print("-" * 60)
        for subs in THROUGHPUT_SUBSCRIBERS:
            single = med(self.rates.get((SINGLE, subs), []))
            for backend in BACKENDS:
                rate = med(self.rates.get((backend, subs), []))
                ratio = f"{rate / single:.3f}" if backend == CLUSTER else "-"
                print(f"{CONTENDER[backend]:<20}{subs:>12}{rate:>12,.0f}{ratio:>16}")
        print(
            f"\n2. consumer scaling: worker processes, one subscriber on {len(SALE_TYPES)} types, "
            f"{a.events} events stored first, handler spins {a.spin_us:g} us\n"
        )
        print(f"{'backend':<20}{'workers':>8}{'events/s':>12}{'x 1 worker':>12}")
        print("-" * 52)
        for backend in BACKENDS:
            one = med(self.scale.get((backend, 1), []))
            for workers in self.worker_counts:
                rate = med(self.scale.get((backend, workers), []))
                print(f"{backend:<20}{workers:>8}{rate:>12,.0f}{rate / one:>12.2f}")
        self.report_failovers()

    def report_failovers(self) -> None:
        a = self.args
        print(
            f"\n3. failover: master of the stream SIGKILLed while emitting ({a.failover_chunk} "
            f"emits gathered), {a.failover_events} accepted before the kill and after the "
            "restart, fresh cluster per run\n"
        )
        print(
            f"{'setting':<20}{'run':>5}{'accepted':>10}{'refused':>9}{'lost':>7}"
            f"{'twice':>7}{'failover s':>12}"
        )
        print("-" * 70)
        notes = []
        for setting in (0, 1):
            runs = self.failovers[setting]
            name = f"min_replicas={setting}"
            for i, run in enumerate(runs, 1):
                print(
                    f"{name:<20}{i:>5}{run.accepted:>10}{run.refused:>9}{run.lost:>7}"
                    f"{run.twice:>7}{run.failover:>12.1f}"
                )
                if not run.drained:
                    notes.append(f"{name} run {i}: the consumer had not drained after "
                                 f"{a.drain_timeout:g} s")  # fmt: skip
            accepted, lost = sum(r.accepted for r in runs), sum(r.lost for r in runs)
            print(
                f"{name:<20}{'all':>5}{accepted:>10}{sum(r.refused for r in runs):>9}"
                f"{lost:>7}{sum(r.twice for r in runs):>7}"
                f"{med([r.failover for r in runs]):>12.1f}"
            )
            share = f"{lost / accepted:.3%}" if accepted else "n/a"
            notes.append(
                f"{name}: {lost} of {accepted} accepted emits lost ({share}) over {len(runs)} "
                f"failover(s); {sum(r.refused_handled for r in runs)} refused emits were "
                "handled anyway"
            )
            errors = sum((r.errors for r in runs), Counter[str]())
            if errors:
                notes.append(f"{name}: emits refused with other errors than "
                             f"BusUnavailableError: {dict(errors)}")  # fmt: skip
        print("(twice: handled more than once; failover s: kill -> replica serving, median)")
        for note in notes:
            print(f"  {note}")
        logs = self.failover_logs
        levels = ", ".join(f"{n} {level}" for level, n in sorted(logs.levels.items())) or "nothing"
        print(f"hookbus logged during the failover runs: {levels}")
        for message, count in logs.messages.most_common(5):
            print(f"  {count:>5} x {message}")


def describe_types(cluster: RedisCluster) -> str:
    """How many of the bench's types each master serves, e.g. ``2/1/1``."""
    keys = Keys("bench", cluster=True)
    per_master: Counter[int] = Counter(
        cluster.master_of(keys.stream(name)).port for name in STREAM_TYPES
    )
    return "/".join(str(per_master[node.port]) for node, _ in cluster.masters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="most worker processes")
    parser.add_argument("--chunk", type=int, default=500, help="emits gathered at once")
    parser.add_argument("--spin-us", type=float, default=50.0, help="CPU work per handling (us)")
    parser.add_argument("--failover-runs", type=int, default=3, help="runs per setting")
    parser.add_argument("--failover-events", type=int, default=None,
                        help="accepted emits before the kill and after the restart "
                             "(default events/4)")  # fmt: skip
    parser.add_argument("--failover-chunk", type=int, default=200)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, help="seconds per run (default 60 + events/250)")
    parser.add_argument("--server", default=None, help="server binary (default: redis-server)")
    args = parser.parse_args()
    if min(args.events, args.rounds, args.workers, args.chunk, args.failover_chunk) < 1:
        parser.error("--events, --rounds, --workers and the chunks must be >= 1")
    if args.failover_runs < 0 or args.spin_us < 0:
        parser.error("--failover-runs and --spin-us must be >= 0")
    if args.timeout is None:
        args.timeout = 60 + args.events / 250
    if args.failover_events is None:
        args.failover_events = max(50, args.events // 4)
    binary = args.server or find_server_binaries()[0]
    runner = Runner(args, binary)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with RedisServer(binary, appendonly=False) as single, RedisCluster(binary) as cluster:
        runner.types_per_master = describe_types(cluster)
        asyncio.run(runner.measure(single, cluster))
    if args.failover_runs:
        asyncio.run(runner.measure_failovers())
    runner.report(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {server_name(binary)}, "
        f"redis-py {redis_py.__version__} "
        f"({'hiredis' if HIREDIS_AVAILABLE else 'pure-Python'} reply parser); "
        f"cluster: 3 masters + 3 replicas; 1-min load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {time.perf_counter() - began:.0f} s in all"
    )


if __name__ == "__main__":
    main()
