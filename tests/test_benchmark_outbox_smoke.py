"""The outbox benchmark runs end to end on a tiny workload and prints both tables."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_outbox_benchmark_runs_and_prints_both_tables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.outbox", "--commits", "20", "--events", "300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ("PostgreSQL", "SQLite"):
        assert f"{label:<12}commit, then emit" in out
        assert f"{label:<12}commit with outbox emit" in out
    rows = [
        line.split() for line in out.splitlines() if line.startswith(("PostgreSQL ", "SQLite "))
    ]
    relay_rows = [row for row in rows if len(row) == 3]
    assert [(row[0], row[1]) for row in relay_rows] == [
        ("PostgreSQL", "1"),
        ("PostgreSQL", "2"),
        ("SQLite", "1"),
    ]
    assert all(float(row[2].replace(",", "")) > 0 for row in relay_rows)
