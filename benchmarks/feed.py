"""The live feed's cost to the bus: emit throughput and fan-out latency with SSE clients.

Run with ``make bench-feed`` (or ``python -m benchmarks.feed --events 5000 --rounds 3``).

One FastAPI app (``bus_lifespan`` + ``event_feed(bus, public=True)``, local
mode, one trivial async subscriber of the durable event ``bench.feed_tick``)
is served by a real uvicorn on a free 127.0.0.1 port, in a child process
started for the run. The clients run in this process, so that their reading
is not charged to the bus: in production the browsers are never in the bus's
process, and on a 2-core machine the server gets one core and the clients the
other. The child also serves three control routes (a throughput run, a paced
run, the feed's counters); rates are taken inside the server process, the
fan-out delays by the clients, on ``CLOCK_MONOTONIC`` (one clock for both
processes).

1. emit throughput: ``--events`` durable events emitted, then ``drain()``, in
   events per second, with 0 feed clients (the baseline), 10 SSE clients and
   50 SSE clients. Emits go in bursts of ``--burst`` with one yield to the
   loop between bursts, as when emits come from request handlers: each
   connection may lag ``buffer`` (256) events, and a loop that emits more
   than that without yielding drops every connection (the feed never slows
   the bus). ``µs/msg`` is what one message to one connection adds to an
   emit: ``(1/rate - 1/baseline) / connections``.

   The stuck case adds, to 10 reading clients, a raw socket with a small
   receive buffer that reads the response headers and then never reads
   again. The kernel takes megabytes into that socket's buffers before the
   server sees any backpressure, so the run first emits until the feed has
   dropped the stuck connection (``router.stats.dropped_slow``), "filling",
   then ``--events`` more, "after the drop"; both rates are shown, and the
   events and bytes the stuck client was sent before it was dropped. The
   server prints uvicorn's "ASGI callable returned without completing
   response" for a dropped connection still open a second later (the feed
   gives up on its closing frame).
2. fan-out latency: events emitted at a paced rate (``--rates``) for
   ``--latency-seconds``, each carrying its emit time, until each client has
   read the SSE message; p50, p99 and max over all clients and events, with
   10 and 50 clients, and the share of a core the server process used. A rate
   the server cannot sustain shows as an achieved rate below the target, and
   delays that grow with the length of the run.

Rounds interleave the cases (each round starts with another one); the tables
give the median of the rounds and the ratio to the baseline of the same run.

What bounds the numbers: the server's single event loop, which for every
event and connection resumes one task, formats one SSE message (the
envelope's JSON is encoded once and shared) and writes it through the ASGI
stack and uvicorn's HTTP protocol (h11 unless httptools is installed) to the
socket, one ``send`` system call per message. The clients are
``asyncio.Protocol`` objects that count messages in the raw byte stream (or
pick the emit time out of them); the share of a core their process used is
printed, and a client that fell behind would show as a drop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import fastapi
import uvicorn
from fastapi import FastAPI

from benchmarks._pacing import paced
from hookbus import Event, EventBus, Settings
from hookbus.fastapi import bus_lifespan, event_feed

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
STUCK_RCVBUF = 4096  # bytes: the stuck client's socket receive buffer
SENT = re.compile(rb'"sent":(-?[0-9.eE+-]+)')

BASELINE = "0 (baseline)"
FILLING = "10 SSE + 1 stuck, filling"
AFTER_DROP = "10 SSE + 1 stuck, after the drop"
#: Throughput rows: (label, reading clients, stuck clients).
THROUGHPUT_CASES: tuple[tuple[str, int, int], ...] = (
    (BASELINE, 0, 0),
    ("10 SSE", 10, 0),
    ("50 SSE", 50, 0),
    (AFTER_DROP, 10, 1),
)
LATENCY_CLIENTS: tuple[int, ...] = (10, 50)


def clock() -> float:
    """Seconds on the system-wide monotonic clock (comparable between processes)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def med(values: Sequence[float]) -> float:
    """Median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


# -- the server (child process) ----------------------------------------------------


class Tick(Event, name="bench.feed_tick"):
    """The benchmark's durable event; ``sent`` is its emit time (``clock()``)."""

    seq: int
    sent: float


def make_app() -> FastAPI:
    """The benchmarked app: the bus, its feed, one subscriber and the control routes."""
    bus = EventBus(settings=Settings(mode="local"))
    handled = [0]

    async def handler(event: Tick) -> None:
        handled[0] += 1

    bus.subscribe(Tick, handler, name="bench-feed")
    app = FastAPI(lifespan=bus_lifespan(bus))
    feed = event_feed(bus, public=True)
    app.include_router(feed)

    @app.post("/bench/throughput")
    async def throughput(
        events: int, burst: int, until_dropped: int = 0, fill_seconds: float = 60.0
    ) -> dict[str, float]:
        """Emit ``events`` ticks in bursts of ``burst`` (0: one burst), then drain.

        With ``until_dropped``, first emit bursts until the feed has dropped that
        many more connections (for at most ``fill_seconds``) and drain: the
        filling phase, timed apart.
        """
        ticks = [Tick(seq=i, sent=0.0) for i in range(events)]
        step = burst or events
        handled[0] = 0
        dropped = feed.stats.dropped_slow
        filled = 0
        start = time.perf_counter()
        if until_dropped:
            deadline = start + fill_seconds
            while feed.stats.dropped_slow - dropped < until_dropped:
                if time.perf_counter() > deadline:
                    break
                for tick in ticks[:step]:
                    await bus.emit(tick)
                filled += len(ticks[:step])
                await asyncio.sleep(0)
            await bus.drain(60.0)
        filling = time.perf_counter() - start
        began = clock()
        cpu, start = time.process_time(), time.perf_counter()
        for first in range(0, events, step):
            for tick in ticks[first : first + step]:
                await bus.emit(tick)
            await asyncio.sleep(0)
        await bus.drain(60.0)
        elapsed = time.perf_counter() - start
        cpu_share = (time.process_time() - cpu) / elapsed
        if handled[0] != filled + events:
            raise RuntimeError(f"subscriber handled {handled[0]} of {filled + events} events")
        return {
            "rate": events / elapsed,
            "began": began,
            "filled": filled,
            "fill_rate": filled / filling if filled else 0.0,
            "cpu": cpu_share,
        }

    @app.post("/bench/latency")
    async def latency(events: int, rate: float) -> dict[str, float]:
        """Emit ``events`` ticks at ``rate`` per second, each carrying its emit time;
        the rate achieved and the share of a core this process used."""

        async def send(i: int) -> None:
            await bus.emit(Tick(seq=i, sent=clock()))

        cpu, wall = time.process_time(), time.perf_counter()
        achieved = await paced(events, rate, send)
        await bus.drain(60.0)
        cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        return {"rate": achieved, "cpu": cpu_share}

    @app.get("/bench/stats")
    async def stats() -> dict[str, int]:
        """The feed's counters."""
        return {"open": feed.stats.open, "dropped_slow": feed.stats.dropped_slow}

    return app


def serve() -> None:
    """Serve the app on a free loopback port; print the port, then run until SIGTERM."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)  # connections wait in the backlog until uvicorn has started
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(make_app(), lifespan="on", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# -- the clients (this process) ----------------------------------------------------


def request(method: str, path: str, *, close: bool) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n".encode()
        + b"Accept: text/event-stream\r\nContent-Length: 0\r\n"
        + connection
        + b"\r\n"
    )


async def control(port: int, method: str, path: str, timeout: float) -> Any:
    """One request to a control route; its JSON body."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request(method, path, close=True))
            response = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{method} {path}: {response[:500]!r}")
    return json.loads(body)


class FeedClient(asyncio.Protocol):
    """One SSE connection read as raw bytes: counts the events (and their bytes),
    and with ``timed`` records for each the delay since its emit time."""

    def __init__(self, *, timed: bool) -> None:
        self.timed = timed
        self.received = 0
        self.bytes = 0
        self.last = 0.0  # clock() when the latest event arrived
        self.delays: list[float] = []
        self.target: int | None = None
        self.done = asyncio.Event()
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._head = True
        self._carry = b""

    async def open(self, port: int) -> None:
        """Connect; return once the feed answered 200 (its listener is in place)."""
        await asyncio.get_running_loop().create_connection(lambda: self, HOST, port)
        await self.started

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(request("GET", "/events/stream", close=False))

    def data_received(self, data: bytes) -> None:
        now = clock()
        carry = self._carry + data
        if self._head:
            head, found, carry = carry.partition(b"\r\n\r\n")
            if not found:
                self._carry = head
                return
            self._head = False
            if head.startswith(b"HTTP/1.1 200"):
                self.started.set_result(None)
            else:
                self.started.set_exception(RuntimeError(f"feed refused: {head!r}"))
        end = carry.rfind(b"\n\n")
        if end < 0:
            self._carry = carry
            return
        complete, self._carry = carry[:end], carry[end + 2 :]
        count = complete.count(b"\ndata: ")
        if not count:
            return
        self.received += count
        self.bytes += len(complete)
        self.last = now
        if self.timed:
            self.delays.extend(now - float(m[1]) for m in SENT.finditer(complete))
        if self.target is not None and self.received >= self.target:
            self.done.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set()  # the server closed it (dropped, or stopping): report what came
        if not self.started.done():
            self.started.set_exception(RuntimeError("feed closed before answering"))

    def expect(self, target: int) -> None:
        """``done`` is set once ``target`` events arrived (or the connection ended)."""
        self.target = target
        if self.received >= target:
            self.done.set()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StuckClient:
    """Connects to the feed, reads until it is listening, then never reads again."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STUCK_RCVBUF)
        self._sock.setblocking(False)

    async def open(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self._sock, (HOST, port))
        await loop.sock_sendall(self._sock, request("GET", "/events/stream", close=False))
        seen = b""
        while b": connected" not in seen:
            data = await loop.sock_recv(self._sock, 1024)
            if not data:
                raise RuntimeError("the feed closed the stuck client at once")
            seen += data

    async def close(self) -> None:
        self._sock.close()


@dataclass
class Throughput:
    """One throughput run: the bus's rates, and what the feed clients saw."""

    rate: float
    cpu: float  # share of a core the server process used
    slowest: float | None  # events/s until the slowest reading client had them all
    received: float | None  # fewest events a reading client got, as a share of all
    dropped: int
    filled: int = 0  # events emitted before the stuck client was dropped
    fill_rate: float = 0.0
    message_bytes: float = 0.0  # mean bytes of one SSE message, chunk framing included


@dataclass
class Latency:
    """One paced run: every client's delays, the rate achieved, the fewest received."""

    delays: list[float]
    rate: float
    cpu: float
    received: float


@dataclass
class Results:
    throughput: dict[str, list[Throughput]] = field(default_factory=dict)
    latency: dict[tuple[float, int], list[Latency]] = field(default_factory=dict)
    client_cpu: float = 0.0


class Bench:
    """Runs the cases against the server at ``port``."""

    def __init__(self, port: int, args: argparse.Namespace) -> None:
        self.port = port
        self.args = args
        self.timeout: float = args.timeout

    async def stats(self) -> dict[str, int]:
        stats: dict[str, int] = await control(self.port, "GET", "/bench/stats", self.timeout)
        return stats

    async def wait_open(self, count: int) -> None:
        """Until the feed has exactly ``count`` connections open."""
        async with asyncio.timeout(self.timeout):
            while True:  # the counters live in the server process: ask again
                if (await self.stats())["open"] == count:
                    return
                await asyncio.sleep(0.02)

    async def connect(
        self, readers: int, stuck: int, *, timed: bool
    ) -> tuple[list[FeedClient], list[StuckClient]]:
        clients = [FeedClient(timed=timed) for _ in range(readers)]
        stuck_clients = [StuckClient() for _ in range(stuck)]
        every: list[FeedClient | StuckClient] = [*clients, *stuck_clients]
        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*(c.open(self.port) for c in every))
        await self.wait_open(readers + stuck)
        return clients, stuck_clients

    async def disconnect(self, clients: Sequence[FeedClient | StuckClient]) -> None:
        await asyncio.gather(*(c.close() for c in clients))
        await self.wait_open(0)

    async def wait_clients(self, clients: Sequence[FeedClient], target: int) -> None:
        """Until every client has ``target`` events or was closed."""
        for client in clients:
            client.expect(target)
        with contextlib.suppress(TimeoutError):  # then report what arrived
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*(c.done.wait() for c in clients))

    async def throughput(self, readers: int, stuck: int, events: int) -> Throughput:
        clients, stuck_clients = await self.connect(readers, stuck, timed=False)
        try:
            before = await self.stats()
            path = (
                f"/bench/throughput?events={events}&burst={self.args.burst}"
                f"&until_dropped={stuck}&fill_seconds={self.timeout}"
            )
            run = await control(self.port, "POST", path, 2 * self.timeout + 60)
            total = run["filled"] + events
            await self.wait_clients(clients, total)
            after = await self.stats()
        finally:
            await self.disconnect([*clients, *stuck_clients])
        dropped = after["dropped_slow"] - before["dropped_slow"]
        result = Throughput(run["rate"], run["cpu"], None, None, dropped)
        result.filled, result.fill_rate = run["filled"], run["fill_rate"]
        if clients:
            fewest = min(c.received for c in clients)
            result.received = fewest / total
            if fewest == total:
                result.slowest = events / (max(c.last for c in clients) - run["began"])
            result.message_bytes = sum(c.bytes for c in clients) / max(
                1, sum(c.received for c in clients)
            )
        return result

    async def latency(self, rate: float, readers: int) -> Latency:
        events = max(1, round(rate * self.args.latency_seconds))
        clients, _ = await self.connect(readers, 0, timed=True)
        try:
            path = f"/bench/latency?events={events}&rate={rate}"
            run = await control(self.port, "POST", path, self.timeout + events / rate)
            await self.wait_clients(clients, events)
        finally:
            await self.disconnect(clients)
        delays = [d for c in clients for d in c.delays]
        fewest = min(c.received for c in clients)
        return Latency(delays or [float("nan")], run["rate"], run["cpu"], fewest / events)

    async def run(self) -> Results:
        args, results = self.args, Results()
        await self.throughput(1, 0, min(args.events, 500))  # warm-up, not measured
        cpu, wall = time.process_time(), time.perf_counter()
        paced_cases = [(rate, readers) for rate in args.rates for readers in LATENCY_CLIENTS]
        for r in range(args.rounds):
            began = time.perf_counter()
            for label, readers, stuck in rotated(THROUGHPUT_CASES, r):
                run = await self.throughput(readers, stuck, args.events)
                results.throughput.setdefault(label, []).append(run)
            for rate, readers in rotated(paced_cases, r):
                paced_run = await self.latency(rate, readers)
                results.latency.setdefault((rate, readers), []).append(paced_run)
            took = time.perf_counter() - began
            print(f"round {r + 1}/{args.rounds} done in {took:.1f} s", flush=True)
        results.client_cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)
        return results


def rotated(items: Sequence[T], r: int) -> list[T]:
    """Start each round with another case: no one always runs first."""
    shift = r % len(items)
    return [*items[shift:], *items[:shift]]


# -- report ------------------------------------------------------------------------


def stack() -> str:
    """What served the feed."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return (
        f"CPython {sys.version.split()[0]}, uvicorn {uvicorn.__version__} ({http}, {loop} loop), "
        f"FastAPI {fastapi.__version__}"
    )


def report(results: Results, args: argparse.Namespace, load: tuple[float, float]) -> None:
    print(
        f"\n{stack()}; 1-min load average {load[0]:.2f} before, {load[1]:.2f} after\n"
        f"local mode, 1 async subscriber, median of {args.rounds} rounds (server in a child "
        f"process, clients in this one: {results.client_cpu:.0%} of a core)"
    )
    print(
        f"\n1. emit throughput, {args.events} durable events, emit -> drain "
        f"(bursts of {args.burst})\n"
    )
    print(
        f"{'feed clients':<34}{'events/s':>10}{'x 0 clients':>13}{'µs/msg':>8}"
        f"{'server CPU':>12}{'slowest ev/s':>14}{'received':>10}  dropped"
    )
    print("-" * 110)
    throughput = results.throughput
    stuck = throughput.get(AFTER_DROP, [])
    baseline = med([t.rate for t in throughput.get(BASELINE, [])])
    rows: list[tuple[str, int, list[Throughput], list[float]]] = [
        (label, readers + stuck_n, throughput.get(label, []), [])
        for label, readers, stuck_n in THROUGHPUT_CASES
    ]
    rows.insert(3, (FILLING, 11, [], [t.fill_rate for t in stuck if t.filled]))
    for label, connections, runs, fill_rates in rows:
        rate = med(fill_rates or [t.rate for t in runs])
        cost = f"{(1 / rate - 1 / baseline) / connections * 1e6:.1f}" if connections else "-"
        slowest = received = dropped = cpu = "-"
        if runs:
            cpu = f"{med([t.cpu for t in runs]):.0%}"
            dropped = ",".join(str(t.dropped) for t in runs)
        if runs and connections:
            slow = [t.slowest for t in runs if t.slowest is not None]
            slowest = f"{med(slow):,.0f}" if len(slow) == len(runs) else "incomplete"
            received = f"{min(t.received or 0.0 for t in runs):.0%}"
        print(
            f"{label:<34}{rate:>10,.0f}{rate / baseline:>13.3f}{cost:>8}"
            f"{cpu:>12}{slowest:>14}{received:>10}  {dropped}"
        )
    if stuck:
        filled = med([t.filled for t in stuck])
        size = med([t.message_bytes for t in stuck])
        print(
            f"\nthe stuck client was dropped in {sum(t.dropped >= 1 for t in stuck)} of "
            f"{len(stuck)} rounds, after {filled:,.0f} events (median; about "
            f"{filled * size / 1e6:.1f} MB at {size:.0f} bytes per message)"
        )
    print(
        f"\n2. fan-out latency, emit -> SSE message read by each client, "
        f"paced for {args.latency_seconds:g} s\n"
    )
    print(
        f"{'rate/s':>8}{'clients':>9}{'achieved/s':>12}{'server CPU':>12}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'received':>10}"
    )
    print("-" * 78)
    for (rate, readers), paced_runs in sorted(results.latency.items()):
        p50 = med([percentile(r.delays, 0.5) for r in paced_runs]) * 1e3
        p99 = med([percentile(r.delays, 0.99) for r in paced_runs]) * 1e3
        worst = med([max(r.delays) for r in paced_runs]) * 1e3
        achieved = med([r.rate for r in paced_runs])
        share = med([r.cpu for r in paced_runs])
        fewest = min(r.received for r in paced_runs)
        print(
            f"{rate:>8,.0f}{readers:>9}{achieved:>12,.0f}{share:>12.0%}"
            f"{p50:>9.2f}{p99:>9.2f}{worst:>9.2f}{fewest:>10.0%}"
        )


# -- main --------------------------------------------------------------------------


async def start_server(timeout: float) -> tuple[asyncio.subprocess.Process, int]:
    """The server child process, and the port it listens on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.feed", "--serve", cwd=ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            line = await proc.stdout.readline()
        return proc, int(line)
    except (TimeoutError, ValueError):
        await stop_server(proc)
        raise RuntimeError(f"the server did not start (exit code {proc.returncode})") from None


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    proc, port = await start_server(args.timeout)
    try:
        results = await Bench(port, args).run()
    finally:
        await stop_server(proc)
    report(results, args, (load, os.getloadavg()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rates", default="200,500", help="paced emits per second, comma-separated"
    )
    parser.add_argument("--latency-seconds", type=float, default=1.5, help="per paced run")
    parser.add_argument(
        "--burst", type=int, default=100, help="emits between two yields (0: never yield)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per step")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    try:
        args.rates = [float(rate) for rate in args.rates.split(",")]
    except ValueError:
        parser.error("--rates: numbers separated by commas")
    if min(args.events, args.rounds) < 1 or args.burst < 0:
        parser.error("--events and --rounds must be >= 1, --burst >= 0")
    if min(args.rates) <= 0 or args.latency_seconds <= 0 or args.timeout <= 0:
        parser.error("--rates, --latency-seconds and --timeout must be > 0")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
