"""The cluster benchmark runs end to end on a tiny workload and prints its three tables."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (header of the table, {first words of a row: how many rows}).
TABLES = (
    ("contender", {"hookbus single": 2, "hookbus cluster": 2}),
    ("backend", {"single": 2, "cluster": 2}),
    ("setting", {"min_replicas=0": 2, "min_replicas=1": 2}),  # the run, then the total
)


def _tables(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    tables = {}
    for i, line in enumerate(lines):
        header = line.split(" ", 1)[0]
        if header in {title for title, _ in TABLES} and lines[i + 1].startswith("---"):
            rows = lines[i + 2 :]
            end = next((j for j, row in enumerate(rows) if not row or row.startswith("(")), None)
            tables[header] = rows[:end]
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.redis
@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cluster_benchmark_runs_and_prints_every_table(redis_cluster_binary: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.cluster",
            "--events",
            "300",
            "--rounds",
            "1",
            "--workers",
            "2",
            "--failover-runs",
            "1",
            "--server",
            redis_cluster_binary,
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
    assert list(tables) == [title for title, _ in TABLES], proc.stdout
    for title, expected in TABLES:
        rows = tables[title]
        assert len(rows) == sum(expected.values()), (title, rows, proc.stdout)
        for label, count in expected.items():
            matching = [row for row in rows if row.startswith(label + " ")]
            assert len(matching) == count, (label, proc.stdout)
    # Throughput and scaling: a positive rate in every row; cluster/single on the cluster rows.
    for row in tables["contender"]:
        cells = row.split()
        assert _number(cells[3]) > 0, row
        if cells[1] == "cluster":
            assert _number(cells[4]) > 0, row
    assert [row.split()[1] for row in tables["backend"]] == ["1", "2", "1", "2"], proc.stdout
    for row in tables["backend"]:
        assert all(_number(cell) > 0 for cell in row.split()[1:]), row
    # Failover: one run and its total per setting; emits were accepted both before the kill
    # and after the restart (75 each at least).
    for row in tables["setting"]:
        run, accepted, refused, lost, twice = row.split()[1:6]
        assert run in {"1", "all"}, row
        assert int(accepted) >= 150, row
        assert min(int(refused), int(lost), int(twice)) >= 0, row
    assert re.search(r"^\d+ CPUs, Python \d", proc.stdout, re.MULTILINE), proc.stdout
    assert "reply parser" in proc.stdout
    assert "300 events over 4 durable types" in proc.stdout
    assert "hookbus logged during the failover runs:" in proc.stdout
