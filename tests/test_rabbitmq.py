"""The rabbitmq mode against a real broker: configuration refusals, bad messages from
another program, replay and feed resume, ephemeral broadcast, a broker restart."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest

from bad_entries import fixed_corpus, generated_corpus
from hookbus import (
    BusUnavailableError,
    ConfigurationError,
    Envelope,
    Event,
    EventBus,
    UnsupportedError,
)
from hookbus._ids import new_event_id
from hookbus.testing import Recorder, test_settings
from hookbus.testing.rabbitmq_server import RabbitMQServer
from hookbus.testing.redis_server import make_tls_files
from rabbitmq_bus import new_prefix, rabbitmq_bus, raw_channel
from redis_helpers import free_port
from test_fastapi_feed import _resume_without_gap_or_duplicate

pytestmark = pytest.mark.rabbitmq

KEPT = 1024 * 1024


class Parcel(Event, name="rmq.parcel"):
    n: int


class PoisonSale(Event, name="rmq.poison_sale"):
    sale_id: int
    till: str


class PoisonOther(Event, name="rmq.poison_other"):
    note: str


class Presence(Event, name="rmq.presence", durable=False):
    who: str


async def test_wrong_credentials_and_unknown_vhost_are_refused_at_once(
    rabbitmq_server: RabbitMQServer,
) -> None:
    base = f"amqp://hookbus:wrong@127.0.0.1:{rabbitmq_server.port}/%2Fhookbus-test"
    missing = rabbitmq_server.url.rsplit("/", 1)[0] + "/no-such-vhost"
    for url, said in ((base, "refused hookbus"), (missing, "refused hookbus")):
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match=said) as info:
            async with EventBus(mode="rabbitmq", amqp_url=url, settings=test_settings()):
                pass
        assert time.monotonic() - started < 3
        assert "wrong" not in str(info.value)  # no password in messages


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:5672/", "bad scheme"),
        ("amqp:///vhost", "no host"),
        ("amqp://127.0.0.1:5672/a/b", "one path segment"),
        ("amqp://127.0.0.1:5672/?colour=red", "option 'colour' is not accepted"),
        ("amqp://127.0.0.1:5672/?cafile=/ca.pem", "TLS connections only"),
        ("amqp://127.0.0.1:5672/?heartbeat=soon", "heartbeat='soon' is invalid"),
    ],
)
def test_bad_amqp_urls_are_refused_when_the_bus_is_built(url: str, said: str) -> None:
    with pytest.raises(ConfigurationError, match=said):
        EventBus(mode="rabbitmq", amqp_url=url)


async def test_an_unreachable_broker_fails_start_within_emit_timeout() -> None:
    url = "amqp://guest:guest@127.0.0.1:9/"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(BusUnavailableError, match="unreachable"):
        async with rabbitmq_bus(url, new_prefix(), emit_timeout=1.0):
            pass
    assert time.monotonic() - started < 5


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_bad_messages_are_dead_lettered_once_per_subscriber_and_nothing_stalls(
    rabbitmq_server: RabbitMQServer,
) -> None:
    prefix = new_prefix()
    bus = rabbitmq_bus(rabbitmq_server.url, prefix)
    books, stock = Recorder[PoisonSale](), Recorder[PoisonSale]()
    bus.subscribe(PoisonSale, books, name="books")
    bus.subscribe(PoisonSale, stock, name="stock")
    bus.subscribe(PoisonOther, Recorder[PoisonOther](), name="notes")
    valid_data = {"sale_id": 1, "till": "A"}
    bad = fixed_corpus("rmq.poison_sale", PoisonOther(note="elsewhere"), valid_data)
    bad += generated_corpus("rmq.poison_sale", valid_data, 100)
    async with bus, raw_channel(rabbitmq_server.url) as channel:
        exchange = await channel.get_exchange(f"{prefix}.events.rmq.poison_sale")
        valid_ids: list[str] = []
        positions: dict[str, str] = {}
        for index, (label, fields) in enumerate(bad):  # valid, bad, valid, bad...
            envelope = Envelope(new_event_id(), PoisonSale(sale_id=index, till="raw"), "other")
            valid_ids.append(envelope.id)
            await exchange.publish(aio_pika.Message(envelope.encode()), routing_key="")
            position = f"bad-{index}"
            positions[position] = label
            body = fields.get(b"e", b"")
            await exchange.publish(aio_pika.Message(body, message_id=position), routing_key="")
        await bus.drain(timeout=90)
        letters = await bus.dead_letters()
    for recorder in (books, stock):
        assert Counter(recorder.ids) == Counter(valid_ids)  # each once, nothing else
        assert {type(e) for e in recorder.events} == {PoisonSale}
    for subscriber in ("books", "stock"):
        mine = [letter for letter in letters if letter.subscriber == subscriber]
        assert Counter(letter.position for letter in mine) == Counter(list(positions)), subscriber
        for letter in mine:
            label = positions[letter.position or ""]
            assert letter.error_type == "hookbus.InvalidEnvelopeError", label
            assert letter.error_message, label
            assert letter.envelope is None, label
            assert letter.source == f"{prefix}.q.rmq.poison_sale.{subscriber}", label
    (mixed_up,) = [
        letter
        for letter in letters
        if letter.subscriber == "books"
        and positions[letter.position or ""] == "other-declared-type"
    ]
    assert "'rmq.poison_other'" in mixed_up.error_message


async def test_replay_from_an_event_id_and_from_a_time(rabbitmq_server: RabbitMQServer) -> None:
    bus = rabbitmq_bus(rabbitmq_server.url, new_prefix())
    audit, mail = (
        Recorder[Parcel](),
        Recorder[Parcel](),
    )
    bus.subscribe(Parcel, audit, name="audit")
    bus.subscribe(Parcel, mail, name="mail")
    async with bus:
        ids = [await bus.emit(Parcel(n=n)) for n in range(5)]
        await bus.drain(timeout=20)
        await bus.replay("audit", since=ids[2])
        await audit.wait_for(8)
        await asyncio.sleep(1.1)  # the next emits fall in a later second than the first
        middle = datetime.now(UTC)
        await bus.emit(Parcel(n=5))
        await bus.drain(timeout=20)
        await bus.replay("mail", since=middle, event_type=Parcel)
        await mail.wait_for(7)
        await bus.drain(timeout=20)
    assert [e.n for e in audit.events] == [0, 1, 2, 3, 4, 2, 3, 4, 5]
    assert [e.n for e in mail.events] == [0, 1, 2, 3, 4, 5, 5]


async def test_sse_resume_with_last_event_id(rabbitmq_server: RabbitMQServer) -> None:
    await _resume_without_gap_or_duplicate(rabbitmq_bus(rabbitmq_server.url, new_prefix()))


async def test_ephemeral_events_reach_every_process_and_listeners_see_both_kinds(
    rabbitmq_server: RabbitMQServer,
) -> None:
    prefix = new_prefix()
    till, office = (
        rabbitmq_bus(rabbitmq_server.url, prefix),
        rabbitmq_bus(rabbitmq_server.url, prefix),
    )
    at_till, at_office = Recorder[Presence](), Recorder[Presence]()
    till.subscribe(Presence, at_till, name="screen")
    office.subscribe(Presence, at_office, name="screen")
    seen: list[str] = []
    async with till, office, office.listen(Presence, Parcel) as feed:
        await till.emit(Presence(who="cashier 1"))
        await till.emit(Parcel(n=1))
        async with asyncio.timeout(10):
            async for envelope in feed:
                seen.append(envelope.type)
                if len(seen) == 2:
                    break
        await at_till.wait_for(1)
        await at_office.wait_for(1)
    assert seen == ["rmq.presence", "rmq.parcel"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_confirmed_events_survive_a_broker_restart() -> None:
    with RabbitMQServer() as server:
        prefix = new_prefix()
        emitter = rabbitmq_bus(server.url, prefix, consume=False, emit_timeout=30.0)
        emitter.subscribe(Parcel, Recorder[Parcel](), name="books")
        async with emitter:
            before = [await emitter.emit(Parcel(n=n)) for n in range(50)]
            await asyncio.to_thread(server.restart)
            after = [await emitter.emit(Parcel(n=n)) for n in range(50, 100)]
        consumer = rabbitmq_bus(server.url, prefix)
        books = Recorder[Parcel]()
        consumer.subscribe(Parcel, books, name="books")
        async with consumer:
            await books.wait_for(100, timeout=30)
            await consumer.drain(timeout=30)
    assert Counter(books.ids) == Counter(before + after)


async def test_without_history_replay_is_unsupported_and_capabilities_say_so(
    rabbitmq_server: RabbitMQServer,
) -> None:
    bus = rabbitmq_bus(rabbitmq_server.url, new_prefix(), history=False)
    assert not bus.capabilities.replay
    assert rabbitmq_bus(rabbitmq_server.url, new_prefix()).capabilities.replay
    books = Recorder[Parcel]()
    bus.subscribe(Parcel, books, name="books")
    async with bus:
        event_id = await bus.emit(Parcel(n=1))
        await books.wait_for(1)
        with pytest.raises(UnsupportedError, match="history"):
            await bus.replay("books", since=event_id)


async def test_a_user_without_permissions_is_refused_at_start(
    rabbitmq_server: RabbitMQServer,
) -> None:
    name = "reader" + new_prefix()
    url = rabbitmq_server.add_user(name, "pw-of-reader")
    rabbitmq_server.ctl("set_permissions", "-p", rabbitmq_server.vhost, name, "^$", "^$", ".*")
    bus = rabbitmq_bus(url, new_prefix())
    bus.subscribe(Parcel, Recorder[Parcel](), name="books")
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="permissions") as info:
        await bus.start()
    assert time.monotonic() - started < 3
    assert "pw-of-reader" not in str(info.value)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_tls_works_with_the_ca_and_an_unverified_broker_is_refused(
    tmp_path: Path,
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    tls_port = free_port()
    config = [
        f"listeners.ssl.default = 127.0.0.1:{tls_port}",
        f"ssl_options.cacertfile = {tls.ca_cert}",
        f"ssl_options.certfile = {tls.server_cert}",
        f"ssl_options.keyfile = {tls.server_key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ]
    with RabbitMQServer(extra_config=config) as server:
        plain = server.url
        secure = "amqps://" + plain.removeprefix("amqp://").replace(
            f":{server.port}/", f":{tls_port}/"
        )
        bus = rabbitmq_bus(f"{secure}?cafile={tls.ca_cert}", new_prefix())
        books = Recorder[Parcel]()
        bus.subscribe(Parcel, books, name="books")
        async with bus:
            await bus.emit(Parcel(n=1))
            await books.wait_for(1)
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match="refused hookbus"):
            async with rabbitmq_bus(secure, new_prefix()):  # the system CAs do not know ours
                pass
        assert time.monotonic() - started < 3
