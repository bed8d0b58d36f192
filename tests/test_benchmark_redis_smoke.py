"""The redis benchmark runs end to end on a tiny workload and prints its three tables."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (first words of the row, how many rows): the throughput table has one row per
# contender and subscriber count (1 and 3).
TABLES = (
    {"hookbus redis ": 2, "hookbus redis, emit_many": 2, "seed pattern": 2, "hand-pipelined": 2},
    {"hookbus redis": 1, "redis-py XADD+XREADGROUP": 1},
    {
        "hookbus durable=False ": 1,
        "hookbus emit_many": 1,
        "redis-py PUBLISH": 1,
        "pipelined PUBLISH": 1,
    },
)


def _tables(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if line.startswith("contender"):
            rows = lines[i + 2 :]
            tables.append(rows[: rows.index("")] if "" in rows else rows)
    return tables


@pytest.mark.redis
@pytest.mark.timeout(200)
def test_redis_benchmark_runs_and_prints_every_table(redis_server_binary: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.redis",
            "--events",
            "300",
            "--rounds",
            "1",
            "--latency-events",
            "100",
            "--server",
            redis_server_binary,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables = _tables(proc.stdout)
    assert len(tables) == len(TABLES), proc.stdout
    for rows, expected in zip(tables, TABLES, strict=True):
        assert len(rows) == sum(expected.values()), (rows, proc.stdout)
        for label, count in expected.items():
            matching = [row for row in rows if row.startswith(label)]
            assert len(matching) == count, (label, proc.stdout)
            for row in matching:
                cells = row[26:].split()  # after the contender column
                assert all(float(cell.replace(",", "")) > 0 for cell in cells), row
    # Every broadcast contender delivered every message.
    for row in tables[2]:
        assert row[26:].split()[0] == "300", (row, proc.stdout)
    assert "300 events, median of 1 rounds" in proc.stdout
    assert "summary: 1 sub: hookbus/pipelined" in proc.stdout
    assert "hookbus latency p99" in proc.stdout
