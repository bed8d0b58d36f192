"""The idempotent-subscriber benchmark runs end to end on a tiny workload and prints its table."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (mode, records) -> the subscribers measured there, in table order.
ROWS = {
    ("local", "memory"): ["plain", "idempotent=True"],
    ("redis", "Redis"): ["plain", "idempotent=True"],
    ("durable local", "SQLite"): ["plain", "idempotent=True", "inbox (record_completion)"],
    ("durable local", "PostgreSQL"): ["plain", "idempotent=True", "inbox (record_completion)"],
}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_idempotent_benchmark_runs_and_prints_every_row(redis_server_binary: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.idempotent",
            "--events",
            "300",
            "--durable-events",
            "100",
            "--rounds",
            "1",
            "--server",
            redis_server_binary,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("mode"))
    rows = lines[header + 2 :]
    expected = [
        (mode, store, subscriber) for (mode, store), names in ROWS.items() for subscriber in names
    ]
    assert len(rows) == len(expected), proc.stdout
    for row, (mode, store, subscriber) in zip(rows, expected, strict=True):
        assert row.startswith(f"{mode:<15}{store:<12}{subscriber:<27}"), (row, proc.stdout)
        rate, ratio = (float(cell.replace(",", "")) for cell in row[54:].split())
        assert rate > 0, row
        assert ratio > 0, row
        if subscriber == "plain":
            assert ratio == 1.0, row
    assert "local and redis: 300 events" in proc.stdout
    assert "durable local: 100 events, 50 per transaction" in proc.stdout
    assert "median of 1 rounds" in proc.stdout
