"""Trace propagation across two processes in redis mode: an emitter and a worker, each
traced with the OpenTelemetry SDK (tests/tracing_process.py), their spans compared."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from redis_helpers import clean_env

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]

SCRIPT = Path(__file__).with_name("tracing_process.py")


async def run(role: str, url: str, prefix: str, out: Path) -> asyncio.subprocess.Process:
    env = clean_env(PYTHONPATH=str(SCRIPT.parent))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        role,
        url,
        prefix,
        str(out),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 45) -> None:
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(f"process did not finish: {output.decode()}") from None
    assert process.returncode == 0, output.decode()


def one(spans: list[dict[str, Any]], name: str, **attributes: Any) -> dict[str, Any]:
    found = [
        s for s in spans if s["name"] == name and attributes.items() <= s["attributes"].items()
    ]
    assert len(found) == 1, (name, attributes, spans)
    return found[0]


async def test_a_handler_in_another_process_continues_the_emitters_trace(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    worker = await run("work", redis_url, redis_prefix, tmp_path / "worker.json")
    try:
        assert worker.stdout is not None
        async with asyncio.timeout(30):
            line = await worker.stdout.readline()
        assert line.strip() == b"ready", line
        emitter = await run("emit", redis_url, redis_prefix, tmp_path / "emitter.json")
        await finish(emitter)
        await finish(worker)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    emitted = json.loads((tmp_path / "emitter.json").read_text())
    worked = json.loads((tmp_path / "worker.json").read_text())
    event_id = emitted["ordered"]

    request = one(emitted["spans"], "POST /orders")
    emit = one(emitted["spans"], "emit xtrace.ordered")
    assert emit["kind"] == "PRODUCER"
    assert (emit["trace_id"], emit["parent_id"]) == (request["trace_id"], request["span_id"])
    assert emit["attributes"] == {
        "messaging.system": "redis",
        "messaging.destination.name": "xtrace.ordered",
        "messaging.operation.type": "send",
        "messaging.operation.name": "emit",
        "messaging.message.id": event_id,
    }

    spans = worked["spans"]
    failed = one(spans, "handle xtrace.ordered", **{"hookbus.delivery.attempt": 1})
    handled = one(spans, "handle xtrace.ordered", **{"hookbus.delivery.attempt": 2})
    for span in (failed, handled):
        assert span["kind"] == "CONSUMER"
        assert span["trace_id"] == emit["trace_id"]  # the same trace, across processes
        assert span["parent_id"] == emit["span_id"]
        assert span["parent_is_remote"] is True
        assert span["attributes"]["messaging.system"] == "redis"
        assert span["attributes"]["messaging.destination.name"] == "xtrace.ordered"
        assert span["attributes"]["messaging.operation.type"] == "process"
        assert span["attributes"]["messaging.operation.name"] == "handle"
        assert span["attributes"]["messaging.consumer.group.name"] == "warehouse"
        assert span["attributes"]["messaging.message.id"] == event_id
    assert failed["status"] == "ERROR"
    assert failed["attributes"]["error.type"] == "ConnectionError"
    assert handled["status"] == "UNSET"
    assert "error.type" not in handled["attributes"]

    # the handler's own emit: a child of its span, and handled in the same trace
    shipped = worked["shipped"]
    child_emit = one(spans, "emit xtrace.shipped")
    assert child_emit["parent_id"] == handled["span_id"]
    assert child_emit["trace_id"] == emit["trace_id"]
    assert child_emit["attributes"]["messaging.message.conversation_id"] == event_id
    audit = one(spans, "handle xtrace.shipped")
    assert audit["trace_id"] == emit["trace_id"]
    assert audit["parent_id"] == child_emit["span_id"]
    # and the envelope names its cause and its correlation across processes
    assert shipped["causation_id"] == event_id
    assert shipped["correlation_id"] == event_id
    assert child_emit["attributes"]["messaging.message.id"] == shipped["id"]
