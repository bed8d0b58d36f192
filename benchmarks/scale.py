"""Redis (one server, a Redis Cluster) and RabbitMQ (one node, a 3-node cluster), side by side.

Run with ``python -m benchmarks.scale``. One run starts, all on 127.0.0.1: one Redis server
(``RedisServer``, no persistence), one Redis Cluster of three masters and three replicas
(``RedisCluster``), one RabbitMQ node (``RabbitMQServer``) and a cluster of three RabbitMQ nodes
(``RabbitMQCluster``), and measures the four alike. Rounds interleave the backends (the order
rotates every round, so that machine noise hits all of them), each run gets its own key or
name prefix, what a run stored is removed after it (Redis: ``FLUSHDB``; RabbitMQ: its queues,
streams and exchanges deleted), and the tables show the median of the rounds. Every ratio
compares numbers of this run. hookbus runs with its default options on every backend
(RabbitMQ: quorum queues, publisher confirms, prefetch 256, history streams on).

On the RabbitMQ cluster every client (the bench's buses, the workers) connects to the first
node, so the quorum queues' leaders are there (RabbitMQ places a new queue's leader on the node
of the client that declares it); the header says on how many nodes a quorum queue has members
(replicas): all three, each write confirmed once a majority (two) has it.

The workload is ``benchmarks.cluster``'s: four durable event types (``benchmarks._cluster_app``)
share the load round-robin.

1. durable throughput, emit -> handler -> ack, with 1 and 3 subscribers, in events per
   second from the first emit until every subscriber saw every event and ``drain()`` returned;
   emits gathered ``--chunk`` at a time;
2. consumer scaling: the parent emits ``--events`` events first (a bus with
   ``consume=False``), then 1, 2, 4 (up to ``--workers``) ``hookbus worker`` processes consume
   them as one subscriber, each handler spinning the CPU for ``--spin-us`` microseconds. The
   clock starts when every worker has imported its code and is told to go, and stops when
   everything was handled, polled every 10 ms: on Redis when ``XINFO`` shows every stream's
   group with everything delivered and nothing pending; on RabbitMQ when the workers' handled
   counter (each worker adds its count to a key of the single Redis server every 5 ms, see
   ``benchmarks._cluster_app``) reached ``--events`` and a passive declare of each of the
   subscriber's queues shows no message left in it. A counter above ``--events`` (an event
   handled twice: delivery is at least once, and a worker whose connection dropped hands its
   unacknowledged messages back) is reported; one below it after the stop fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Sequence
from typing import Any

import aio_pika
import redis as redis_py
from redis.utils import HIREDIS_AVAILABLE

from benchmarks import _scale_common as common
from benchmarks import cluster as redis_bench
from benchmarks._cluster_app import COUNT_KEY_ENV, COUNT_URL_ENV, SALE_TYPES, SCALE_SUBSCRIBER, sale
from benchmarks._redis_baselines import Client, med
from benchmarks._scale_common import LogTally, admin_client, hookbus_logs, prefix, rotated
from hookbus import Event, EventBus, RabbitMQOptions, Settings, event_name
from hookbus._rabbitmq.names import Names
from hookbus.testing.rabbitmq_server import RabbitMQCluster, RabbitMQServer, find_rabbitmq
from hookbus.testing.redis_cluster import RedisCluster
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name

THROUGHPUT_SUBSCRIBERS = (1, 3)
WORKER_COUNTS = (1, 2, 4)
TYPES = [event_name(cls) for cls in SALE_TYPES]

REDIS = "redis single"
REDIS_CLUSTER = "redis cluster"
RABBIT = "rabbitmq 1 node"
RABBIT_CLUSTER = "rabbitmq 3 nodes"
BACKENDS = (REDIS, REDIS_CLUSTER, RABBIT, RABBIT_CLUSTER)


# --------------------------------------------------------------------------- backends


class RedisBackend:
    """One Redis server or a Redis Cluster: the measurements of ``benchmarks.cluster``."""

    def __init__(self, url: str, admin_url: str, *, cluster: bool) -> None:
        self.url = url
        self.cluster = cluster
        self.admin: Client = admin_client(admin_url, cluster=cluster)

    async def throughput(self, subscribers: int, events: Sequence[Event], a: Any) -> float:
        return await redis_bench.throughput(
            self.url, prefix("t", 0), subscribers, events=events, chunk=a.chunk, timeout=a.timeout
        )

    async def scaling(self, workers: int, events: Sequence[Event], a: Any) -> float:
        return await redis_bench.scaling(
            self.url, self.admin, prefix("w", 0), workers, cluster=self.cluster, events=events,
            chunk=a.chunk, spin_us=a.spin_us, timeout=a.timeout,
        )  # fmt: skip

    async def clean(self) -> None:
        await self.admin.flushdb()

    async def close(self) -> None:
        await self.admin.aclose()


def new_rabbit_bus(url: str, name_prefix: str, **options: Any) -> EventBus:
    """A rabbitmq-mode bus, nothing read from the environment."""
    settings = Settings(
        mode="rabbitmq", amqp_url=url, rabbitmq=RabbitMQOptions(prefix=name_prefix, **options)
    )
    return EventBus(settings=settings)


class RabbitBackend:
    """One RabbitMQ node or the first node of a cluster; ``counter`` counts the workers'
    handlings (a client of the single Redis server)."""

    def __init__(self, url: str, counter: Client, counter_url: str) -> None:
        self.url = url
        self.counter = counter
        self.counter_url = counter_url
        self.connection: Any = None
        self.channel: Any = None
        self.used: list[tuple[str, int]] = []  # (prefix, subscribers) of runs not yet cleaned

    async def connect(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=False)

    async def server(self) -> str:
        """``RabbitMQ 3.10.8 on Erlang 25.2.3``, from what the broker tells on connecting."""
        transport = getattr(self.connection, "transport", None)
        props = getattr(getattr(transport, "connection", None), "server_properties", None) or {}

        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        version, erlang = text(props.get("version", "?")), text(props.get("platform", "?"))
        return f"RabbitMQ {version} on {erlang}"

    async def _channel(self) -> Any:
        if self.channel is None or self.channel.is_closed:
            self.channel = await self.connection.channel(publisher_confirms=False)
        return self.channel

    async def messages(self, name_prefix: str) -> int:
        """Messages ready in the workers' subscriber queues (passive declares)."""
        channel = await self._channel()
        names = Names(name_prefix)
        total = 0
        for type_name in TYPES:
            queue = await channel.declare_queue(
                names.queue(type_name, SCALE_SUBSCRIBER), passive=True
            )
            total += int(queue.declaration_result.message_count)
        return total

    async def throughput(self, subscribers: int, events: Sequence[Event], a: Any) -> float:
        name_prefix = prefix("t", 0)
        self.used.append((name_prefix, subscribers))
        bus = new_rabbit_bus(self.url, name_prefix)
        return await common.throughput(
            bus, subscribers, events=events, chunk=a.chunk, timeout=a.timeout
        )

    async def scaling(self, workers: int, events: Sequence[Event], a: Any) -> float:
        name_prefix = prefix("w", 0)
        self.used.append((name_prefix, 0))
        await common.preemit(new_rabbit_bus(self.url, name_prefix, consume=False), events, a.chunk)
        stored = await self.messages(name_prefix)
        assert stored == len(events), (stored, len(events))
        key = f"bench:handled:{name_prefix}"
        config = {
            "EVENT_BUS_MODE": "rabbitmq",
            "HOOKBUS_AMQP_URL": self.url,
            "HOOKBUS_AMQP_PREFIX": name_prefix,
            COUNT_URL_ENV: self.counter_url,
            COUNT_KEY_ENV: key,
        }

        async def handled() -> int:
            return int(await self.counter.get(key) or 0)

        async def all_handled() -> bool:
            # At least once: a worker whose connection dropped hands its unacknowledged
            # messages back, so a handling may be counted twice (reported below).
            count = await handled()
            return count >= len(events) and await self.messages(name_prefix) == 0

        elapsed = await common.run_workers(
            workers, config, spin_us=a.spin_us, all_handled=all_handled, timeout=a.timeout
        )
        count = await handled()
        if count < len(events):
            raise RuntimeError(f"{count} handlings of {len(events)} events after the stop")
        if count > len(events):
            print(f"  ({count - len(events)} of {len(events)} events handled twice: redelivered)")
        await self.counter.delete(key)
        return len(events) / elapsed

    async def clean(self) -> None:
        """Delete the queues, streams and exchanges of the runs so far."""
        channel = await self._channel()
        for name_prefix, subscribers in self.used:
            subs = (
                [SCALE_SUBSCRIBER]
                if subscribers == 0
                else [f"bench-{i}" for i in range(subscribers)]
            )
            await delete_topology(channel, name_prefix, subs)
        self.used.clear()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


Backend = RedisBackend | RabbitBackend


async def delete_topology(channel: Any, name_prefix: str, subscribers: Sequence[str]) -> None:
    """Delete what buses under ``name_prefix`` declared for ``subscribers`` of every type."""
    names = Names(name_prefix)
    for type_name in TYPES:
        for sub in subscribers:
            await channel.queue_delete(names.queue(type_name, sub))
        await channel.queue_delete(names.history(type_name))
        await channel.exchange_delete(names.exchange(type_name))
    await channel.queue_delete(names.dead())
    await channel.exchange_delete(names.all_events())


async def quorum_members(cluster: RabbitMQCluster, backend: RabbitBackend) -> int:
    """On how many nodes a subscriber's quorum queue has members, on ``cluster``."""
    name_prefix = prefix("q", 0)
    bus = new_rabbit_bus(cluster.url, name_prefix, consume=False)

    async def never_called(event: Event) -> None:
        raise AssertionError("consume=False")

    bus.subscribe(SALE_TYPES[0], never_called, name=SCALE_SUBSCRIBER)
    async with bus:
        pass
    queue = Names(name_prefix).queue(TYPES[0], SCALE_SUBSCRIBER)
    output = await asyncio.to_thread(
        cluster.ctl, "list_queues", "-p", cluster.nodes[0].vhost, "name", "members",
        "--formatter", "json",
    )  # fmt: skip
    rows = [row for row in json.loads(output or "[]") if row.get("name") == queue]
    if not rows:
        raise RuntimeError(f"quorum queue {queue} not listed: {output}")
    backend.used.append((name_prefix, 0))
    await backend.clean()
    return len(rows[0].get("members") or [])


# --------------------------------------------------------------------------- runner


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.events = [sale(i) for i in range(args.events)]
        self.rates: dict[tuple[str, int], list[float]] = {}
        self.scale: dict[tuple[str, int], list[float]] = {}
        self.logs = LogTally()
        self.rabbitmq = "?"
        self.members = 0

    @property
    def worker_counts(self) -> list[int]:
        most = self.args.workers
        return sorted({c for c in WORKER_COUNTS if c <= most} | {most})

    async def measure(
        self, single: RedisServer, cluster: RedisCluster, rabbit: RabbitMQServer,
        rabbits: RabbitMQCluster,
    ) -> None:  # fmt: skip
        a = self.args
        counter = admin_client(single.url, cluster=False)
        backends: dict[str, Backend] = {
            REDIS: RedisBackend(single.url, single.url, cluster=False),
            REDIS_CLUSTER: RedisBackend(cluster.url, cluster.seed_url, cluster=True),
            RABBIT: RabbitBackend(rabbit.url, counter, single.url),
            RABBIT_CLUSTER: RabbitBackend(rabbits.url, counter, single.url),
        }
        try:
            for backend in backends.values():
                if isinstance(backend, RabbitBackend):
                    await backend.connect()
            rabbit_one, rabbit_three = backends[RABBIT], backends[RABBIT_CLUSTER]
            assert isinstance(rabbit_one, RabbitBackend)
            assert isinstance(rabbit_three, RabbitBackend)
            self.rabbitmq = await rabbit_one.server()
            self.members = await quorum_members(rabbits, rabbit_three)
            with hookbus_logs() as self.logs:
                for r in range(a.rounds):
                    began = time.perf_counter()
                    for subs in THROUGHPUT_SUBSCRIBERS:
                        for name in rotated(BACKENDS, r):
                            rate = await backends[name].throughput(subs, self.events, a)
                            self.rates.setdefault((name, subs), []).append(rate)
                            await backends[name].clean()
                    for workers in self.worker_counts:
                        for name in rotated(BACKENDS, r):
                            rate = await backends[name].scaling(workers, self.events, a)
                            self.scale.setdefault((name, workers), []).append(rate)
                            await backends[name].clean()
                    took = time.perf_counter() - began
                    print(f"round {r + 1}/{a.rounds} done in {took:.1f} s", flush=True)
        finally:
            for backend in backends.values():
                await backend.close()
            await counter.aclose()

    def report(self, header: str) -> None:
        a = self.args
        print(f"\n{header}")
        print(
            f"{a.events} events over {len(SALE_TYPES)} durable types (round-robin), median of "
            f"{a.rounds} rounds (interleaved, same servers)"
        )
        print(
            "\n1. durable throughput, emit -> handler -> ack "
            f"({a.chunk} emits gathered, {len(SALE_TYPES)} event types round-robin)\n"
        )
        print(f"{'backend':<20}{'subscribers':>12}{'events/s':>12}{'x single Redis':>16}")
        print("-" * 60)
        for subs in THROUGHPUT_SUBSCRIBERS:
            single = med(self.rates.get((REDIS, subs), []))
            for name in BACKENDS:
                rate = med(self.rates.get((name, subs), []))
                print(f"{name:<20}{subs:>12}{rate:>12,.0f}{rate / single:>16.3f}")
        print(
            f"\n2. consumer scaling: worker processes, one subscriber on {len(SALE_TYPES)} types, "
            f"{a.events} events stored first, handler spins {a.spin_us:g} us\n"
        )
        print(f"{'backend':<20}{'workers':>8}{'events/s':>12}{'x 1 worker':>12}")
        print("-" * 52)
        for name in BACKENDS:
            one = med(self.scale.get((name, 1), []))
            for workers in self.worker_counts:
                rate = med(self.scale.get((name, workers), []))
                print(f"{name:<20}{workers:>8}{rate:>12,.0f}{rate / one:>12.2f}")
        logs = self.logs
        levels = ", ".join(f"{n} {level}" for level, n in sorted(logs.levels.items())) or "nothing"
        print(f"\nhookbus logged (warnings and errors, in this process): {levels}")
        for message, count in logs.messages.most_common(5):
            print(f"  {count:>5} x {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="most worker processes")
    parser.add_argument("--chunk", type=int, default=500, help="emits gathered at once")
    parser.add_argument("--spin-us", type=float, default=50.0, help="CPU work per handling (us)")
    parser.add_argument("--timeout", type=float, help="seconds per run (default 60 + events/250)")
    parser.add_argument(
        "--server", default=None, help="Redis server binary (default: redis-server)"
    )
    parser.add_argument("--rabbitmq", default=None, help="rabbitmq-server script")
    args = parser.parse_args()
    if min(args.events, args.rounds, args.workers, args.chunk) < 1:
        parser.error("--events, --rounds, --workers and --chunk must be >= 1")
    if args.spin_us < 0:
        parser.error("--spin-us must be >= 0")
    if args.timeout is None:
        args.timeout = 60 + args.events / 250
    binary = args.server or find_server_binaries()[0]
    script = args.rabbitmq or find_rabbitmq()
    runner = Runner(args)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with (
        RedisServer(binary, appendonly=False) as single,
        RedisCluster(binary) as cluster,
        RabbitMQServer(script) as rabbit,
        RabbitMQCluster(script) as rabbits,
    ):
        setup = time.perf_counter() - began
        print(f"servers started in {setup:.1f} s", flush=True)
        asyncio.run(runner.measure(single, cluster, rabbit, rabbits))
    runner.report(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"redis-py {redis_py.__version__} "
        f"({'hiredis' if HIREDIS_AVAILABLE else 'pure-Python'} reply parser), "
        f"aio-pika {aio_pika.__version__}\n"
        f"{server_name(binary)}: one server, and a cluster of 3 masters + 3 replicas\n"
        f"{runner.rabbitmq}: one node, and a cluster of 3 nodes (quorum queues with members "
        f"on {runner.members} nodes, leaders on the node the clients use)\n"
        f"1-min load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{time.perf_counter() - began:.0f} s in all (servers started in {setup:.0f} s)"
    )


if __name__ == "__main__":
    main()
