"""``hookbus status``, ``dead-letters``, ``replay`` and ``tail`` as real subprocesses, redis mode.

The shop app (``tests/apps/shop.py``) records every handling in Redis. Lag is made by
emitting while no worker runs, pending by a worker whose handlers block and that is then
killed (SIGKILL), dead letters by a worker whose ``invoices`` always fails.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

import pytest

from apps.shop import SUBSCRIBERS
from redis_helpers import (
    REPO_ROOT,
    SHOP_TARGET,
    WorkerPool,
    caught_up,
    clean_env,
    emitter_bus,
    free_port,
    handled,
    in_flight,
    raw_redis,
    run_cli,
    sale,
    shop_env,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

TYPE = "shop.sale_closed"


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = await asyncio.to_thread(run_cli, list(args), env)
    return result.returncode, result.stdout, result.stderr


async def status_json(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli("status", SHOP_TARGET, "--json", env=env)
    assert code in (0, 1), err
    return code, json.loads(out)


def rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["subscriber"]: row for row in status["subscribers"]}


def problems(status: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(p["kind"], p["subscriber"]) for p in status["problems"]]


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``python -m hookbus ARGS`` running, its stdout and stderr piped, stdin closed."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookbus",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_status_lag_pending_dead_letters_repair_and_replay(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    env = shop_env(redis_url, redis_prefix, HOOKBUS_CLAIM_IDLE="2", HOOKBUS_MAX_ATTEMPTS="2")
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        ids = [await bus.emit(sale(i)) for i in range(3)]

        # Lag: stored, no worker.
        code, status = await status_json(env)
        assert code == 1
        assert status["mode"] == "redis"
        assert status["event_types"] == [{"name": TYPE, "durable": True, "stored": 3}]
        for subscriber in SUBSCRIBERS:
            row = rows(status)[subscriber]
            assert (row["lag"], row["pending"], row["consumers"], row["dead_letters"]) == (
                3,
                0,
                0,
                0,
            )
            assert row["declared"] is True
        assert problems(status) == [("no_consumer", s) for s in SUBSCRIBERS]
        code, text, _ = await cli("status", SHOP_TARGET, env=env)
        assert code == 1
        assert "accounting / shop.sale_closed: no live consumer: 3 event(s) wait" in text
        assert "2 problem(s), needs attention" in text

        # Pending: a worker holds the events (its handlers block), then dies.
        blocked = workers.start({**env, "SHOP_HANDLER_DELAY": "60"}, name="blocked")
        await blocked.wait_ready()
        await wait_until(in_flight(client, redis_prefix, 0), 20, "both handlers to start")
        code, status = await status_json(env)
        for subscriber in SUBSCRIBERS:
            row = rows(status)[subscriber]
            assert (row["lag"], row["pending"], row["consumers"]) == (0, 3, 1)
            assert row["oldest_pending_age"] >= 0
        assert code == 0, status["problems"]
        blocked.kill()

        async def consumers_gone() -> bool:
            _, now = await status_json(env)
            return all(row["consumers"] == 0 for row in now["subscribers"])

        await wait_until(consumers_gone, 15, "the killed worker to stop counting (claim_idle)")
        code, status = await status_json(env)
        assert code == 1
        assert [(r["pending"], r["lag"]) for r in status["subscribers"]] == [(3, 0), (3, 0)]
        assert problems(status) == [("no_consumer", s) for s in SUBSCRIBERS]

        # Dead letters: invoices always fails; the worker takes the pending entries over.
        failing = workers.start({**env, "SHOP_FAIL_SUBSCRIBER": "invoices"}, name="failing")

        async def dead_lettered() -> bool:
            _, now = await status_json(env)
            return rows(now)["invoices"]["dead_letters"] == 3 and all(
                r["pending"] == 0 for r in now["subscribers"]
            )

        await wait_until(dead_lettered, 30, "3 dead letters of invoices")
        code, status = await status_json(env)
        assert code == 1
        assert problems(status) == [("dead_letters", "invoices")]
        assert rows(status)["accounting"]["dead_letters"] == 0
        code, text, _ = await cli("status", SHOP_TARGET, env=env)
        assert "invoices / shop.sale_closed: 3 dead letter(s)" in text
        failing.send(signal.SIGTERM)
        assert await failing.wait_exit(10) == 0, failing.log()
        healthy = workers.start(env, name="healthy")
        await healthy.wait_ready()

        # dead-letters list / show
        code, out, err = await cli("dead-letters", "list", "--json", env=env)
        assert code == 0, err
        letters = json.loads(out)
        assert sorted(letter["event_id"] for letter in letters) == sorted(ids)
        assert {letter["subscriber"] for letter in letters} == {"invoices"}
        assert letters[0]["envelope"] is None or letters[0]["envelope"]["type"] == TYPE
        first = letters[0]["id"]
        code, out, _ = await cli("dead-letters", "show", first, "--app", SHOP_TARGET, env=env)
        assert code == 0
        assert "RuntimeError: invoices always fails" in out
        assert '"sale_id"' in out
        code, out, _ = await cli("dead-letters", "list", "--error", "nothing like it", env=env)
        assert (code, out) == (0, "0 dead letter(s)\n")

        # retry: gone from the dead letters, handled by the healthy worker.
        code, out, err = await cli("dead-letters", "retry", first, "--yes", env=env)
        assert (code, out, err) == (0, f"re-queued {first}\n", "")
        sale_id = next(i for i, event_id in enumerate(ids) if event_id == letters[0]["event_id"])

        async def retried() -> bool:
            return sale_id in await handled(client, redis_prefix, "invoices")

        await wait_until(retried, 30, "the retried dead letter to be handled")
        code, out, _ = await cli("dead-letters", "list", "--json", env=env)
        assert first not in [letter["id"] for letter in json.loads(out)]

        # discard: refused without --yes when stdin is not a terminal, then done with --yes.
        code, out, err = await cli("dead-letters", "discard", "--all", env=env)
        assert code == 2
        assert err.count("\n") == 1
        assert "refusing without --yes" in err
        code, out, err = await cli(
            "dead-letters", "discard", "--all", "--subscriber", "invoices", "--yes", env=env
        )
        assert code == 0, err
        assert len(out.splitlines()) == 2
        assert all(line.startswith("discarded ") for line in out.splitlines())
        code, out, err = await cli("dead-letters", "show", first, env=env)
        assert (code, out) == (1, "")
        assert err == f"hookbus: no dead letter with id '{first}'\n"

        # Healthy: exit 0.
        async def settled() -> bool:
            return all([await caught_up(client, redis_prefix, s) for s in SUBSCRIBERS])

        await wait_until(settled, 30, "both subscribers caught up")
        code, text, _ = await cli("status", SHOP_TARGET, env=env)
        assert code == 0, text
        assert text.rstrip().endswith("healthy")

        # replay: accounting sees the three sales again, invoices does not.
        before = await handled(client, redis_prefix, "accounting")
        assert before == {0: 1, 1: 1, 2: 1}
        code, out, err = await cli(
            "replay", "accounting", "--since", ids[0], "--app", SHOP_TARGET, env=env
        )
        assert code == 0, err
        assert out.startswith("replaying to accounting: 3 event(s) to deliver")
        assert "3/3" in err  # the progress bar, at its end
        assert await handled(client, redis_prefix, "accounting") == {0: 2, 1: 2, 2: 2}
        assert await handled(client, redis_prefix, "invoices") == {sale_id: 1}  # untouched
        code, status = await status_json(env)
        assert code == 0
        assert rows(status)["accounting"]["lag"] == 0


async def test_status_watch_sees_the_lag_grow(redis_url: str, redis_prefix: str) -> None:
    env = shop_env(redis_url, redis_prefix)
    async with emitter_bus(redis_url, redis_prefix) as bus:
        await bus.emit(sale(1))
        process = await spawn(
            "status",
            SHOP_TARGET,
            "--json",
            "--watch",
            "0.2",
            env=env,
        )
        try:
            assert process.stdout is not None
            first = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
            assert rows(first)["accounting"]["lag"] == 1
            await bus.emit(sale(2))
            while True:
                sample = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
                if rows(sample)["accounting"]["lag"] == 2:
                    break
            assert ("lag_growing", "accounting") in problems(sample)
            grew = next(p for p in sample["problems"] if p["kind"] == "lag_growing")
            assert grew["message"] == "lag grew from 1 to 2"
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 10) == 1  # the last status: attention
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_tail_prints_events_emitted_while_it_runs_and_stops_on_ctrl_c(
    redis_url: str, redis_prefix: str
) -> None:
    env = shop_env(redis_url, redis_prefix)
    process = await spawn(
        "tail",
        TYPE,
        "--app",
        SHOP_TARGET,
        "--json",
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        ready = await asyncio.wait_for(process.stderr.readline(), 20)
        assert b"listening to shop.sale_closed" in ready
        async with emitter_bus(redis_url, redis_prefix) as bus:
            emitted = [await bus.emit(sale(i)) for i in (41, 42)]
        lines = [await asyncio.wait_for(process.stdout.readline(), 10) for _ in emitted]
        envelopes = [json.loads(line) for line in lines]
        assert [e["id"] for e in envelopes] == emitted
        assert [e["type"] for e in envelopes] == [TYPE, TYPE]
        assert [e["data"]["sale_id"] for e in envelopes] == [41, 42]
        signalled = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert time.monotonic() - signalled < 5
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_tail_pretty_lines(redis_url: str, redis_prefix: str) -> None:
    env = shop_env(redis_url, redis_prefix)
    process = await spawn(
        "tail",
        "--app",
        SHOP_TARGET,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        await asyncio.wait_for(process.stderr.readline(), 20)
        async with emitter_bus(redis_url, redis_prefix) as bus:
            event_id = await bus.emit(sale(7))
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert f"  {TYPE}  {event_id}  " in line
        assert line.rstrip().endswith('{"sale_id": 7, "total": "0.07"}')
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_errors_are_one_line_with_their_exit_code(redis_url: str, redis_prefix: str) -> None:
    env = shop_env(redis_url, redis_prefix)
    down = f"redis://127.0.0.1:{free_port()}/0"
    unreachable = {**env, "HOOKBUS_EMIT_TIMEOUT": "1"}
    cases = [
        (["status", SHOP_TARGET, "--url", down], unreachable, 3, f"Redis at {down} unreachable"),
        (["dead-letters", "list", "--url", down], unreachable, 3, "unreachable"),
        (["status", "nope:bus"], env, 2, "cannot import 'nope'"),
        (
            ["replay", "nobody", "--since", "1h", "--app", SHOP_TARGET],
            env,
            2,
            "unknown subscriber 'nobody' in tests.apps.shop:bus "
            "(durable subscribers: accounting, invoices)",
        ),
        (["status", SHOP_TARGET, "--url", "http://example.com"], env, 2, "--url must start"),
        (["status", SHOP_TARGET, "--watch", "soon"], env, 2, "'soon' is not a valid float"),
        (["dead-letters", "retry", "--yes"], env, 2, "give dead letter ids, or --all"),
        (["tail", "no.such_type", "--app", SHOP_TARGET], env, 2, "no.such_type"),
        (["status", SHOP_TARGET], clean_env(EVENT_BUS_MODE="local"), 2, "local mode keeps"),
    ]
    for args, environment, expected, message in cases:
        code, out, err = await cli(*args, env=environment)
        assert code == expected, (args, out, err)
        assert err.startswith("hookbus: "), (args, err)
        assert err.count("\n") == 1, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err
