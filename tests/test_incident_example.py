"""docs/incident.md stays true: the incident of ``examples/incident`` played with the real
command against a real Redis — dead letters seen by ``status`` (exit 1), the worker fixed,
``dead-letters retry`` (refused without ``--yes``), ``status`` green (exit 0)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redis_helpers import REPO_ROOT, Worker, clean_env, run_cli, wait_until

TARGET = "examples.incident:bus"

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def test_the_incident_of_the_guide(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = clean_env(
        EVENT_BUS_MODE="redis", HOOKBUS_REDIS_URL=redis_url, HOOKBUS_REDIS_PREFIX=redis_prefix
    )
    failing = Worker({**env, "PAHEKO_DOWN": "1"}, tmp_path, "down", target=TARGET)
    fixed = Worker(env, tmp_path, "fixed", target=TARGET)
    failing.start()
    try:
        await failing.wait_ready()
        emitted = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "examples.incident", "emit", "3"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert emitted.stdout.strip() == "3 sales closed", emitted.stderr

        async def three_dead_letters() -> bool:
            return failing.log().count("gave up on sale_closed") == 3

        await wait_until(three_dead_letters, 20, "the accounting to give up on 3 sales")
        red = await asyncio.to_thread(run_cli, ["status", TARGET], env)
        assert red.returncode == 1, red.stderr
        assert "accounting / sale_closed: 3 dead letter(s)" in red.stdout
        assert "paheko.example.org:443: connection refused" in failing.log()

        failing.send(signal.SIGTERM)
        assert await failing.wait_exit(10) == 0
        fixed.start()
        await fixed.wait_ready()
        retry = ["dead-letters", "retry", "--all", "--subscriber", "accounting", "--app", TARGET]
        refused = await asyncio.to_thread(run_cli, retry, env)
        assert refused.returncode == 2
        assert "refusing without --yes" in refused.stderr
        done = await asyncio.to_thread(run_cli, [*retry, "--yes"], env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("re-queued") == 3

        async def green() -> bool:
            result = await asyncio.to_thread(run_cli, ["status", TARGET], env)
            return result.returncode == 0 and "healthy" in result.stdout

        await wait_until(green, 20, "status to be healthy", interval=0.2)
    finally:
        for worker in (failing, fixed):
            if worker.running:
                worker.kill()
