"""Redis security features with hookbus: an ACL user confined to the prefix, TLS with
certificate verification, passwords. Failures must be HookbusErrors that say why, promptly."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from hookbus import BusUnavailableError, Event, EventBus, HookbusError
from hookbus._redis_options import RedisOptions
from hookbus.testing import Recorder, test_settings
from hookbus.testing.redis_server import RedisServer, TLSFiles, make_tls_files, supports_tls
from redis_helpers import wait_until

pytestmark = pytest.mark.redis

EMIT_TIMEOUT = 2.0
PROMPTLY = EMIT_TIMEOUT + 3.0  # seconds: the emit timeout, plus process and connect overheads


class Ping(Event, name="security.ping"):
    n: int


def make_bus(url: str, prefix: str, **options: Any) -> EventBus:
    redis_options = RedisOptions(prefix=prefix, emit_timeout=EMIT_TIMEOUT, **options)
    return EventBus(mode="redis", redis_url=url, settings=test_settings(redis=redis_options))


def always_fails(event: Ping, attempt: int) -> None:
    raise RuntimeError(f"ping {event.n} fails (attempt {attempt})")


async def start_fails(bus: EventBus) -> tuple[BaseException, float]:
    """Start ``bus``, which must fail; the error and how long it took."""
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is checked
        async with asyncio.timeout(30):  # never hang: that would be the worst answer
            await bus.start()
    await bus.stop()
    return caught.value, time.monotonic() - started


# --------------------------------------------------------------------------- ACL


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def acl_user(admin: redis.Redis, redis_prefix: str) -> Iterator[tuple[str, str]]:
    """A user allowed only the prefix's keys and channels, and no @dangerous command."""
    user, password = f"hookbus-{redis_prefix}", secrets.token_hex(12)
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        reset_keys=True,
        keys=[f"~{redis_prefix}:*"],
        reset_channels=True,
        channels=[f"{redis_prefix}:*"],  # redis-py adds the &
        categories=["+@all", "-@dangerous"],
    )
    try:
        yield user, password
    finally:
        admin.acl_deluser(user)


def user_url(server: RedisServer, user: str, password: str) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def denials(admin: redis.Redis, user: str) -> list[tuple[str, str]]:
    """(reason, object) of the ACL LOG entries of ``user``: what Redis refused it."""
    found = []
    for entry in cast(list[dict[Any, Any]], admin.acl_log(1000)):
        row = {_text(k): _text(v) for k, v in entry.items()}
        if row["username"] == user:
            found.append((row["reason"], row["object"]))
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_acl_user_confined_to_the_prefix_runs_every_feature(
    redis_server: RedisServer, redis_prefix: str, acl_user: tuple[str, str], admin: redis.Redis
) -> None:
    user, password = acl_user
    bus = make_bus(
        user_url(redis_server, user, password),
        redis_prefix,
        retention_maxlen=5,
        trim_interval=0.2,
        claim_idle=1.0,
        claim_interval=0.2,
    )
    good, bad = Recorder[Ping](), Recorder[Ping](fail=always_fails)
    bus.subscribe(Ping, good, name="good")
    bus.subscribe(Ping, bad, name="bad", max_attempts=2)
    async with bus:
        async with bus.listen(Ping) as feed:  # live channel
            await bus.drain(10)  # the listener is in place
            ids = [await bus.emit(Ping(n=i)) for i in range(10)]
            async with asyncio.timeout(10):
                seen = [(await anext(feed)).id for _ in range(10)]
        assert seen == ids
        await bus.drain(30)
        assert sorted(e.n for e in good.events) == list(range(10))

        letters = await bus.dead_letters("bad")  # dead-letter stream, transactions
        assert sorted(letter.event_id for letter in letters) == sorted(ids)
        assert {letter.attempts for letter in letters} == {2}
        await bus.retry_dead_letter(letters[0])  # re-queue stream; it fails again
        await bus.discard_dead_letter(letters[1])
        await bus.drain(30)
        assert len(await bus.dead_letters("bad")) == 9

        await bus.replay("good", since=ids[7])  # XGROUP SETID
        await bus.drain(30)
        assert sorted(e.n for e in good.events) == sorted([*range(10), 7, 8, 9])

        stream = f"{redis_prefix}:stream:security.ping"

        async def trimmed() -> bool:  # retention: the TRIM script (XINFO, XPENDING, XTRIM)
            return admin.xlen(stream) <= 5

        await wait_until(trimmed, 15, "the stream to be trimmed to its retention")
    assert denials(admin, user) == []


async def test_revoking_the_prefix_makes_emit_raise_a_bus_unavailable_error(
    redis_server: RedisServer, redis_prefix: str, acl_user: tuple[str, str], admin: redis.Redis
) -> None:
    user, password = acl_user
    bus = make_bus(user_url(redis_server, user, password), redis_prefix)
    async with bus:
        await bus.emit(Ping(n=1))
        admin.acl_setuser(user, enabled=True, reset_keys=True, keys=["~elsewhere:*"])
        started = time.monotonic()
        with pytest.raises(BusUnavailableError, match="ACL"):
            await bus.emit(Ping(n=2))
        assert time.monotonic() - started < PROMPTLY


async def noop(event: Ping) -> None:
    pass


@pytest.mark.parametrize("subscribed", [True, False], ids=["consumer", "emitter"])
async def test_user_without_access_to_the_prefix_fails_promptly(
    redis_server: RedisServer, acl_user: tuple[str, str], subscribed: bool
) -> None:
    bus = make_bus(user_url(redis_server, *acl_user), "someone-else")
    if subscribed:
        bus.subscribe(Ping, noop, name="nosy")
    _, took = await start_fails(bus)
    assert took < PROMPTLY


async def test_consumer_without_access_to_the_prefix_gets_a_hookbus_error(
    redis_server: RedisServer, acl_user: tuple[str, str]
) -> None:
    bus = make_bus(user_url(redis_server, *acl_user), "someone-else")
    bus.subscribe(Ping, noop, name="nosy")
    try:
        with pytest.raises(HookbusError, match=r"(?i)permission"):
            async with asyncio.timeout(30):
                await bus.start()
    finally:
        await bus.stop()


async def test_emitter_without_access_to_the_prefix_is_told_why(
    redis_server: RedisServer, acl_user: tuple[str, str]
) -> None:
    bus = make_bus(user_url(redis_server, *acl_user), "someone-else")
    error, _ = await start_fails(bus)
    assert isinstance(error, HookbusError)
    assert "permission" in str(error).lower(), str(error)


# --------------------------------------------------------------------------- passwords


@pytest.fixture
def password_server(redis_server_binary: str) -> Iterator[RedisServer]:
    with RedisServer(redis_server_binary, password="s3cret-" + secrets.token_hex(4)) as server:
        yield server


async def test_the_right_password_works(password_server: RedisServer, redis_prefix: str) -> None:
    bus = make_bus(password_server.url, redis_prefix)  # the URL carries the password
    rec = Recorder[Ping]()
    bus.subscribe(Ping, rec, name="rec")
    async with bus:
        await bus.emit(Ping(n=1))
        await rec.wait_for(1)


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [(":wrong-password@", "invalid username-password pair"), ("", "Authentication required")],
    ids=["wrong-password", "no-password"],
)
async def test_bad_credentials_give_a_hookbus_error_promptly(
    password_server: RedisServer, redis_prefix: str, credentials: str, reason: str
) -> None:
    url = f"redis://{credentials}127.0.0.1:{password_server.port}/0"
    bus = make_bus(url, redis_prefix)
    bus.subscribe(Ping, noop, name="rec")
    error, took = await start_fails(bus)
    assert isinstance(error, HookbusError), repr(error)
    assert reason in str(error)
    assert "wrong-password" not in str(error)  # the URL is shown without its password
    assert took < PROMPTLY


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_server(redis_server_binary: str, tmp_path: Path) -> Iterator[tuple[RedisServer, TLSFiles]]:
    if not supports_tls(redis_server_binary):
        pytest.skip(f"{redis_server_binary} was built without TLS")
    files = make_tls_files(tmp_path / "tls")
    with RedisServer(redis_server_binary, tls=files) as server:
        yield server, files


async def test_tls_with_certificate_verification_delivers(
    tls_server: tuple[RedisServer, TLSFiles], redis_prefix: str
) -> None:
    server, files = tls_server
    assert server.url.startswith("rediss://127.0.0.1:")
    bus = make_bus(f"{server.url}?ssl_ca_certs={files.ca_cert}", redis_prefix)
    rec = Recorder[Ping]()
    bus.subscribe(Ping, rec, name="rec")
    async with bus:
        ids = [await bus.emit(Ping(n=i)) for i in range(5)]
        await rec.wait_for(5)
        await bus.drain(10)
    assert sorted(rec.ids) == sorted(ids)


@pytest.mark.parametrize(
    ("scheme", "reason"),
    [("rediss", "certificate verify failed"), ("redis", "")],
    ids=["without-the-ca", "plaintext-to-tls-port"],
)
async def test_tls_failures_give_a_hookbus_error_promptly(
    tls_server: tuple[RedisServer, TLSFiles], redis_prefix: str, scheme: str, reason: str
) -> None:
    server, _ = tls_server
    bus = make_bus(f"{scheme}://127.0.0.1:{server.port}/0", redis_prefix)
    bus.subscribe(Ping, noop, name="rec")
    error, took = await start_fails(bus)
    assert isinstance(error, HookbusError), repr(error)
    assert reason in str(error)
    assert took < PROMPTLY
