"""The scale benchmark (Redis, Redis Cluster, RabbitMQ, RabbitMQ cluster) runs end to end on a
tiny workload and prints both tables, every backend in each."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("redis single", "redis cluster", "rabbitmq 1 node", "rabbitmq 3 nodes")


def _tables(stdout: str) -> list[tuple[str, list[str]]]:
    """(header line, rows) of every table: the rows below the dashes, up to a blank line."""
    lines = stdout.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if i and line.startswith("---"):
            rows = lines[i + 1 :]
            end = next((j for j, row in enumerate(rows) if not row.strip()), len(rows))
            tables.append((lines[i - 1], rows[:end]))
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _row(row: str) -> tuple[str, list[str]]:
    """A row's backend (first two or three words) and its numbers."""
    for backend in BACKENDS:
        if row.startswith(backend + " "):
            return backend, row[len(backend) :].split()
    raise AssertionError(f"no backend in row {row!r}")


@pytest.mark.redis
@pytest.mark.cluster
@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scale_benchmark_runs_and_prints_every_table(
    redis_cluster_binary: str, rabbitmq_server_script: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--events",
            "200",
            "--rounds",
            "1",
            "--workers",
            "2",
            "--server",
            redis_cluster_binary,
            "--rabbitmq",
            rabbitmq_server_script,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    tables = _tables(proc.stdout)
    assert [header.split()[:3] for header, _ in tables] == [
        ["backend", "subscribers", "events/s"],
        ["backend", "workers", "events/s"],
    ], proc.stdout
    (_, throughput), (_, scaling) = tables
    # 1. every backend with 1 then 3 subscribers; single Redis is the reference (1.000).
    assert [_row(row)[0] for row in throughput] == list(BACKENDS) * 2, proc.stdout
    for row in throughput:
        backend, (subs, rate, ratio) = _row(row)
        assert subs in {"1", "3"}, row
        assert _number(rate) > 0, row
        assert _number(ratio) > 0, row
        if backend == "redis single":
            assert ratio == "1.000", row
    assert [_row(row)[1][0] for row in throughput] == ["1"] * 4 + ["3"] * 4, proc.stdout
    # 2. every backend with 1 then 2 workers, a positive rate, 1.00 for one worker.
    assert [_row(row)[0] for row in scaling] == [b for b in BACKENDS for _ in (1, 2)]
    for row in scaling:
        _, (workers, rate, ratio) = _row(row)
        assert _number(rate) > 0, row
        assert _number(ratio) > 0, row
        if workers == "1":
            assert ratio == "1.00", row
    assert [_row(row)[1][0] for row in scaling] == ["1", "2"] * 4, proc.stdout
    assert re.search(r"^\d+ CPUs, Python \d", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^RabbitMQ \d[^:]*: one node", proc.stdout, re.MULTILINE), proc.stdout
    assert "quorum queues with members on 3 nodes" in proc.stdout, proc.stdout
    assert "load average" in proc.stdout
    assert "reply parser" in proc.stdout
    assert "200 events over 4 durable types" in proc.stdout
    assert "hookbus logged" in proc.stdout
