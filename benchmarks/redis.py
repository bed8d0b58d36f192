"""Redis mode: hookbus against hand-written redis-py, on one server started for the run.

Run with ``python -m benchmarks.redis`` (``--events 100000`` for the full run). The
header says which redis-py reply parser ran (hiredis if installed; it changes
the ceilings a lot). To force the pure-Python one: ``python -c "import runpy,
sys; sys.modules['hiredis'] = None; runpy.run_module('benchmarks.redis',
run_name='__main__', alter_sys=True)" --events ...``.

A fresh server (``RedisServer``, 127.0.0.1, no persistence) serves every
contender; rounds interleave the contenders so that machine noise hits all of
them alike, each run gets its own key prefix, the database is flushed between
runs, and the tables show the median of the rounds.

1. durable throughput, emit -> handler -> ack, with 1 and 3 subscribers
   (consumer groups), in events per second from the first emit until every
   subscriber has seen every event (hookbus: and ``drain()`` returned):
   hookbus (emits gathered ``--chunk`` at a time, so that they pipeline, and
   ``emit_many`` of ``--chunk`` events), the
   seed pattern (one awaited XADD per event, XREADGROUP COUNT 10, one XACK per
   message) and hand-pipelined redis-py (XADD pipelines of 500, XREADGROUP
   COUNT 500, one XACK per batch); see ``benchmarks._redis_baselines``;
2. latency at a paced 1,000 events/s, one subscriber: from the emit call to
   the handler (hookbus) or the consumer's read (XADD + XREADGROUP BLOCK);
3. Pub/Sub broadcast to one subscriber: hookbus ephemeral events (gathered
   emits, and ``emit_many``) against ``PUBLISH`` one await at a time and
   pipelined by 500.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import redis as redis_py
from redis.utils import HIREDIS_AVAILABLE

from benchmarks import _redis_baselines as raw
from benchmarks._redis_baselines import med, percentile
from hookbus import Event, EventBus, Settings
from hookbus._redis_options import RedisOptions
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name

THROUGHPUT_SUBSCRIBERS = (1, 3)
LATENCY_RATE = 1000.0
SECTIONS = ("throughput", "latency", "pubsub")
PUBSUB_TIMEOUT = 60.0

HOOKBUS = "hookbus redis"
HOOKBUS_MANY = "hookbus redis, emit_many"
SEED = "seed pattern (redis-py)"
PIPELINED = "hand-pipelined redis-py"
RAW_LATENCY = "redis-py XADD+XREADGROUP"
HOOKBUS_LIVE = "hookbus durable=False"
HOOKBUS_LIVE_MANY = "hookbus emit_many"
RAW_PUBLISH = "redis-py PUBLISH"
PIPELINED_PUBLISH = "pipelined PUBLISH"


class SaleClosed(Event, name="sale_closed"):
    session_id: int
    sale_id: int
    total: Decimal
    payment: str
    till: str


class LatencyProbe(Event, name="latency_probe"):
    seq: int
    sent: float


class Ping(Event, name="ping", durable=False):
    session_id: int
    sale_id: int
    total: Decimal
    payment: str
    till: str


def sale_fields(i: int) -> raw.Fields:
    return {
        "session_id": i // 10,
        "sale_id": i,
        "total": "150.50",
        "payment": "card",
        "till": f"till-{i % 4}",
    }


def new_bus(url: str, prefix: str) -> EventBus:
    """A redis-mode bus with default options, nothing read from the environment."""
    return EventBus(settings=Settings(mode="redis", redis_url=url, redis=RedisOptions(prefix)))


class Tally:
    """Counts one subscriber's deliveries; ``done`` resolves at ``target``."""

    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(self, event: Any) -> None:
        self.count += 1
        if self.count == self.target and not self.done.done():
            self.done.set_result(None)


async def emit_all(bus: EventBus, events: Sequence[Event], chunk: int) -> None:
    """Emit every event, ``chunk`` concurrent emits at a time (they share pipelines)."""
    for first in range(0, len(events), chunk):
        await asyncio.gather(*(bus.emit(event) for event in events[first : first + chunk]))


async def emit_many(bus: EventBus, events: Sequence[Event], chunk: int) -> None:
    """Emit every event, ``chunk`` per ``emit_many`` call."""
    for first in range(0, len(events), chunk):
        await bus.emit_many(events[first : first + chunk])


async def hookbus_throughput(
    url: str,
    prefix: str,
    subscribers: int,
    *,
    events: Sequence[SaleClosed],
    chunk: int,
    timeout: float,
    idempotent: bool = False,
    emit: Callable[[EventBus, Sequence[Event], int], Awaitable[None]] = emit_all,
) -> float:
    bus = new_bus(url, prefix)
    tallies = [Tally(len(events)) for _ in range(subscribers)]
    for i, tally in enumerate(tallies):
        bus.subscribe(SaleClosed, tally.handler, name=f"bench-{i}", idempotent=idempotent)
    await bus.start()
    try:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(emit(bus, events, chunk), timeout)
            await asyncio.wait_for(asyncio.gather(*(t.done for t in tallies)), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"hookbus: timed out ({timeout}s); subscribers saw "
                f"{[t.count for t in tallies]} of {len(events)} events"
            ) from None
        await bus.drain(timeout)
        elapsed = time.perf_counter() - start
        counts = [t.count for t in tallies]
        assert counts == [len(events)] * subscribers, (HOOKBUS, counts, len(events))
        return len(events) / elapsed
    finally:
        await bus.stop(5.0)


async def hookbus_latency(
    url: str, prefix: str, *, count: int, timeout: float
) -> tuple[list[float], float]:
    bus = new_bus(url, prefix)
    samples: list[float] = []
    warm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(event: LatencyProbe) -> None:
        now = time.perf_counter()
        if event.seq < 0:
            warm.set_result(None)
            return
        samples.append(now - event.sent)
        if len(samples) == count and not done.done():
            done.set_result(None)

    async def send(i: int) -> None:
        await bus.emit(LatencyProbe(seq=i, sent=time.perf_counter()))

    bus.subscribe(LatencyProbe, handler, name="bench-latency")
    await bus.start()
    try:
        await send(-1)  # warm-up (script load, connections), not measured
        await asyncio.wait_for(warm, timeout)
        achieved = await asyncio.wait_for(raw.paced(count, LATENCY_RATE, send), timeout)
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise TimeoutError(f"hookbus latency: {len(samples)} of {count} handled") from None
        assert len(samples) == count, (len(samples), count)
        return samples, achieved
    finally:
        await bus.stop(5.0)


async def hookbus_pubsub(
    url: str,
    prefix: str,
    *,
    events: Sequence[Ping],
    chunk: int,
    timeout: float,
    emit: Callable[[EventBus, Sequence[Event], int], Awaitable[None]] = emit_all,
) -> tuple[float, int]:
    bus = new_bus(url, prefix)
    tally = Tally(len(events))
    bus.subscribe(Ping, tally.handler, name="bench-live")
    await bus.start()
    try:
        start = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # then report what arrived
            async with asyncio.timeout(timeout):
                await emit(bus, events, chunk)
                await tally.done
        elapsed = time.perf_counter() - start
        return tally.count / elapsed, tally.count
    finally:
        await bus.stop(5.0)


class Runner:
    """Runs the rounds and keeps every measurement, by section and contender."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args
        self.fields = [sale_fields(i) for i in range(args.events)]
        self.sales = [SaleClosed(**f) for f in self.fields]  # type: ignore[arg-type]
        self.pings = [Ping(**f) for f in self.fields]  # type: ignore[arg-type]
        self.rates: dict[tuple[str, int], list[float]] = {}
        self.latency: dict[str, list[tuple[float, float, float, float]]] = {}
        self.live: dict[str, list[tuple[float, int]]] = {}

    @staticmethod
    def prefix(tag: str, round_no: int) -> str:
        """A key prefix used by one run only."""
        return f"bench{round_no}{tag}{uuid.uuid4().hex[:8]}"

    # -- the rounds --------------------------------------------------------------

    async def run(self) -> None:
        url, a, live_timeout = self.url, self.args, PUBSUB_TIMEOUT
        # Each contender: (prefix[, subscribers]) -> its measurement.
        durable: list[tuple[str, Callable[[str, int], Awaitable[float]]]] = [
            (HOOKBUS, partial(hookbus_throughput, url, events=self.sales, chunk=a.chunk,
                              timeout=a.timeout)),
            (HOOKBUS_MANY, partial(hookbus_throughput, url, events=self.sales, chunk=a.chunk,
                                   timeout=a.timeout, emit=emit_many)),
            (SEED, partial(raw.seed_pattern, url, fields=self.fields, timeout=a.timeout)),
            (PIPELINED, partial(raw.hand_pipelined, url, fields=self.fields, timeout=a.timeout)),
        ]  # fmt: skip
        latency: list[tuple[str, Callable[[str], Awaitable[tuple[list[float], float]]]]] = [
            (HOOKBUS, partial(hookbus_latency, url, count=a.latency_events, timeout=a.timeout)),
            (RAW_LATENCY, partial(raw.raw_latency, url, count=a.latency_events, rate=LATENCY_RATE,
                                  timeout=a.timeout)),
        ]  # fmt: skip
        live: list[tuple[str, Callable[[str], Awaitable[tuple[float, int]]]]] = [
            (HOOKBUS_LIVE, partial(hookbus_pubsub, url, events=self.pings, chunk=a.chunk,
                                   timeout=live_timeout)),
            (HOOKBUS_LIVE_MANY, partial(hookbus_pubsub, url, events=self.pings, chunk=a.chunk,
                                        timeout=live_timeout, emit=emit_many)),
            (RAW_PUBLISH, partial(raw.raw_pubsub, url, fields=self.fields, timeout=live_timeout,
                                  pipelined=False)),
            (PIPELINED_PUBLISH, partial(raw.raw_pubsub, url, fields=self.fields,
                                        timeout=live_timeout, pipelined=True)),
        ]  # fmt: skip
        admin = raw.connect(self.url)
        try:
            for r in range(self.args.rounds):
                began = time.perf_counter()
                for subs in THROUGHPUT_SUBSCRIBERS if "throughput" in a.only else ():
                    for name, measure in self.rotated(durable, r):
                        rate = await measure(self.prefix("t", r), subs)
                        self.rates.setdefault((name, subs), []).append(rate)
                        await admin.flushdb()
                for name, probe in self.rotated(latency, r) if "latency" in a.only else ():
                    samples, achieved = await probe(self.prefix("l", r))
                    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
                    self.latency.setdefault(name, []).append((p50, p99, max(samples), achieved))
                    await admin.flushdb()
                for name, broadcast in self.rotated(live, r) if "pubsub" in a.only else ():
                    self.live.setdefault(name, []).append(await broadcast(self.prefix("p", r)))
                    await admin.flushdb()
                took = time.perf_counter() - began
                print(f"round {r + 1}/{self.args.rounds} done in {took:.1f} s", flush=True)
        finally:
            await admin.aclose()

    @staticmethod
    def rotated(items: list[Any], r: int) -> list[Any]:
        """Start each round with another contender: no one always runs first."""
        shift = r % len(items)
        return items[shift:] + items[:shift]

    # -- report ------------------------------------------------------------------

    def rate(self, name: str, subs: int) -> float:
        return med(self.rates.get((name, subs), []))

    def report(self, server: str) -> None:
        args = self.args
        print(
            f"\n{server}, redis-py {redis_py.__version__} "
            f"({'hiredis' if HIREDIS_AVAILABLE else 'pure-Python'} reply parser)\n"
            f"{args.events} events, "
            f"median of {args.rounds} rounds (same server, interleaved)"
        )
        targets, summary = [], []
        if self.rates:
            self.report_throughput()
            targets += ["hookbus/pipelined >= 0.8", "hookbus/seed >= 4"]
            summary += self.throughput_verdicts()
        if self.latency:
            self.report_latency()
            p99 = med([s[1] for s in self.latency[HOOKBUS]]) * 1e3
            targets.append("hookbus latency p99 < 2 ms")
            summary.append(f"hookbus latency p99 {p99:.3f} ms {'ok' if p99 < 2 else 'MISSED'}")
        if self.live:
            self.report_pubsub()
            live = med([s[0] for s in self.live[HOOKBUS_LIVE]]) / med(
                [s[0] for s in self.live[PIPELINED_PUBLISH]]
            )
            targets.append("Pub/Sub hookbus/pipelined >= 0.7")
            summary.append(f"Pub/Sub hookbus/pipelined {_verdict(live, live >= 0.7)}")
        print(f"\ntargets: {', '.join(targets)}")
        print(f"summary: {'; '.join(summary)}")

    def report_throughput(self) -> None:
        print(
            "\n1. durable throughput, emit -> handler -> ack "
            f"(hookbus: {self.args.chunk} emits gathered, or one emit_many of as many)\n"
        )
        print(f"{'contender':<26}{'subs':>5}{'events/s':>12}{'x pipelined':>13}{'x seed':>9}")
        print("-" * 65)
        for subs in THROUGHPUT_SUBSCRIBERS:
            ceiling, seed = self.rate(PIPELINED, subs), self.rate(SEED, subs)
            for name in (HOOKBUS, HOOKBUS_MANY, SEED, PIPELINED):
                rate = self.rate(name, subs)
                print(
                    f"{name:<26}{subs:>5}{rate:>12,.0f}{rate / ceiling:>13.3f}{rate / seed:>9.2f}"
                )

    def throughput_verdicts(self) -> list[str]:
        parts = []
        for subs in THROUGHPUT_SUBSCRIBERS:
            hb, many, ceiling, seed = (
                self.rate(n, subs) for n in (HOOKBUS, HOOKBUS_MANY, PIPELINED, SEED)
            )
            parts.append(
                f"{subs} sub{'s' if subs > 1 else ''}: hookbus/pipelined "
                f"{_verdict(hb / ceiling, hb / ceiling >= 0.8)} "
                f"(emit_many {_verdict(many / ceiling, many / ceiling >= 0.8)}), "
                f"hookbus/seed {_verdict(hb / seed, hb / seed >= 4)}"
            )
        return parts

    def report_latency(self) -> None:
        print(
            f"\n2. latency, emit -> handler, paced at {LATENCY_RATE:,.0f} events/s, "
            f"{self.args.latency_events} events, 1 subscriber\n"
        )
        print(
            f"{'contender':<26}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'p99 x raw':>11}"
        )
        print("-" * 74)
        raw_p99 = med([s[1] for s in self.latency.get(RAW_LATENCY, [])])
        for name in (HOOKBUS, RAW_LATENCY):
            lat = self.latency.get(name, [])
            p50, p99 = med([s[0] for s in lat]) * 1e3, med([s[1] for s in lat]) * 1e3
            worst, achieved = med([s[2] for s in lat]) * 1e3, med([s[3] for s in lat])
            print(
                f"{name:<26}{achieved:>10,.0f}{p50:>9.3f}{p99:>9.3f}{worst:>9.3f}"
                f"{p99 / (raw_p99 * 1e3):>11.2f}"
            )

    def report_pubsub(self) -> None:
        print(f"\n3. Pub/Sub broadcast, ephemeral, 1 subscriber (timeout {PUBSUB_TIMEOUT:.0f} s)\n")
        print(f"{'contender':<26}{'received':>10}{'events/s':>12}{'x pipelined':>13}")
        print("-" * 61)
        live_ceiling = med([s[0] for s in self.live.get(PIPELINED_PUBLISH, [])])
        for name in (HOOKBUS_LIVE, HOOKBUS_LIVE_MANY, RAW_PUBLISH, PIPELINED_PUBLISH):
            rows = self.live.get(name, [])
            rate, got = med([s[0] for s in rows]), min((s[1] for s in rows), default=0)
            print(f"{name:<26}{got:>10}{rate:>12,.0f}{rate / live_ceiling:>13.3f}")


def _verdict(value: float, ok: bool) -> str:
    return f"{value:.2f} {'ok' if ok else 'MISSED'}"


async def run(url: str, server: str, args: argparse.Namespace) -> None:
    runner = Runner(url, args)
    load = os.getloadavg()[0]
    await runner.run()
    runner.report(
        f"{server} (1-min load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-events", type=int, default=3_000)
    parser.add_argument("--chunk", type=int, default=500, help="hookbus emits gathered at once")
    parser.add_argument("--timeout", type=float, help="seconds per run (default 60 + events/250)")
    parser.add_argument("--server", default=None, help="server binary (default: redis-server)")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run this section only (repeat for several; default: all three)",
    )
    args = parser.parse_args()
    args.only = args.only or list(SECTIONS)
    if min(args.events, args.rounds, args.latency_events, args.chunk) < 1:
        parser.error("--events, --rounds, --latency-events and --chunk must be >= 1")
    if args.timeout is None:
        args.timeout = 60 + args.events / 250
    binary = args.server or find_server_binaries()[0]
    with RedisServer(binary, appendonly=False) as server:
        asyncio.run(run(server.url, server_name(binary), args))


if __name__ == "__main__":
    main()
