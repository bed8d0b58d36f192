"""In-process dispatch: hookbus local mode against a bare loop, blinker and async-signals.

Run with ``make bench`` (or ``python -m benchmarks.local --events 100000 --rounds 5``).

Every contender dispatches the same pre-built event objects to 3 trivial
async handlers (each increments a counter). Rounds interleave the
contenders so that machine noise hits all of them alike; the table shows the
median of the rounds and the ratio to the bare loop of the same run.

* throughput: events per second from the first emit until every handler has
  run for every event (hookbus: the emit loop then ``drain()``);
* latency: one event at a time, from the emit call until the third handler
  has finished with it (median and 99th percentile, in microseconds).

"hookbus local + metrics" is the same bus with :func:`hookbus.metrics.enable`.
``--cpu-time`` times throughput with the process's CPU time (steadier when
other processes load the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hookbus import Event, EventBus

SUBSCRIBERS = 3


class SaleClosed(Event, name="bench.sale_closed"):
    session_id: int
    total: Decimal


Emit = Callable[[SaleClosed], Awaitable[Any]]


@dataclass
class Counter:
    """Shared by the handlers: counts calls, resolves ``done`` at ``target``."""

    count: int = 0
    target: int = -1
    done: asyncio.Future[None] | None = None

    def expect(self, extra: int) -> asyncio.Future[None]:
        self.target = self.count + extra
        self.done = asyncio.get_running_loop().create_future()
        return self.done


def make_handlers(counter: Counter) -> list[Callable[..., Awaitable[None]]]:
    def make() -> Callable[..., Awaitable[None]]:
        async def handler(*args: Any, **kwargs: Any) -> None:
            counter.count += 1
            if counter.count == counter.target and counter.done is not None:
                counter.done.set_result(None)

        return handler

    return [make() for _ in range(SUBSCRIBERS)]


class Contender:
    """One dispatcher under test; ``setup`` returns its emit and its finish."""

    name = ""

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        raise NotImplementedError

    async def teardown(self) -> None:
        return None


async def _nothing() -> None:
    return None


class BareLoop(Contender):
    name = "bare loop (floor)"

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        handlers = make_handlers(counter)

        async def emit(event: SaleClosed) -> None:
            for handler in handlers:
                await handler(event)

        return emit, _nothing


class Hookbus(Contender):
    name = "hookbus local"

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        self.bus = EventBus(mode="local")
        for i, handler in enumerate(make_handlers(counter)):
            self.bus.subscribe(SaleClosed, handler, name=f"bench-{i}")
        await self.bus.start()
        return self.bus.emit, self.bus.drain

    async def teardown(self) -> None:
        await self.bus.stop()


class HookbusMetrics(Hookbus):
    name = "hookbus local + metrics"

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        from prometheus_client import CollectorRegistry

        from hookbus import metrics

        emit, finish = await super().setup(counter)
        metrics.enable(self.bus, CollectorRegistry())
        return emit, finish


class Blinker(Contender):
    name = "blinker send_async"

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        from blinker import Signal

        signal = Signal()
        for handler in make_handlers(counter):
            signal.connect(handler, weak=False)

        async def emit(event: SaleClosed) -> None:
            await signal.send_async(None, event=event)

        return emit, _nothing


class AsyncSignals(Contender):
    name = "async-signals"

    async def setup(self, counter: Counter) -> tuple[Emit, Callable[[], Awaitable[None]]]:
        from async_signals import Signal

        signal = Signal()
        for handler in make_handlers(counter):
            signal.connect(handler, weak=False)

        async def emit(event: SaleClosed) -> None:
            await signal.send(None, event=event)

        return emit, _nothing


CONTENDERS: list[type[Contender]] = [BareLoop, Hookbus, HookbusMetrics, Blinker, AsyncSignals]


async def throughput(
    contender: Contender, events: list[SaleClosed], clock: Callable[[], float] = time.perf_counter
) -> float:
    counter = Counter()
    emit, finish = await contender.setup(counter)
    try:
        start = clock()
        for event in events:
            await emit(event)
        await finish()
        elapsed = clock() - start
        assert counter.count == SUBSCRIBERS * len(events), (contender.name, counter.count)
        return len(events) / elapsed
    finally:
        await contender.teardown()


async def latencies(contender: Contender, events: list[SaleClosed]) -> list[float]:
    counter = Counter()
    emit, _ = await contender.setup(counter)
    samples: list[float] = []
    try:
        for event in events:
            done = counter.expect(SUBSCRIBERS)
            start = time.perf_counter()
            await emit(event)
            await done
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        await contender.teardown()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(
    n_events: int, n_latency: int, rounds: int, clock: Callable[[], float] = time.perf_counter
) -> None:
    events = [SaleClosed(session_id=i, total=Decimal("150.50")) for i in range(n_events)]
    rates: dict[str, list[float]] = {c.name: [] for c in CONTENDERS}
    p50: dict[str, list[float]] = {c.name: [] for c in CONTENDERS}
    p99: dict[str, list[float]] = {c.name: [] for c in CONTENDERS}
    for _ in range(rounds):
        for cls in CONTENDERS:
            rates[cls.name].append(await throughput(cls(), events, clock))
            samples = await latencies(cls(), events[:n_latency])
            p50[cls.name].append(percentile(samples, 0.50))
            p99[cls.name].append(percentile(samples, 0.99))
    floor = statistics.median(rates[BareLoop.name])
    print(
        f"\n{n_events} events, {SUBSCRIBERS} async subscribers, "
        f"median of {rounds} rounds (same process, interleaved)\n"
    )
    print(f"{'contender':<25}{'events/s':>12}{'x bare':>9}{'p50 µs':>10}{'p99 µs':>10}")
    print("-" * 66)
    for cls in CONTENDERS:
        rate = statistics.median(rates[cls.name])
        print(
            f"{cls.name:<25}{rate:>12,.0f}{rate / floor:>9.3f}"
            f"{statistics.median(p50[cls.name]) * 1e6:>10.1f}"
            f"{statistics.median(p99[cls.name]) * 1e6:>10.1f}"
        )
    hb = statistics.median(rates[Hookbus.name])
    # Each round measures both one after the other: the median of the rounds' ratios
    # is less exposed to the machine's noise than the ratio of the medians.
    paired = zip(rates[HookbusMetrics.name], rates[Hookbus.name], strict=True)
    print(
        "\nhookbus with metrics / without: "
        f"{statistics.median(m / h for m, h in paired):.3f} (median of the rounds' ratios)"
    )
    print(
        f"hookbus / async-signals: {hb / statistics.median(rates[AsyncSignals.name]):.2f}x   "
        f"hookbus / blinker: {hb / statistics.median(rates[Blinker.name]):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time throughput with this process's CPU time instead of the wall clock "
        "(steadier on a machine shared with other work; latency stays wall-clock)",
    )
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    asyncio.run(run(args.events, args.latency_events, args.rounds, clock))


if __name__ == "__main__":
    main()
