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
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis as redis_py
from redis.utils import HIREDIS_AVAILABLE

from benchmarks import _scale_common as common
from benchmarks._cluster_app import SALE_TYPES, SCALE_SUBSCRIBER, sale
from benchmarks._redis_baselines import Client, med
from benchmarks._scale_common import (
    LogTally,
    admin_client,
    group_caught_up,
    hookbus_logs,
    new_redis_bus,
    preemit,
    prefix,
    rotated,
    run_workers,
    wait_for,
)
from hookbus import BusUnavailableError, Event, EventBus, event_name
from hookbus._redis.keys import Keys
from hookbus.testing.redis_cluster import RedisCluster
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name

THROUGHPUT_SUBSCRIBERS = (1, 3)
WORKER_COUNTS = (1, 2, 4)
FAILOVER_STEP_TIMEOUT = 60.0

SINGLE = "single"
CLUSTER = "cluster"
BACKENDS = (SINGLE, CLUSTER)
CONTENDER = {SINGLE: "hookbus single", CLUSTER: "hookbus cluster"}
STREAM_TYPES = [event_name(cls) for cls in SALE_TYPES]


class Probe(Event, name="bench.failover"):
    n: int


# --------------------------------------------------------------------------- 1. and 2.


def new_bus(url: str, key_prefix: str, **options: Any) -> EventBus:
    """A redis-mode bus (cluster if the URL says so), nothing read from the environment."""
    return new_redis_bus(url, key_prefix, **options)


async def throughput(
    url: str, key_prefix: str, subscribers: int, *, events: Sequence[Event], chunk: int,
    timeout: float,
) -> float:  # fmt: skip
    """Events per second, emit -> handler -> ack, every type round-robin."""
    bus = new_bus(url, key_prefix)
    return await common.throughput(bus, subscribers, events=events, chunk=chunk, timeout=timeout)


def worker_config(url: str, key_prefix: str) -> dict[str, str]:
    """The environment of a redis-mode worker."""
    return {"EVENT_BUS_MODE": "redis", "HOOKBUS_REDIS_URL": url, "HOOKBUS_REDIS_PREFIX": key_prefix}


async def scaling(
    url: str, admin: Client, key_prefix: str, workers: int, *, cluster: bool,
    events: Sequence[Event], chunk: int, spin_us: float, timeout: float,
) -> float:  # fmt: skip
    """Events per second handled by ``workers`` processes, from go to every group caught up."""
    await preemit(new_bus(url, key_prefix, consume=False), events, chunk)
    keys = Keys(key_prefix, cluster=cluster)
    streams = [keys.stream(name) for name in STREAM_TYPES]
    stored = sum(await asyncio.gather(*(admin.xlen(s) for s in streams)))
    assert stored == len(events), (stored, len(events))

    async def all_handled() -> bool:
        done = await asyncio.gather(*(group_caught_up(admin, s, SCALE_SUBSCRIBER) for s in streams))
        return all(done)

    elapsed = await run_workers(
        workers, worker_config(url, key_prefix), spin_us=spin_us, all_handled=all_handled,
        timeout=timeout,
    )  # fmt: skip
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
