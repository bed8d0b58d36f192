"""Shared fixtures.

Redis: the tests that need a server use ``redis_server`` (or ``redis_url``) and carry
``@pytest.mark.redis``; they run once per server binary that
:func:`hookbus.testing.redis_server.find_server_binaries` finds (``redis-server`` and
``valkey-server`` on PATH, or ``HOOKBUS_TEST_REDIS_SERVERS=path1,path2``), with ids such as
``redis-7.0.15`` and ``valkey-8.0.1``. When no server can be found those tests fail with the
reason, unless ``HOOKBUS_SKIP_REDIS=1``, which turns that failure into a skip.

Redis Cluster: the tests that need one carry ``@pytest.mark.cluster`` too, and use
``redis_cluster`` (three masters and three replicas shared by the whole session, on the first
binary found) or, to kill nodes, ``fresh_redis_cluster`` (a cluster of their own).

RabbitMQ: the tests that need a broker carry ``@pytest.mark.rabbitmq`` and use
``rabbitmq_server`` (one node shared by the session) or ``rabbitmq_cluster`` (three nodes shared
by the session, started only when a test asks for it), from
:mod:`hookbus.testing.rabbitmq_server` (Debian's ``rabbitmq-server`` package, or the script
named in ``HOOKBUS_TEST_RABBITMQ``). When RabbitMQ is not installed those tests fail with the
reason, unless ``HOOKBUS_SKIP_RABBITMQ=1``, which turns that failure into a skip.

PostgreSQL: the tests that need a server carry ``@pytest.mark.postgres`` and use
``postgres_server`` (one server shared by the session, from
:mod:`hookbus.testing.postgres_server`: Debian's ``postgresql`` package, or the binaries in
``HOOKBUS_TEST_POSTGRES_BIN``) or ``postgres_url`` (a fresh database of the test's own). When
PostgreSQL is not installed those tests fail with the reason, unless
``HOOKBUS_SKIP_POSTGRES=1``, which turns that failure into a skip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from hookbus.testing.postgres_server import PostgresServer, find_postgres
from hookbus.testing.rabbitmq_server import RabbitMQCluster, RabbitMQServer, find_rabbitmq
from hookbus.testing.redis_cluster import RedisCluster
from hookbus.testing.redis_server import RedisServer, find_server_binaries, server_name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis: needs a real Redis-compatible server (see the redis_server fixture)"
    )
    config.addinivalue_line(
        "markers", "cluster: needs a real local Redis Cluster (see the redis_cluster fixture)"
    )
    config.addinivalue_line(
        "markers", "rabbitmq: needs a real RabbitMQ broker (see the rabbitmq_server fixture)"
    )
    config.addinivalue_line(
        "markers", "postgres: needs a real PostgreSQL server (see the postgres_server fixture)"
    )


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """When pytest-timeout's alarm ends a test, print every asyncio task's stack first
    (its own report shows the threads only, where an awaited stall is invisible)."""
    previous = signal.getsignal(signal.SIGALRM)
    if not callable(previous):
        yield
        return

    def dump_tasks_then_fail(signum: int, frame: FrameType | None) -> None:
        _print_asyncio_tasks()
        previous(signum, frame)

    signal.signal(signal.SIGALRM, dump_tasks_then_fail)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGALRM) is dump_tasks_then_fail:
            signal.signal(signal.SIGALRM, previous)


def _print_asyncio_tasks() -> None:
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:  # no loop running: the thread dump says it all
        return
    print(f"\n--- {len(tasks)} asyncio task(s) at the timeout ---", file=sys.stderr)
    for task in tasks:
        print(f"- {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


def _server_binary_params() -> list[Any]:
    """One param per server binary, or a single param carrying the reason none was found."""
    try:
        return [pytest.param(binary, id=server_name(binary)) for binary in find_server_binaries()]
    except RuntimeError as exc:
        if os.environ.get("HOOKBUS_SKIP_REDIS") == "1":
            reason = f"HOOKBUS_SKIP_REDIS=1 and no Redis server: {exc}"
            return [pytest.param(exc, id="no-redis-server", marks=pytest.mark.skip(reason=reason))]
        return [pytest.param(exc, id="no-redis-server")]


@pytest.fixture(scope="session", params=_server_binary_params())
def redis_server_binary(request: pytest.FixtureRequest) -> str:
    """Path of a Redis-compatible server binary; the tests using it run once per binary."""
    param: str | RuntimeError = request.param
    if isinstance(param, RuntimeError):
        pytest.fail(f"no Redis server for the tests: {param}", pytrace=False)
    return param


@pytest.fixture(scope="session")
def redis_server(redis_server_binary: str) -> Iterator[RedisServer]:
    """A server shared by the whole session (stopped at its end): give keys a ``redis_prefix``."""
    with RedisServer(redis_server_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_binary() -> str:
    """The server binary clusters are made of: the first one found (see ``redis_server``)."""
    try:
        return find_server_binaries()[0]
    except RuntimeError as exc:
        if os.environ.get("HOOKBUS_SKIP_REDIS") == "1":
            pytest.skip(f"HOOKBUS_SKIP_REDIS=1 and no Redis server: {exc}")
        pytest.fail(f"no Redis server for the tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def redis_cluster(redis_cluster_binary: str) -> Iterator[RedisCluster]:
    """A Redis Cluster (3 masters, 3 replicas) shared by the whole session: kill no node of it
    (use ``fresh_redis_cluster``), and give keys a ``redis_prefix``."""
    with RedisCluster(redis_cluster_binary) as cluster:
        yield cluster


@pytest.fixture
def fresh_redis_cluster(redis_cluster_binary: str) -> Iterator[RedisCluster]:
    """A Redis Cluster (3 masters, 3 replicas) of the test's own, closed after it."""
    with RedisCluster(redis_cluster_binary) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def rabbitmq_server_script() -> str:
    """The ``rabbitmq-server`` script the RabbitMQ fixtures start nodes with."""
    try:
        return find_rabbitmq()
    except RuntimeError as exc:
        if os.environ.get("HOOKBUS_SKIP_RABBITMQ") == "1":
            pytest.skip(f"HOOKBUS_SKIP_RABBITMQ=1 and no RabbitMQ: {exc}")
        pytest.fail(f"no RabbitMQ for the tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def rabbitmq_server(rabbitmq_server_script: str) -> Iterator[RabbitMQServer]:
    """One RabbitMQ node shared by the whole session (closed at its end): give queues unique
    names. Its ``url`` logs in as the tests' user on the tests' vhost."""
    with RabbitMQServer(rabbitmq_server_script) as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_cluster(rabbitmq_server_script: str) -> Iterator[RabbitMQCluster]:
    """A 3-node RabbitMQ cluster shared by the whole session (started on first use): a test
    that kills a node restarts it before it ends; give queues unique names."""
    with RabbitMQCluster(rabbitmq_server_script) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server shared by the whole session (closed at its end): give each test a
    database of its own (``postgres_url``)."""
    try:
        bin_dir = find_postgres()
    except RuntimeError as exc:
        if os.environ.get("HOOKBUS_SKIP_POSTGRES") == "1":
            pytest.skip(f"HOOKBUS_SKIP_POSTGRES=1 and no PostgreSQL: {exc}")
        pytest.fail(f"no PostgreSQL for the tests: {exc}", pytrace=False)
    with PostgresServer(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+asyncpg://``) of a fresh database made for the test on the
    shared server, and dropped after it."""
    name = "t" + uuid.uuid4().hex[:12]
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the shared server, e.g. ``redis://127.0.0.1:PORT/0``."""
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to the test, so tests sharing the server don't see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hookbus or shop variable in this process's environment for the test: the
    bus and the demo run with their documented defaults."""
    for var in [v for v in os.environ if v.startswith(("EVENT_BUS_", "HOOKBUS_", "SHOP_"))]:
        monkeypatch.delenv(var)
