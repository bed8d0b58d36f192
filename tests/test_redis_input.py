"""Entries that are not valid hookbus envelopes go to the dead-letter stream, with the
reason; the consumer keeps going."""

from __future__ import annotations

import json

import pytest

from hookbus import Event
from hookbus.testing import Recorder
from redis_bus import raw_client, redis_bus

pytestmark = pytest.mark.redis


class Coupon(Event, name="input.coupon"):
    code: str


def _envelope(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "specversion": "1.0",
        "id": "01a2141e-8b09-7b01-9217-092730125720",
        "source": "other-program",
        "type": "input.coupon",
        "data": {"code": "WELCOME"},
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"payload": "hello"}, "no 'e' field"),
        ({"e": b"{truncated"}, "not JSON"),
        ({"e": _envelope(type="input.nonexistent")}, "unknown event type"),
        ({"e": _envelope(data={"code": 12})}, "invalid data"),
        ({"e": _envelope(data={"code": "x" * 5000})}, "above max_event_size"),
        ({"e": _envelope(specversion="0.3")}, "specversion"),
    ],
    ids=["foreign", "truncated", "unknown-type", "invalid-data", "oversized", "specversion"],
)
async def test_bad_entry_is_dead_lettered_and_consumption_goes_on(
    redis_url: str, redis_prefix: str, fields: dict[str, object], reason: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix, bus_options={"max_event_size": 4096})
    rec = Recorder[Coupon]()
    bus.subscribe(Coupon, rec, name="checkout")
    client = raw_client(redis_url)
    try:
        async with bus:
            await client.xadd(f"{redis_prefix}:stream:input.coupon", fields)
            await bus.emit(Coupon(code="AFTER"))
            (event,) = await rec.wait_for(1)
            await bus.drain(timeout=10)
            (letter,) = await bus.dead_letters()
    finally:
        await client.aclose()
    assert event.code == "AFTER"
    assert letter.subscriber == "checkout"
    assert letter.event is None
    assert letter.error_type == "hookbus.InvalidEnvelopeError"
    assert reason in letter.error_message
    assert letter.payload == fields.get("e", b"")


async def test_valid_envelope_written_by_another_program_is_handled(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    rec = Recorder[Coupon]()
    bus.subscribe(Coupon, rec, name="checkout")
    client = raw_client(redis_url)
    try:
        async with bus:
            await client.xadd(f"{redis_prefix}:stream:input.coupon", {"e": _envelope()})
            (event,) = await rec.wait_for(1)
    finally:
        await client.aclose()
    assert event == Coupon(code="WELCOME")
    assert rec.ids == ["01a2141e-8b09-7b01-9217-092730125720"]
