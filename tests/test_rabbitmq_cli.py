"""The ``hookbus`` command in rabbitmq mode: a worker that stops cleanly on SIGTERM, and
``hookbus dead-letters`` listing, re-queueing and discarding, unchanged from redis mode."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from apps.shop import SUBSCRIBERS, SaleClosed
from hookbus import BusUnavailableError
from hookbus.testing import Recorder
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus
from redis_helpers import (
    SHOP_TARGET,
    WorkerPool,
    clean_env,
    run_cli,
    sale,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(120)]


def files(record_dir: Path, what: str) -> dict[str, int]:
    """How many ``<subscriber>.<sale>.<what>`` files each subscriber has."""
    counts = dict.fromkeys(SUBSCRIBERS, 0)
    for name in os.listdir(record_dir):
        subscriber, _, kind = name.split(".")
        if kind == what:
            counts[subscriber] += 1
    return counts


async def test_worker_handles_stops_on_sigterm_and_dead_letters_command_works(
    rabbitmq_server: RabbitMQServer, workers: WorkerPool, tmp_path: Path
) -> None:
    prefix = new_prefix()
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    env = clean_env(
        EVENT_BUS_MODE="rabbitmq",
        HOOKBUS_AMQP_URL=rabbitmq_server.url,
        HOOKBUS_AMQP_PREFIX=prefix,
        HOOKBUS_MAX_ATTEMPTS="2",
        HOOKBUS_RETRY_BASE_DELAY="0.001",
        HOOKBUS_RETRY_MAX_DELAY="0.005",
        SHOP_RECORD_DIR=str(record_dir),
    )
    admin_env = {**env, "HOOKBUS_CONSUME": "0"}

    async def admin(*args: str) -> tuple[int, str, str]:
        result = await asyncio.to_thread(run_cli, ["dead-letters", *args], admin_env)
        return result.returncode, result.stdout, result.stderr

    failing = workers.start({**env, "SHOP_FAIL_SUBSCRIBER": "invoices"}, name="failing")
    await failing.wait_ready()
    assert "mode=rabbitmq, 2 subscription(s)" in failing.log()
    emitter = rabbitmq_bus(rabbitmq_server.url, prefix, consume=False)
    async with emitter:
        ids = [await emitter.emit(sale(i)) for i in range(3)]

        async def settled() -> bool:
            done = files(record_dir, "handled")["accounting"] == 3
            return done and len(await emitter.dead_letters()) == 3

        await wait_until(settled, 30, "3 sales booked and 3 dead letters")
        assert files(record_dir, "called")["invoices"] == 3
        failing.send(signal.SIGTERM)
        assert await failing.wait_exit(10) == 0, failing.log()
        assert "hookbus worker stopped" in failing.log()

        code, out, err = await admin("list", "--app", SHOP_TARGET)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[-1] == "3 dead letter(s)"
        rows = [line.split() for line in lines[:-1]]
        assert sorted(row[3] for row in rows) == sorted(ids)
        for row, line in zip(rows, lines, strict=False):
            assert row[1:3] == ["invoices", "shop.sale_closed"]
            assert row[4] == "attempts=2"
            assert "RuntimeError: invoices always fails" in line
        letters = [row[0] for row in rows]
        assert await admin("list", "--subscriber", "accounting") == (0, "0 dead letter(s)\n", "")
        code, out, _ = await admin("discard", letters[0], "--yes")
        assert (code, out) == (0, f"discarded {letters[0]}\n")

        # A healthy worker takes the re-queued one.
        healthy = workers.start(env, name="healthy")
        await healthy.wait_ready()
        code, out, _ = await admin("retry", letters[1], "--yes")
        assert (code, out) == (0, f"re-queued {letters[1]}\n")

        async def requeued_handled() -> bool:
            return files(record_dir, "handled")["invoices"] == 1

        await wait_until(requeued_handled, 30, "the re-queued sale handled")
        code, out, _ = await admin("list")
        assert out.splitlines()[-1] == "1 dead letter(s)"
        assert letters[2] in out
        healthy.send(signal.SIGTERM)
        assert await healthy.wait_exit(10) == 0, healthy.log()


async def test_emit_fails_within_emit_timeout_while_the_broker_is_down() -> None:
    with RabbitMQServer() as server:
        bus = rabbitmq_bus(server.url, new_prefix(), emit_timeout=1.5)
        books = Recorder[SaleClosed]()
        bus.subscribe(SaleClosed, books, name="books")
        async with bus:
            await bus.emit(sale(1))
            await asyncio.to_thread(server.stop)
            started = time.monotonic()
            with pytest.raises(BusUnavailableError):
                await bus.emit(sale(2))
            took = time.monotonic() - started
            await asyncio.to_thread(server.start)
            async with asyncio.timeout(30):  # the connection comes back by itself
                while True:
                    try:
                        await bus.emit(sale(3))
                        break
                    except BusUnavailableError:
                        continue
            await books.wait_for(2, timeout=30)
    assert took < 4
    assert {e.sale_id for e in books.events} >= {1, 3}
