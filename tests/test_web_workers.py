"""Several web processes in redis mode: a browser connected to one sees what another
emits, and each sale is handled once per subscriber."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from hookbus.testing.redis_server import RedisServer
from redis_helpers import REPO_ROOT, free_port, handled, raw_redis, shop_env, wait_until
from web_server import SSEReader

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def two_web_processes(redis_server: RedisServer, redis_prefix: str) -> Iterator[list[str]]:
    """Two uvicorn processes serving tests.apps.web:app on two ports, one prefix."""
    env = shop_env(redis_server.url, redis_prefix)
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.apps.web:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env))
            bases.append(f"http://127.0.0.1:{port}")
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def _up(base: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as client:
            return (await client.get("/openapi.json")).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.timeout(90)
async def test_a_browser_on_one_worker_sees_sales_closed_on_the_other(
    two_web_processes: list[str], redis_server: RedisServer, redis_prefix: str
) -> None:
    first, second = two_web_processes
    for base in (first, second):

        async def up(base: str = base) -> bool:
            return await _up(base)

        await wait_until(up, 30, f"web process at {base} to serve")
    async with (
        httpx.AsyncClient(base_url=first, timeout=10) as browser,
        browser.stream("GET", "/events/stream?types=shop.sale_closed") as response,
        httpx.AsyncClient(base_url=second, timeout=10) as till,
    ):
        assert response.status_code == 200
        feed = SSEReader(response.aiter_lines())
        answers = [(await till.post(f"/sales/{n}")).json() for n in range(10)]
        seen = [(await feed.next_event())["id"] for _ in range(10)]
    assert seen == [a["id"] for a in answers]  # emitted by the other process, in order
    async with raw_redis(redis_server.url) as client:
        for subscriber in ("accounting", "invoices"):

            async def all_handled(subscriber: str = subscriber) -> bool:
                return len(await handled(client, redis_prefix, subscriber)) == 10

            await wait_until(all_handled, 30, f"{subscriber} to handle every sale")
            counts = await handled(client, redis_prefix, subscriber)
            assert counts == dict.fromkeys(range(10), 1)  # once each, across both processes
