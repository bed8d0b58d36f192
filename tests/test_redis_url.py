"""Redis URL query options against a real server: a wrong option fails at once, while the
server is up; accepted ones reach the connection as typed values."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from hookbus import ConfigurationError, Event, EventBus, RedisOptions, Settings
from hookbus._redis.client import make_client
from hookbus._redis.keys import Keys
from hookbus.testing import Recorder, test_settings
from hookbus.testing.redis_server import RedisServer

AT_ONCE = 0.5  # seconds: no network wait at all (the emit timeout is 5 s)


class Beep(Event, name="url.beep"):
    n: int


async def start_and_stop(url: str, settings: Settings) -> None:
    """Build a bus for ``url``, start it and stop it."""
    async with EventBus(mode="redis", redis_url=url, settings=settings):
        pass


@pytest.mark.redis
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("foo=bar", "option 'foo' is not accepted (unknown option)"),
        ("cluster=maybe", "cluster='maybe' is invalid: expected a boolean"),
        ("socket_timeout=abc", "socket_timeout='abc' is invalid: expected a number of seconds"),
    ],
)
async def test_a_wrong_url_option_fails_at_once_while_redis_is_up(
    redis_server: RedisServer, redis_prefix: str, query: str, said: str
) -> None:
    base = f"redis://127.0.0.1:{redis_server.port}"
    settings = test_settings(redis=RedisOptions(prefix=redis_prefix))
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        await start_and_stop(f"{base}/0?{query}", settings)
    took = time.monotonic() - started
    assert said in str(info.value)
    assert took < AT_ONCE

    # The same server with accepted options: the event lands in the database ?db= names.
    bus = EventBus(
        mode="redis",
        redis_url=f"{base}?db=3&socket_timeout=4&socket_connect_timeout=2&socket_keepalive=off",
        settings=settings,
    )
    rec = Recorder[Beep]()
    bus.subscribe(Beep, rec, name="rec")
    async with bus:
        event_id = await bus.emit(Beep(n=1))
        await rec.wait_for(1)
    assert rec.ids == [event_id]
    stream = Keys(redis_prefix).stream("url.beep")
    for db, expected in ((3, 1), (0, 0)):
        client = aioredis.Redis.from_url(f"{base}/{db}")
        try:
            assert await client.exists(stream) == expected
        finally:
            await client.aclose()


@pytest.mark.parametrize("blocking", [False, True])
async def test_url_options_reach_the_client_typed(blocking: bool) -> None:
    settings = Settings(
        mode="redis",
        redis_url="redis://cache:6379?db=2&socket_timeout=1.5&socket_connect_timeout=0.5"
        "&socket_keepalive=off",
        redis=RedisOptions(block=0.25),
    )
    client = make_client(settings, blocking=blocking)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["db"] == 2
        assert kwargs["socket_connect_timeout"] == 0.5
        assert kwargs["socket_keepalive"] is False  # "off" is false, as for every hookbus bool
        # A blocking read waits `block` plus a margin beyond the command timeout.
        assert kwargs["socket_timeout"] == (0.25 + 2.0 if blocking else 1.5)
        assert kwargs["retry_on_timeout"] is False
    finally:
        await client.aclose()
