"""What hookbus logs: standard logging records with structured extras (hookbus._logging)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from hookbus import Event, EventBus, RetryPolicy
from hookbus.testing import Recorder, test_settings
from redis_bus import redis_bus

SRC = Path(__file__).resolve().parents[1] / "src" / "hookbus"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
CLI = SRC / "cli"  # the command line prints and logs for a person at a terminal


class Booked(Event, name="logging.booked"):
    n: int


class Pinged(Event, name="logging.pinged", durable=False):
    n: int


def calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of ``logger.<level>(...)`` (name "logger") or ``print(...)`` (name "print")."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if name == "print" and isinstance(func, ast.Name) and func.id == "print":
                found.append((path, node))
            if (
                name == "logger"
                and isinstance(func, ast.Attribute)
                and func.attr in LEVELS
                and isinstance(func.value, ast.Name)
                and func.value.id == "logger"
            ):
                found.append((path, node))
    return found


def test_every_log_call_passes_extras() -> None:
    bare = [
        f"{path.relative_to(SRC)}:{call.lineno}"
        for path, call in calls("logger")
        if CLI not in path.parents and not any(k.arg == "extra" for k in call.keywords)
    ]
    assert len(calls("logger")) > 30
    assert bare == []


def test_nothing_is_printed_outside_the_command_line() -> None:
    assert [
        f"{p.relative_to(SRC)}:{c.lineno}" for p, c in calls("print") if CLI not in p.parents
    ] == []


def extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k.startswith("hookbus.")}


def fail_always(event: Booked | Pinged, attempt: int) -> None:
    raise RuntimeError(f"refused {event.n}")


async def test_retry_dead_letter_and_dropped_records_carry_the_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hookbus")
    bus = EventBus(mode="local", settings=test_settings(retry=RetryPolicy(2, base_delay=0.001)))
    bus.subscribe(Booked, Recorder[Booked](fail_always), name="books")
    bus.subscribe(Pinged, Recorder[Pinged](fail_always), name="pings")
    async with bus:
        event_id = await bus.emit(Booked(n=1))
        ping_id = await bus.emit(Pinged(n=2))
        await bus.drain(10)
    records = [r for r in caplog.records if r.name == "hookbus"]
    retry = next(r for r in records if "retrying" in r.getMessage())
    assert retry.levelno == logging.INFO
    assert extras(retry) == {
        "hookbus.mode": "local",
        "hookbus.subscriber": "books",
        "hookbus.event_type": "logging.booked",
        "hookbus.event_id": event_id,
        "hookbus.attempt": 1,
    }
    dead = next(r for r in records if "gave up" in r.getMessage())
    assert dead.levelno == logging.ERROR
    assert extras(dead) == {
        "hookbus.mode": "local",
        "hookbus.subscriber": "books",
        "hookbus.event_type": "logging.booked",
        "hookbus.event_id": event_id,
        "hookbus.attempt": 2,
    }
    dropped = next(r for r in records if "ephemeral" in r.getMessage())
    assert dropped.levelno == logging.WARNING
    assert extras(dropped) == {
        "hookbus.mode": "local",
        "hookbus.subscriber": "pings",
        "hookbus.event_type": "logging.pinged",
        "hookbus.event_id": ping_id,
        "hookbus.attempt": 1,
    }
    # a plain formatter can show them
    formatter = logging.Formatter("%(hookbus.subscriber)s %(hookbus.event_id)s %(message)s")
    assert formatter.format(dead).startswith(f"books {event_id} subscriber books gave up")


@pytest.mark.redis
async def test_redis_dead_letter_record_carries_the_delivery(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookbus")
    bus = redis_bus(redis_url, redis_prefix)
    handler = Recorder[Booked](fail_always)
    bus.subscribe(Booked, handler, name="books")
    async with bus:
        event_id = await bus.emit(Booked(n=1))
        await handler.wait_for(3, calls=True)
        await bus.drain(10)
    records = [r for r in caplog.records if r.name == "hookbus"]
    retries = [r for r in records if "retrying" in r.getMessage()]
    assert [extras(r)["hookbus.attempt"] for r in retries] == [1, 2]
    assert {extras(r)["hookbus.mode"] for r in retries} == {"redis"}
    dead = next(r for r in records if "gave up" in r.getMessage())
    assert extras(dead) == {
        "hookbus.mode": "redis",
        "hookbus.subscriber": "books",
        "hookbus.event_type": "logging.booked",
        "hookbus.event_id": event_id,
        "hookbus.attempt": 3,
    }
