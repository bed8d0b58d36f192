"""Whatever bytes another program writes into a stream, every entry ends handled or
dead-lettered once per subscriber, acknowledged, and the valid events around it are
delivered: nothing stays pending on a live consumer."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from bad_entries import Fields, fixed_corpus, generated_corpus
from hookbus import DeadLetterNotFoundError, Envelope, Event
from hookbus._ids import new_event_id
from hookbus._redis.keys import Keys
from hookbus.testing import Recorder
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis

KEPT = 1024 * 1024  # payload bytes a dead letter keeps (max_event_size's default)


class PoisonSale(Event, name="poison.sale"):
    sale_id: int
    till: str


class PoisonOther(Event, name="poison.other"):
    note: str


VALID_DATA = {"sale_id": 1, "till": "A"}


def _valid(sale_id: int) -> tuple[str, Fields]:
    envelope = Envelope(new_event_id(), PoisonSale(sale_id=sale_id, till="raw"), "other-program")
    return envelope.id, {b"e": envelope.encode()}


async def _write(client: Any, stream: str, entries: list[Fields]) -> list[bytes]:
    """XADD every entry, in order, in pipelines; their entry ids."""
    ids: list[bytes] = []
    for start in range(0, len(entries), 100):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + 100]:
            pipe.xadd(stream, fields)
        ids += await pipe.execute()
    return ids


def _client_and_stream(url: str, prefix: str) -> tuple[Any, str]:
    """A plain client of the server or the cluster that ``url`` names, and the stream of
    ``poison.sale`` there (on a cluster, its key carries a hash tag)."""
    if url.endswith("?cluster=true"):
        client: Any = ClusterClient.from_url(url.removesuffix("?cluster=true"))
        return client, Keys(prefix, cluster=True).stream("poison.sale")
    return raw_client(url), Keys(prefix).stream("poison.sale")


async def _pending(client: Any, stream: str, group: str) -> int:
    summary = await client.xpending(stream, group)
    return int(summary["pending"])


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_bad_entries_are_dead_lettered_once_per_subscriber_and_nothing_stalls(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    books, stock = Recorder[PoisonSale](), Recorder[PoisonSale]()
    received_types: set[type] = set()

    async def typed(event: PoisonSale) -> None:
        received_types.add(type(event))

    bus.subscribe(PoisonSale, books, name="books")
    bus.subscribe(PoisonSale, stock, name="stock")
    bus.subscribe(PoisonSale, typed, name="typed")
    bus.subscribe(PoisonOther, Recorder[PoisonOther](), name="notes")
    bad = fixed_corpus("poison.sale", PoisonOther(note="elsewhere"), VALID_DATA)
    bad += generated_corpus("poison.sale", VALID_DATA, 300)
    client, stream = _client_and_stream(redis_url, redis_prefix)
    try:
        async with bus:
            entries: list[Fields] = []
            valid_ids: list[str] = []
            for index, (_, fields) in enumerate(bad):  # valid, bad, valid, bad...
                event_id, valid = _valid(index)
                valid_ids.append(event_id)
                entries += [valid, fields]
            emitted = [bus.emit(PoisonSale(sale_id=10_000 + i, till="bus")) for i in range(50)]
            entry_ids, emitted_ids = await asyncio.gather(
                _write(client, stream, entries), asyncio.gather(*emitted)
            )
            valid_ids += emitted_ids
            await bus.drain(timeout=150)
            letters = await bus.dead_letters()
            pending = {g: await _pending(client, stream, g) for g in ("books", "stock", "typed")}
    finally:
        await client.aclose()

    for recorder in (books, stock):
        assert Counter(recorder.ids) == Counter(valid_ids)  # each once, nothing else
        assert {type(e) for e in recorder.events} == {PoisonSale}
    assert received_types == {PoisonSale}
    assert pending == {"books": 0, "stock": 0, "typed": 0}

    bad_positions = {entry_ids[2 * i + 1].decode(): label for i, (label, _) in enumerate(bad)}
    by_position = {pos: fields for pos, (_, fields) in zip(bad_positions, bad, strict=True)}
    for subscriber in ("books", "stock", "typed"):
        mine = [letter for letter in letters if letter.subscriber == subscriber]
        positions = Counter(letter.position for letter in mine)
        assert positions == Counter(list(bad_positions)), subscriber  # every bad entry, once
        for letter in mine:
            assert letter.position is not None
            label = bad_positions[letter.position]
            assert letter.source == stream, label
            assert letter.event_type == "poison.sale", label
            assert letter.error_type == "hookbus.InvalidEnvelopeError", label
            assert letter.error_message, label
            assert letter.envelope is None, label
            raw = by_position[letter.position].get(b"e", b"")
            assert letter.payload == raw[:KEPT], label
    (mixed_up,) = [
        letter
        for letter in letters
        if letter.subscriber == "books"
        and bad_positions[letter.position or ""] == "other-declared-type"
    ]
    assert "'poison.other'" in mixed_up.error_message
    assert "'poison.sale'" in mixed_up.error_message
    assert mixed_up.event_id == "other-1"


async def test_a_dead_letter_redis_refuses_is_retried_and_blocks_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    books = Recorder[PoisonSale]()
    bus.subscribe(PoisonSale, books, name="books")
    stream = f"{redis_prefix}:stream:poison.sale"
    client = raw_client(redis_url)
    try:
        async with bus:
            # Another program broke the dead-letter key: every dead-letter write fails.
            await client.set(f"{redis_prefix}:dead", "not a stream")
            entries: list[Fields] = []
            valid_ids: list[str] = []
            for index in range(20):
                event_id, valid = _valid(index)
                valid_ids.append(event_id)
                entries += [{b"e": b"{garbage " + str(index).encode()}, valid]
            entry_ids = await _write(client, stream, entries)
            await books.wait_for(20)  # the valid ones still flow
            assert await _pending(client, stream, "books") == 20  # bad ones: not acknowledged

            await client.delete(f"{redis_prefix}:dead")
            await bus.drain(timeout=30)
            letters = await bus.dead_letters()
            assert await _pending(client, stream, "books") == 0
    finally:
        await client.aclose()
    assert Counter(books.ids) == Counter(valid_ids)
    assert sorted(letter.position or "" for letter in letters) == sorted(
        entry_id.decode() for entry_id in entry_ids[0::2]
    )
    assert all("not JSON" in letter.error_message for letter in letters)


async def test_bad_bytes_on_the_live_channel_and_in_the_dead_letters_break_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    books = Recorder[PoisonSale]()
    bus.subscribe(PoisonSale, books, name="books")
    bad = [
        fields.get(b"e", b"")
        for _, fields in fixed_corpus("poison.sale", PoisonOther(note="x"), VALID_DATA)
    ]
    client = raw_client(redis_url)
    try:
        async with bus, bus.listen(PoisonSale) as feed:
            # Another program: garbage on the live channel, and in the dead-letter stream.
            pipe = client.pipeline(transaction=False)
            for payload in bad:
                pipe.publish(f"{redis_prefix}:live:poison.sale", payload)
                pipe.publish(f"{redis_prefix}:live:poison.sale", b"1-1 " + payload)
            pipe.xadd(f"{redis_prefix}:dead", {"junk": b"\xff"})
            await pipe.execute()
            event_id = await bus.emit(PoisonSale(sale_id=1, till="A"))
            async with asyncio.timeout(10):
                received = await anext(aiter(feed))
            await books.wait_for(1)
            await bus.drain(timeout=10)
            (junk,) = await bus.dead_letters()  # listed, with what could be read
            with pytest.raises(DeadLetterNotFoundError, match="not a dead letter"):
                await bus.retry_dead_letter(junk)
            resumed = await bus.events_after(books.ids[0], PoisonSale)
    finally:
        await client.aclose()
    assert received.id == event_id
    assert books.ids == [event_id]
    assert junk.subscriber == ""
    assert junk.envelope is None
    assert resumed == []
