"""Replaying a subscriber's events from an event id or a point in time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hookbus import ConfigurationError, Event, EventBus, UnsupportedError
from hookbus.testing import Recorder
from redis_bus import redis_bus

pytestmark = pytest.mark.redis


class Stocked(Event, name="replay.stocked"):
    n: int


async def test_replay_from_an_event_id_redelivers_to_that_subscriber_only(
    redis_url: str, redis_prefix: str
) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    audit, mail = Recorder[Stocked](), Recorder[Stocked]()
    bus.subscribe(Stocked, audit, name="audit")
    bus.subscribe(Stocked, mail, name="mail")
    async with bus:
        ids = [await bus.emit(Stocked(n=n)) for n in range(5)]
        await bus.drain(timeout=10)
        await bus.replay("audit", since=ids[2])
        await audit.wait_for(8)
        await bus.drain(timeout=10)
    assert [e.n for e in audit.events] == [0, 1, 2, 3, 4, 2, 3, 4]
    assert [e.n for e in mail.events] == [0, 1, 2, 3, 4]


async def test_replay_from_a_point_in_time(redis_url: str, redis_prefix: str) -> None:
    bus = redis_bus(redis_url, redis_prefix)
    rec = Recorder[Stocked]()
    bus.subscribe(Stocked, rec, name="audit")
    async with bus:
        await bus.emit(Stocked(n=0))
        await bus.drain(timeout=10)
        middle = await _a_later_millisecond()
        await bus.emit(Stocked(n=1))
        await bus.drain(timeout=10)
        await bus.replay("audit", since=middle, event_type=Stocked)
        await rec.wait_for(3)
    assert [e.n for e in rec.events] == [0, 1, 1]


async def _a_later_millisecond() -> datetime:
    """A time in a later millisecond than now: stream ids count milliseconds, so an
    entry stored before it cannot share its millisecond."""
    start = datetime.now(UTC)
    await asyncio.sleep(0.002)  # the clock moves on by at least this much
    later = datetime.now(UTC)
    assert later >= start + timedelta(milliseconds=2)
    return later


async def test_replay_of_an_unknown_subscriber_is_refused(
    redis_url: str, redis_prefix: str
) -> None:
    async with redis_bus(redis_url, redis_prefix) as bus:
        with pytest.raises(ConfigurationError, match="not subscribed"):
            await bus.replay("nobody", since=datetime.now(UTC))


async def test_local_mode_cannot_replay() -> None:
    async with EventBus(mode="local") as bus:
        with pytest.raises(UnsupportedError):
            await bus.replay("audit", since=datetime.now(UTC))
