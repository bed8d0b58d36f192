"""The event types of ``benchmarks.cluster``, and the bus its worker processes run.

Four durable event types share the load round-robin. In the cluster layout each type's keys
carry the type's name as hash tag (``<prefix>:stream:{bench.sale_0}``); on the cluster of
``RedisCluster`` (three masters, slots split evenly) these four land on all three masters
(slots 3181, 7244, 11311 and 15374: two types on the third master).

A worker is ``python -m hookbus worker benchmarks._cluster_app:gated_bus``, configured from
the environment like any application (``EVENT_BUS_MODE``, ``HOOKBUS_REDIS_URL``,
``HOOKBUS_REDIS_PREFIX``). :func:`gated_bus` builds the bus, prints :data:`READY` on stdout and
waits for one line on stdin before handing the bus to the CLI, which then starts it. The
bench thus starts the clock once every worker has imported everything: what it measures is
connecting and consuming, not the start-up of Python.

Every handler spins on the CPU for ``BENCH_SPIN_US`` microseconds (default 50): a stand-in
for a handler's own work, without which one worker would be bound by Redis round trips only
and more workers would show nothing but contention.

With ``BENCH_COUNT_URL`` (a Redis URL) and ``BENCH_COUNT_KEY`` set, the worker also counts
its handlings and adds them to that key (``INCRBY``) from a thread every 5 ms: how
``benchmarks.scale`` knows that RabbitMQ workers have handled everything (a queue's message
count leaves out the messages delivered and not yet acknowledged).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from decimal import Decimal

import redis

from hookbus import Event, EventBus

__all__ = [
    "COUNT_KEY_ENV",
    "COUNT_URL_ENV",
    "READY",
    "SALE_TYPES",
    "SCALE_SUBSCRIBER",
    "SPIN_ENV",
    "Sale0",
    "Sale1",
    "Sale2",
    "Sale3",
    "gated_bus",
    "sale",
]

READY = "bench worker ready"
SCALE_SUBSCRIBER = "bench-scale"
SPIN_ENV = "BENCH_SPIN_US"
COUNT_URL_ENV = "BENCH_COUNT_URL"
COUNT_KEY_ENV = "BENCH_COUNT_KEY"
COUNT_INTERVAL = 0.005
DEFAULT_SPIN_US = 50.0


class Sale0(Event, name="bench.sale_0"):
    sale_id: int
    total: Decimal
    till: str


class Sale1(Event, name="bench.sale_1"):
    sale_id: int
    total: Decimal
    till: str


class Sale2(Event, name="bench.sale_2"):
    sale_id: int
    total: Decimal
    till: str


class Sale3(Event, name="bench.sale_3"):
    sale_id: int
    total: Decimal
    till: str


SALE_TYPES: tuple[type[Sale0 | Sale1 | Sale2 | Sale3], ...] = (Sale0, Sale1, Sale2, Sale3)


def sale(i: int) -> Event:
    """Sale ``i``, of type ``SALE_TYPES[i % 4]`` (round-robin over the types)."""
    cls = SALE_TYPES[i % len(SALE_TYPES)]
    return cls(sale_id=i, total=Decimal("150.50"), till=f"till-{i % 7}")


def spin(seconds: float) -> None:
    """Keep the CPU busy for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class HandledCounter:
    """Handlings counted in the worker, added to a Redis key by a daemon thread."""

    def __init__(self, url: str, key: str) -> None:
        self.count = 0  # written by the event loop's thread only
        self.client = redis.Redis.from_url(url, socket_timeout=10.0)
        self.key = key
        threading.Thread(target=self.publish, name="bench-counter", daemon=True).start()

    def publish(self) -> None:
        sent = 0
        while True:
            count = self.count
            if count != sent:
                self.client.incrby(self.key, count - sent)
                sent = count
            time.sleep(COUNT_INTERVAL)


def gated_bus() -> EventBus:
    """The worker's bus (settings from the environment), returned once stdin says go."""
    work = float(os.environ.get(SPIN_ENV, DEFAULT_SPIN_US)) / 1e6
    count_url, count_key = os.environ.get(COUNT_URL_ENV), os.environ.get(COUNT_KEY_ENV)
    counter = HandledCounter(count_url, count_key) if count_url and count_key else None

    async def handle(event: Event) -> None:
        if work > 0:
            spin(work)
        if counter is not None:
            counter.count += 1

    bus = EventBus()
    for cls in SALE_TYPES:
        bus.subscribe(cls, handle, name=SCALE_SUBSCRIBER)
    print(READY, flush=True)
    sys.stdin.readline()  # the go (or end of file: the bench went away)
    return bus
