"""The web demo under two uvicorn workers in redis mode (``--workers 2``): a feed served
by one worker shows what the other emitted, every critical event is handled once
per subscriber across both, each sale is booked once in the shared SQLite file (its
outbox emptied), and both follow a visitor's rename."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_server import demo_server
from hookbus.testing.rabbitmq_server import RabbitMQServer
from hookbus.testing.redis_server import RedisServer
from redis_helpers import clean_env, wait_until
from web_server import SSEReader

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(150)]

SERVED_BY = "x-served-by"
ARTICLES = 20


async def _served_by(base: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a fresh connection (so the kernel may hand it to either worker)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.request(method, path, **kwargs)
    response.raise_for_status()
    return response


class Feed:
    """Every event of one SSE connection, collected in the background."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def counters(self, subscriber: str, event_type: str) -> dict[str, int]:
        """Last reported counters of each process, added up."""
        last: dict[str, dict[str, int]] = {}
        for report in self.of_type("counters_reported"):
            for c in report["data"]["counters"]:
                if (c["subscriber"], c["event_type"]) == (subscriber, event_type):
                    last[report["data"]["process"]] = c
        keys = ("handled", "retried", "dead_lettered")
        return {k: sum(c[k] for c in last.values()) for k in keys}


@asynccontextmanager
async def feed_of(base: str) -> AsyncIterator[tuple[Feed, str]]:
    """An SSE connection to the demo's feed; yields the collected events and the
    process serving the connection."""
    feed = Feed()
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        client.stream("GET", "/events/stream") as response,
    ):
        assert response.status_code == 200
        reader = SSEReader(response.aiter_lines())

        async def collect() -> None:
            while True:
                feed.events.append(json.loads((await reader.next_event(60))["data"]))

        task = asyncio.create_task(collect())
        try:
            yield feed, response.headers[SERVED_BY]
        finally:
            task.cancel()


async def test_two_workers_share_one_bus(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    env = clean_env(
        EVENT_BUS_MODE="redis",
        HOOKBUS_REDIS_URL=redis_server.url,
        HOOKBUS_REDIS_PREFIX=redis_prefix,
        SHOP_IMPORT_PACE="0.005",
    )
    await _two_workers_share_one_bus(env, tmp_path)


@pytest.mark.rabbitmq
async def test_two_workers_share_one_bus_on_rabbitmq(
    rabbitmq_server: RabbitMQServer, tmp_path: Path
) -> None:
    env = clean_env(
        EVENT_BUS_MODE="rabbitmq",
        HOOKBUS_AMQP_URL=rabbitmq_server.url,
        HOOKBUS_AMQP_PREFIX="demo" + uuid.uuid4().hex[:8],
        SHOP_IMPORT_PACE="0.005",
    )
    await _two_workers_share_one_bus(env, tmp_path)


async def _two_workers_share_one_bus(env: dict[str, str], tmp_path: Path) -> None:
    with demo_server(env, tmp_path, workers=2) as server:
        processes: set[str] = set()

        async def both_answer() -> bool:
            response = await _served_by(server.base, "GET", "/api/meta")
            processes.add(response.json()["process"])
            return len(processes) == 2

        await wait_until(both_answer, 60, "both workers to answer")
        async with contextlib.AsyncExitStack() as stack:
            # One feed on each worker (the kernel hands each new connection to either).
            feeds: dict[str, Feed] = {}
            for _ in range(60):
                attempt = contextlib.AsyncExitStack()
                feed, process = await attempt.enter_async_context(feed_of(server.base))
                if process in feeds:
                    await attempt.aclose()
                    continue
                feeds[process] = feed
                stack.push_async_exit(attempt)
                if len(feeds) == 2:
                    break
            assert feeds.keys() == processes, "no feed connection reached both workers"

            # Whichever worker closes a sale, the feed on the other one must show it.
            served: list[tuple[int, str]] = []
            for _ in range(10):
                response = await _served_by(
                    server.base, "POST", "/api/till/sales", json={"total": "4.50"}
                )
                served.append((response.json()["sale_id"], response.headers[SERVED_BY]))
            started = await _served_by(
                server.base,
                "POST",
                "/api/imports",
                content=(await _served_by(server.base, "GET", "/api/imports/sample.csv")).text,
                headers={"content-type": "text/csv"},
            )
            articles = started.json()["articles"]
            sale_ids = [sale_id for sale_id, _ in served]

            async def every_sale_in_every_feed() -> bool:
                return all(
                    [e["data"]["sale_id"] for e in feed.of_type("sale_closed")] == sale_ids
                    for feed in feeds.values()
                )

            await wait_until(every_sale_in_every_feed, 30, "every sale in both feeds, in order")
            feed = next(iter(feeds.values()))

            async def all_handled() -> bool:
                accounting = feed.counters("accounting", "sale_closed")
                barcodes = feed.counters("barcodes", "article_imported")
                return accounting["handled"] >= len(served) and barcodes["handled"] >= articles

            await wait_until(all_handled, 60, "accounting and barcodes to finish")
            accounting = feed.counters("accounting", "sale_closed")
            barcodes = feed.counters("barcodes", "article_imported")

            # A visitor renames themselves: every process lists the new name only.
            visitor = "c3" * 12
            for user in ("Ann", "Anne-Marie"):
                hello = {"visitor": visitor, "user": user}
                await _served_by(server.base, "POST", "/api/presence", json=hello)
            names: dict[str, list[str]] = {}

            async def every_process_has_the_new_name_only() -> bool:
                response = await _served_by(server.base, "GET", "/api/presence")
                names[response.headers[SERVED_BY]] = [
                    v["user"] for v in response.json()["visitors"] if v["visitor"] == visitor
                ]
                return names.keys() == processes and all(
                    users == ["Anne-Marie"] for users in names.values()
                )

            await wait_until(
                every_process_has_the_new_name_only, 30, "both processes to list the new name"
            )

    # Once per subscriber across both workers: no sale or article handled twice.
    assert accounting["handled"] == len(served), accounting
    assert accounting["dead_lettered"] == 0
    assert accounting["retried"] >= 1  # every third sale fails once (SHOP_FLAKY_EVERY)
    assert barcodes["handled"] == articles, barcodes

    # The shared database: one journal entry and one inbox record per sale, nothing left
    # in the outbox once the workers have stopped.
    with closing(sqlite3.connect(tmp_path / "shop.sqlite3")) as conn:
        entries = conn.execute("SELECT sale_id FROM entries ORDER BY sale_id").fetchall()
        inbox = conn.execute("SELECT count(*) FROM hookbus_inbox").fetchone()
        outbox = conn.execute("SELECT count(*) FROM hookbus_outbox").fetchone()
    assert [sale_id for (sale_id,) in entries] == sale_ids
    assert inbox == (len(served),)
    assert outbox == (0,)
