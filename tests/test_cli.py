"""The ``hookbus`` command as a real subprocess: ``worker`` (both modes) and ``dead-letters``
(status, tail and replay: tests/test_cli_status.py).

Workers run ``python -m hookbus worker tests.apps.shop:bus`` from the repository root, configured
by environment variables only; the shop app records every handling in Redis (see
``tests/apps/shop.py``), which is what these tests check.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from apps.shop import SUBSCRIBERS, SaleClosed
from redis_bus import redis_bus
from redis_helpers import (
    SALE_STREAM,
    SHOP_TARGET,
    WorkerPool,
    all_caught_up,
    calls,
    caught_up,
    clean_env,
    emitter_bus,
    free_port,
    handled,
    in_flight,
    pending,
    raw_redis,
    run_cli,
    sale,
    shop_env,
    wait_until,
    workers_fixture,  # noqa: F401 - the `workers` fixture
)

# --------------------------------------------------------------------------- worker, redis mode


@pytest.mark.redis
async def test_worker_handles_events_emitted_by_another_process(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    worker = workers.start(shop_env(redis_url, redis_prefix))
    await worker.wait_ready()
    assert "mode=redis, 2 subscription(s)" in worker.log()
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        ids = await asyncio.gather(*(bus.emit(sale(i)) for i in range(50)))
        assert len(set(ids)) == 50

        await wait_until(
            all_caught_up(client, redis_prefix), 30, "both subscribers to handle the 50 sales"
        )
        for subscriber in SUBSCRIBERS:
            assert await handled(client, redis_prefix, subscriber) == dict.fromkeys(range(50), 1)

    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(10) == 0, worker.log()


@pytest.mark.redis
async def test_sigterm_lets_the_handler_in_flight_finish_then_acknowledges(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    stop_timeout = 5.0
    env = shop_env(
        redis_url, redis_prefix, SHOP_HANDLER_DELAY="1", HOOKBUS_STOP_TIMEOUT=str(stop_timeout)
    )
    worker = workers.start(env)
    await worker.wait_ready()
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        await bus.emit(sale(7))
        await wait_until(in_flight(client, redis_prefix, 7), 20, "both handlers to start")
        for subscriber in SUBSCRIBERS:  # both handlers are sleeping: in flight
            assert await handled(client, redis_prefix, subscriber) == {}

        signalled = time.monotonic()
        worker.send(signal.SIGTERM)
        code = await worker.wait_exit(stop_timeout + 10)
        took = time.monotonic() - signalled

        assert code == 0, worker.log()
        assert took < stop_timeout, f"exit took {took:.2f}s"
        for subscriber in SUBSCRIBERS:
            assert await handled(client, redis_prefix, subscriber) == {7: 1}
            assert await pending(client, redis_prefix, subscriber) == 0
            assert await caught_up(client, redis_prefix, subscriber)
    log = worker.log()
    assert "hookbus worker stopping" in log
    assert "hookbus worker stopped" in log


@pytest.mark.redis
async def test_handler_outliving_the_stop_timeout_is_cancelled_and_redelivered_elsewhere(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    env = shop_env(redis_url, redis_prefix, HOOKBUS_CLAIM_IDLE="1")
    slow = workers.start({**env, "SHOP_HANDLER_DELAY": "60", "HOOKBUS_STOP_TIMEOUT": "0.5"})
    await slow.wait_ready()
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        await bus.emit(sale(3))
        await wait_until(in_flight(client, redis_prefix, 3), 20, "both handlers to start")

        signalled = time.monotonic()
        slow.send(signal.SIGTERM)
        assert await slow.wait_exit(15) == 0, slow.log()
        assert time.monotonic() - signalled < 0.5 + 4
        for subscriber in SUBSCRIBERS:  # cancelled: not handled, still pending
            assert await handled(client, redis_prefix, subscriber) == {}
            assert await pending(client, redis_prefix, subscriber) == 1

        workers.start(env, name="healthy")

        await wait_until(
            all_caught_up(client, redis_prefix),
            30,
            "another worker to take the cancelled entry over",
        )
        for subscriber in SUBSCRIBERS:
            assert await handled(client, redis_prefix, subscriber) == {3: 1}
            assert await calls(client, redis_prefix, subscriber) == {3: 2}


# --------------------------------------------------------------------------- worker, bad targets


@pytest.mark.parametrize(
    ("command", "target", "message"),
    [
        (["worker"], "nope:bus", "hookbus: cannot import 'nope'"),
        (["worker"], "tests.apps.shop:missing", "has no attribute 'missing'"),
        (["worker"], "tests.apps.shop:SUBSCRIBERS", "is tuple, not an EventBus"),
        (["worker"], "tests.apps.shop", "expected module:attribute"),
        (["dead-letters", "list", "--app"], "nope:bus", "hookbus: cannot import 'nope'"),
        (["status"], "nope:bus", "hookbus: cannot import 'nope'"),
    ],
)
def test_bad_target_exits_2_with_a_clear_message(
    command: list[str], target: str, message: str
) -> None:
    result = run_cli([*command, target], clean_env(EVENT_BUS_MODE="local"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "env", "message"),
    [
        ("tests.apps.shop:bus", {"EVENT_BUS_MODE": "bogus"}, "unknown event bus mode 'bogus'"),
        ("tests.apps.shop:SaleClosed", {"EVENT_BUS_MODE": "local"}, "SaleClosed"),
    ],
)
def test_errors_while_loading_the_target_are_reported_without_a_traceback(
    target: str, env: dict[str, str], message: str
) -> None:
    result = run_cli(["worker", target], clean_env(**env))
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.startswith("hookbus: "), result.stderr
    assert "Traceback" not in result.stderr


def test_worker_reports_an_unreachable_redis_and_exits_1() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = clean_env(EVENT_BUS_MODE="redis", HOOKBUS_REDIS_URL=url, HOOKBUS_EMIT_TIMEOUT="1")
    started = time.monotonic()
    result = run_cli(["worker", SHOP_TARGET], env)
    assert result.returncode == 1
    assert f"hookbus: Redis at {url} unreachable for 1.0s" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 15


# --------------------------------------------------------------------------- worker, local mode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_local_mode_worker_starts_and_stops_on_signal(
    workers: WorkerPool, sig: signal.Signals
) -> None:
    worker = workers.start(clean_env(EVENT_BUS_MODE="local"))
    await worker.wait_ready()
    assert "mode=local, 2 subscription(s)" in worker.log()
    worker.send(sig)
    assert await worker.wait_exit(10) == 0, worker.log()
    assert "hookbus worker stopped" in worker.log()


# --------------------------------------------------------------------------- dead-letters


@pytest.mark.redis
async def test_dead_letters_command_lists_retries_and_discards(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    env = shop_env(redis_url, redis_prefix, HOOKBUS_MAX_ATTEMPTS="2")
    # The admin command runs without consuming (see test_listing_dead_letters_runs_no_handler).
    admin_env = {**env, "HOOKBUS_CONSUME": "0"}
    dead_key = f"{redis_prefix}:dead"
    requeue_key = f"{redis_prefix}:requeue:shop.sale_closed:invoices"

    async def admin(*args: str) -> tuple[int, str, str]:
        result = await asyncio.to_thread(run_cli, ["dead-letters", *args], admin_env)
        return result.returncode, result.stdout, result.stderr

    failing = workers.start({**env, "SHOP_FAIL_SUBSCRIBER": "invoices"}, name="failing")
    await failing.wait_ready()
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        ids = [await bus.emit(sale(i)) for i in range(3)]

        async def settled() -> bool:
            groups = [await caught_up(client, redis_prefix, s) for s in SUBSCRIBERS]
            return all(groups) and await client.xlen(dead_key) == 3

        await wait_until(settled, 30, "3 dead letters and both groups caught up")
        assert await handled(client, redis_prefix, "accounting") == {0: 1, 1: 1, 2: 1}
        assert await calls(client, redis_prefix, "invoices") == {0: 2, 1: 2, 2: 2}
        failing.send(signal.SIGTERM)
        assert await failing.wait_exit(10) == 0, failing.log()

        code, out, err = await admin("list")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[-1] == "3 dead letter(s)"
        rows = [line.split() for line in lines[:-1]]
        assert sorted(row[3] for row in rows) == sorted(ids)
        # Oldest first: in the order they died (retries are jittered, so not
        # necessarily in the order the sales were emitted).
        positions = [tuple(int(part) for part in row[0].split("-")) for row in rows]
        assert positions == sorted(positions)
        for row, line in zip(rows, lines, strict=False):
            assert row[1:3] == ["invoices", "shop.sale_closed"]
            assert row[4] == "attempts=2"
            assert "RuntimeError: invoices always fails" in line
        letters = [row[0] for row in rows]

        assert await admin("list", "--subscriber", "accounting") == (0, "0 dead letter(s)\n", "")
        code, out, _ = await admin("list", "--limit", "1")
        assert code == 0
        assert out.splitlines()[0].startswith(letters[0])
        assert out.splitlines()[-1] == "1 dead letter(s)"

        assert await admin("retry", letters[0], "--yes") == (0, f"re-queued {letters[0]}\n", "")
        assert await client.xlen(dead_key) == 2
        assert await client.xlen(requeue_key) == 1
        assert await admin("discard", "--yes", letters[1]) == (0, f"discarded {letters[1]}\n", "")
        assert await client.xlen(dead_key) == 1
        code, _, err = await admin("discard", "--yes", letters[1])
        assert code == 1
        assert err == f"hookbus: no dead letter with id '{letters[1]}'\n"
        code, out, _ = await admin("list")
        assert [line.split()[0] for line in out.splitlines()[:-1]] == [letters[2]]

        workers.start(env, name="healthy")  # invoices works again: the re-queued sale 0

        async def requeued_handled() -> bool:
            done = await handled(client, redis_prefix, "invoices") == {0: 1}
            return done and await client.xlen(requeue_key) == 0

        await wait_until(requeued_handled, 30, "the re-queued dead letter to be handled")
        assert await handled(client, redis_prefix, "accounting") == {0: 1, 1: 1, 2: 1}
        assert await client.xlen(dead_key) == 1


@pytest.mark.redis
async def test_listing_dead_letters_runs_no_handler(redis_url: str, redis_prefix: str) -> None:
    env = shop_env(redis_url, redis_prefix)  # the environment the workers run with
    stream = f"{redis_prefix}:{SALE_STREAM}"
    letters = 2_000  # listed in several pages: the consumers it starts get to run meanwhile

    async def refuse(event: SaleClosed) -> None:
        raise RuntimeError("audit refuses every sale")

    audit = redis_bus(redis_url, redis_prefix)
    audit.subscribe(SaleClosed, refuse, name="audit", max_attempts=1)
    async with emitter_bus(redis_url, redis_prefix) as bus, raw_redis(redis_url) as client:
        async with audit:
            for first in range(0, letters, 500):
                await asyncio.gather(*(bus.emit(sale(i)) for i in range(first, first + 500)))
            await audit.drain(60)
        # accounting and invoices have a backlog of 2,000 sales; no worker runs
        for run in range(3):
            result = await asyncio.to_thread(
                run_cli, ["dead-letters", "list", "--app", SHOP_TARGET], env
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.endswith(f"\n{letters} dead letter(s)\n")
            for group in SUBSCRIBERS:
                consumers = await client.xinfo_consumers(stream, group)
                held = await pending(client, redis_prefix, group)
                assert consumers == [], (
                    f"listing #{run + 1} joined group {group!r} as a consumer, "
                    f"{held} entr(y/ies) left pending"
                )
                assert await calls(client, redis_prefix, group) == {}


@pytest.mark.redis
async def test_dead_letters_command_shows_where_an_undecodable_entry_came_from(
    redis_url: str, redis_prefix: str, workers: WorkerPool
) -> None:
    env = shop_env(redis_url, redis_prefix)
    worker = workers.start(env)
    await worker.wait_ready()
    stream = f"{redis_prefix}:{SALE_STREAM}"
    async with raw_redis(redis_url) as client:
        added = await client.xadd(stream, {"e": b"\xff\x00 not an envelope\nat all"})
        entry = added.decode() if isinstance(added, bytes) else added

        async def dead_lettered() -> bool:
            return bool(await client.xlen(f"{redis_prefix}:dead") == len(SUBSCRIBERS))

        await wait_until(dead_lettered, 30, "the dead letters")
    result = await asyncio.to_thread(
        run_cli, ["dead-letters", "list", "--app", SHOP_TARGET], {**env, "HOOKBUS_CONSUME": "0"}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{len(SUBSCRIBERS)} dead letter(s)"
    for line in lines[:-1]:
        assert "hookbus.InvalidEnvelopeError: not JSON" in line
        assert f"[from {stream} entry {entry}]" in line
        assert "[payload, 25 bytes: \\xff\\x00 not an envelope\\nat all]" in line
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(10) == 0, worker.log()
