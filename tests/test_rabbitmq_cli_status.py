"""``hookbus status`` in rabbitmq mode: ready messages are the lag, the queue's consumers
the live processes, dead letters counted from the log; unacknowledged messages are not
visible over AMQP (``pending`` is ``None``, shown as "?")."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from apps.shop import SUBSCRIBERS, SaleClosed
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus
from redis_helpers import (
    SHOP_TARGET,
    WorkerPool,
    clean_env,
    free_port,
    run_cli,
    sale,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(120)]


async def status(env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    result = await asyncio.to_thread(run_cli, ["status", SHOP_TARGET, "--json"], env)
    assert result.returncode in (0, 1), result.stderr
    text = await asyncio.to_thread(run_cli, ["status", SHOP_TARGET], env)
    assert text.returncode == result.returncode
    return result.returncode, json.loads(result.stdout), text.stdout


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["subscriber"]: row for row in doc["subscribers"]}


async def test_status_in_rabbitmq_mode(
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
    emitter = rabbitmq_bus(rabbitmq_server.url, prefix, consume=False)

    async def never(event: object) -> None:
        raise AssertionError("consume=False")

    for subscriber in SUBSCRIBERS:
        emitter.subscribe(SaleClosed, never, name=subscriber)  # declares the queues
    async with emitter:
        for i in range(3):
            await emitter.emit(sale(i))
        code, doc, text = await status(env)
        assert code == 1
        assert doc["mode"] == "rabbitmq"
        for subscriber in SUBSCRIBERS:
            row = rows(doc)[subscriber]
            assert (row["lag"], row["pending"], row["consumers"], row["dead_letters"]) == (
                3,
                None,
                0,
                0,
            )
        assert [p["kind"] for p in doc["problems"]] == ["no_consumer", "no_consumer"]
        assert "accounting / shop.sale_closed: no live consumer: 3 event(s) wait" in text
        assert "        ?" in text  # pending: unknown over AMQP

        failing = workers.start({**env, "SHOP_FAIL_SUBSCRIBER": "invoices"}, name="failing")
        await failing.wait_ready()

        async def settled() -> bool:
            _, now, _ = await status(env)
            return rows(now)["invoices"]["dead_letters"] == 3 and all(
                row["lag"] == 0 and row["consumers"] == 1 for row in now["subscribers"]
            )

        await wait_until(settled, 30, "3 dead letters and both queues empty")
        code, doc, text = await status(env)
        assert code == 1
        assert [(p["kind"], p["subscriber"]) for p in doc["problems"]] == [
            ("dead_letters", "invoices")
        ]
        assert "invoices / shop.sale_closed: 3 dead letter(s)" in text
        assert len(os.listdir(record_dir)) >= 6

        discarded = await asyncio.to_thread(
            run_cli, ["dead-letters", "discard", "--all", "--yes"], env
        )
        assert discarded.returncode == 0, discarded.stderr
        code, doc, text = await status(env)
        assert code == 0, doc["problems"]
        assert text.rstrip().endswith("healthy")
        failing.kill()

        async def consumer_gone() -> bool:
            _, now, _ = await status(env)
            return all(row["consumers"] == 0 for row in now["subscribers"])

        await wait_until(consumer_gone, 30, "the killed worker's consumers to go")

    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result = await asyncio.to_thread(
        run_cli, ["status", SHOP_TARGET, "--url", down], {**env, "HOOKBUS_EMIT_TIMEOUT": "1"}
    )
    assert result.returncode == 3
    assert result.stderr.startswith("hookbus: RabbitMQ at amqp://***@127.0.0.1")
    assert result.stderr.count("\n") == 1
