"""Faults: Redis unreachable at emit or start, cancelled emits, idle blocking reads,
a dropped Pub/Sub connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from hookbus import BusUnavailableError, Event
from hookbus.testing import Recorder
from hookbus.testing.redis_server import RedisServer
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis


class Beep(Event, name="faults.beep"):
    n: int


class Blink(Event, name="faults.blink", durable=False):
    n: int


async def once_back(emit: Callable[[], Awaitable[object]]) -> None:
    """Emit until the restarted Redis accepts it (the bus reconnects by itself)."""
    async with asyncio.timeout(15):
        while True:
            try:
                await emit()
                return
            except BusUnavailableError:
                await asyncio.sleep(0.1)


@pytest.fixture
def own_server(redis_server_binary: str) -> Iterator[RedisServer]:
    """A server this test may kill and restart."""
    with RedisServer(redis_server_binary) as server:
        yield server


async def test_emit_fails_fast_while_redis_is_down_then_recovers(
    own_server: RedisServer, redis_prefix: str
) -> None:
    bus = redis_bus(own_server.url, redis_prefix, emit_timeout=0.5)
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="beeper")
    async with bus:
        await bus.emit(Beep(n=1))
        await rec.wait_for(1)
        own_server.kill()
        begin = time.monotonic()
        with pytest.raises(BusUnavailableError, match="emit_timeout"):
            await bus.emit(Beep(n=2))
        assert time.monotonic() - begin < 3.0
        own_server.restart()
        await once_back(lambda: bus.emit(Beep(n=3)))
        events = await rec.wait_for(2, timeout=15)
        await bus.drain(timeout=15)  # pooled connections the restart closed: asked again
    assert [e.n for e in events] == [1, 3]


async def test_a_consumer_survives_a_restart_that_lost_its_groups_and_its_connections(
    own_server: RedisServer, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = redis_bus(own_server.url, redis_prefix, emit_timeout=0.5)
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="beeper")
    async with bus:
        await bus.emit(Beep(n=1))
        await rec.wait_for(1)
        await bus.status()  # more connections in the pool: all of them closed by the restart
        await bus.dead_letters()
        own_server.kill()
        own_server.restart()  # no persistence: the consumer group is gone
        async with asyncio.timeout(15):  # before any emit: its own read finds it gone
            while "consumer group was missing" not in caplog.text:  # noqa: ASYNC110 - a log
                await asyncio.sleep(0.02)
        await once_back(lambda: bus.emit(Beep(n=2)))
        events = await rec.wait_for(2, timeout=15)
        for n in range(3, 6):
            await bus.emit(Beep(n=n))
        events = await rec.wait_for(5, timeout=15)
    assert [e.n for e in events] == [1, 2, 3, 4, 5]


async def test_operator_calls_right_after_a_restart_answer(
    own_server: RedisServer, redis_prefix: str
) -> None:
    bus = redis_bus(own_server.url, redis_prefix, emit_timeout=0.5)
    bus.subscribe(Beep, Recorder[Beep](), name="beeper")
    async with bus:
        # Several pooled connections, all of which the restart closes.
        await asyncio.gather(bus.status(), bus.dead_letters(), bus.status(), bus.dead_letters())
        own_server.kill()
        own_server.restart()
        status = await bus.status()  # on a fresh connection, not redis-py's ConnectionError
        assert [s.subscriber for s in status.subscribers] == ["beeper"]
        assert await bus.dead_letters() == []
        own_server.kill()
        with pytest.raises(BusUnavailableError, match="unreachable"):
            await bus.dead_letters()


async def test_start_fails_with_a_clear_error_when_redis_is_unreachable(
    own_server: RedisServer, redis_prefix: str
) -> None:
    own_server.kill()
    bus = redis_bus(own_server.url, redis_prefix, emit_timeout=0.5)
    bus.subscribe(Beep, Recorder[Beep](), name="beeper")
    begin = time.monotonic()
    with pytest.raises(BusUnavailableError, match="unreachable"):
        await bus.start()
    assert time.monotonic() - begin < 3.0


async def test_cancelled_emits_leave_the_bus_consistent(redis_url: str, redis_prefix: str) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="beeper")
    async with bus:
        for round_ in range(20):
            tasks = [asyncio.create_task(bus.emit(Beep(n=round_ * 100 + i))) for i in range(50)]
            await asyncio.sleep(0)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        kept = {round_ * 100 + i for round_ in range(20) for i in range(50) if i % 2 == 1}
        ids = {n: await bus.emit(Beep(n=n)) for n in range(10_000, 10_050)}
        await bus.drain(timeout=20)
    received = {e.n: i for e, i in zip(rec.events, rec.ids, strict=True)}
    assert kept <= received.keys()  # every emit that was not cancelled arrived
    assert all(received[n] == event_id for n, event_id in ids.items())
    assert len(rec.events) == len(received)  # nothing twice


async def test_emit_many_while_redis_is_down_fails_or_is_cancelled_cleanly(
    own_server: RedisServer, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = redis_bus(own_server.url, redis_prefix, emit_timeout=0.5)
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="beeper")
    async with bus:
        await bus.emit_many([Beep(n=0)])
        await rec.wait_for(1)
        own_server.kill()
        begin = time.monotonic()
        with pytest.raises(BusUnavailableError, match="emit_timeout"):
            await bus.emit_many([Beep(n=i) for i in range(1, 300)])
        assert time.monotonic() - begin < 3.0
        # Cancelled while waiting (a caller's timeout shorter than emit_timeout).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.emit_many([Beep(n=i) for i in range(300, 600)]), 0.1)
        assert time.monotonic() - begin < 4.0
        own_server.restart()
        await once_back(lambda: bus.emit_many([Beep(n=1000), Beep(n=1001)]))
        events = await rec.wait_for(3, timeout=15)
        await bus.drain(timeout=15)
    assert events[0].n == 0
    assert {1000, 1001} <= {e.n for e in rec.events}
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_idle_blocking_reads_never_trip_the_socket_timeout(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = redis_bus(redis_url, redis_prefix, emit_timeout=0.3, block=0.5)
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="patient")
    with caplog.at_level(logging.WARNING, logger="hookbus"):
        async with bus:
            await asyncio.sleep(2.0)  # idle: many blocking reads longer than emit_timeout
            begin = time.monotonic()
            await bus.emit(Beep(n=1))
            await rec.wait_for(1)
            latency = time.monotonic() - begin
    assert "unreachable" not in caplog.text
    assert latency < 0.5


async def test_live_listeners_catch_up_after_a_pubsub_disconnect(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    bus.register(Beep)
    client = raw_client(redis_url)
    try:
        async with bus:
            async with bus.listen(Beep) as feed:
                await bus.drain(timeout=10)
                await bus.emit(Beep(n=0))
                first = await asyncio.wait_for(anext(feed), 10)
                killed = await client.client_kill_filter(_type="pubsub")
                assert killed >= 1
                for n in range(1, 6):  # stored while the feed is reconnecting
                    await bus.emit(Beep(n=n))
                seen = [first.event]
                async with asyncio.timeout(10):
                    async for envelope in feed:
                        seen.append(envelope.event)
                        if len(seen) == 6:
                            break
            live = bus._backend.live  # type: ignore[attr-defined]
    finally:
        await client.aclose()
    assert sorted(e.n for e in seen) == list(range(6))  # type: ignore[attr-defined]
    assert live.disconnects >= 1


async def test_listening_settles_while_the_pubsub_connection_keeps_dropping(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    bus.register(Beep)
    client = raw_client(redis_url)
    stop = asyncio.Event()

    async def cut_pubsub_connections() -> None:
        while not stop.is_set():
            await client.client_kill_filter(_type="pubsub")
            await asyncio.sleep(0.01)

    try:
        async with bus:
            cutting = asyncio.create_task(cut_pubsub_connections())
            try:
                settled = 0
                async with asyncio.timeout(30):  # a lost sync token used to wait forever
                    for _ in range(8):
                        async with bus.listen(Beep):
                            settled += 1
            finally:
                stop.set()
                await cutting
    finally:
        await client.aclose()
    assert settled == 8


async def test_ephemeral_events_reach_every_process(redis_url: str, redis_prefix: str) -> None:
    buses = [redis_bus(redis_url, redis_prefix) for _ in range(3)]
    recorders = [Recorder[Blink]() for _ in buses]
    for bus, rec in zip(buses, recorders, strict=True):
        bus.subscribe(Blink, rec, name="screen")  # same id: still a broadcast
        await bus.start()
    try:
        await buses[0].drain(timeout=10)
        await buses[0].emit(Blink(n=7))
        for rec in recorders:
            assert [e.n for e in await rec.wait_for(1)] == [7]
    finally:
        for bus in buses:
            await bus.stop()


async def test_ephemeral_events_missed_during_a_disconnect_are_counted(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    rec = Recorder[Blink]()
    bus.subscribe(Blink, rec, name="screen")
    client = raw_client(redis_url)
    try:
        async with bus:
            await bus.drain(timeout=10)
            await bus.emit(Blink(n=0))
            await rec.wait_for(1)
            await client.client_kill_filter(_type="pubsub")
            for n in range(1, 21):
                await bus.emit(Blink(n=n))
            async with asyncio.timeout(10):
                while bus.live_statistics().disconnects < 1:  # noqa: ASYNC110 - feed state
                    await asyncio.sleep(0.01)
            await bus.drain(timeout=10)
            stats = bus.live_statistics()
    finally:
        await client.aclose()
    assert stats.disconnects >= 1
    assert len(rec.events) + stats.missed == 21  # each one either arrived or is counted


class Flash(Event, name="faults.flash", durable=False):
    n: int
    pad: str


def _publish_from_another_thread(url: str, prefix: str, flashes: int, beeps: int) -> None:
    """Another 'process': its own bus on its own event loop, in a thread."""

    async def publish() -> None:
        async with redis_bus(url, prefix) as bus:
            pad = "x" * 1000
            for start in range(0, flashes, 100):
                await asyncio.gather(
                    *(bus.emit(Flash(n=n, pad=pad)) for n in range(start, start + 100))
                )
            for n in range(beeps):
                await bus.emit(Beep(n=n))

    asyncio.run(publish())


@pytest.mark.slow
async def test_a_subscriber_cut_off_by_the_output_buffer_limit_notices_and_catches_up(
    own_server: RedisServer, redis_prefix: str
) -> None:
    flashes, beeps = 3000, 50
    client = raw_client(own_server.url)
    await client.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    bus = redis_bus(own_server.url, redis_prefix)
    rec = Recorder[Flash]()
    bus.subscribe(Flash, rec, name="screen")
    bus.register(Beep)
    try:
        async with bus, bus.listen(Beep) as feed:
            publisher = asyncio.get_running_loop().run_in_executor(
                None, _publish_from_another_thread, own_server.url, redis_prefix, flashes, beeps
            )
            time.sleep(2.0)  # noqa: ASYNC251 - this loop falls behind on purpose
            await asyncio.wait_for(publisher, 60)
            beeps_seen: list[int] = []
            async with asyncio.timeout(30):
                async for envelope in feed:
                    beeps_seen.append(envelope.event.n)  # type: ignore[attr-defined]
                    if len(set(beeps_seen)) == beeps:
                        break
            await bus.drain(timeout=30)
            stats = bus.live_statistics()
    finally:
        await client.aclose()
    assert stats.disconnects >= 1  # Redis cut the connection; the feed noticed
    assert len(rec.events) < flashes  # messages were lost while cut off ...
    assert len(rec.events) + stats.missed == flashes  # ... and every one is counted
    assert sorted(set(beeps_seen)) == list(range(beeps))  # durable ones caught up


class Boop(Event, name="faults.boop"):
    n: int


async def test_an_event_redis_refuses_fails_alone_in_its_batch(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    beeps, blinks = Recorder[Beep](), Recorder[Blink]()
    bus.subscribe(Beep, beeps, name="beeps")
    bus.subscribe(Blink, blinks, name="blinks")
    client = raw_client(redis_url)
    try:
        async with bus:
            # Another program broke one type's stream: its events cannot be stored.
            await client.set(f"{redis_prefix}:stream:faults.boop", "not a stream")
            emits = [bus.emit(Beep(n=i)) if i % 3 else bus.emit(Boop(n=i)) for i in range(60)]
            emits += [bus.emit(Blink(n=i)) for i in range(5)]
            results = await asyncio.gather(*emits, return_exceptions=True)
            await beeps.wait_for(40)
            await blinks.wait_for(5)
    finally:
        await client.aclose()
    for i, result in enumerate(results[:60]):
        if i % 3:
            assert isinstance(result, str), result
        else:
            assert isinstance(result, BusUnavailableError), result
            assert "WRONGTYPE" in str(result)
    assert sorted(e.n for e in beeps.events) == [i for i in range(60) if i % 3]


async def test_emit_many_raises_the_first_refusal_once_the_others_are_stored(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    beeps = Recorder[Beep]()
    bus.subscribe(Beep, beeps, name="beeps")
    client = raw_client(redis_url)
    try:
        async with bus:
            await client.set(f"{redis_prefix}:stream:faults.boop", "not a stream")
            events: list[Event] = [Beep(n=i) if i % 3 else Boop(n=i) for i in range(60)]
            with pytest.raises(BusUnavailableError, match="WRONGTYPE"):
                await bus.emit_many(events)
            await beeps.wait_for(40)
            assert await client.xlen(f"{redis_prefix}:stream:faults.beep") == 40
            # The bus goes on: the next call of only valid events succeeds.
            assert len(await bus.emit_many([Beep(n=100), Beep(n=101)])) == 2
            await beeps.wait_for(42)
    finally:
        await client.aclose()
    assert sorted(e.n for e in beeps.events) == [i for i in range(60) if i % 3] + [100, 101]
