"""The live feed benchmark runs end to end on a tiny workload and prints its two tables."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEL_WIDTH = 34  # the first column of the throughput table
THROUGHPUT_ROWS = (
    "0 (baseline)",
    "10 SSE",
    "50 SSE",
    "10 SSE + 1 stuck, filling",
    "10 SSE + 1 stuck, after the drop",
)


def _table(lines: list[str], header: str) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(header))
    rows = lines[start + 2 :]
    return rows[: rows.index("")] if "" in rows else rows


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


@pytest.mark.timeout(150)
def test_feed_benchmark_runs_and_prints_both_tables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.feed",
            "--events",
            "300",
            "--rounds",
            "1",
            "--rates",
            "100",
            "--latency-seconds",
            "0.2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()

    throughput = _table(lines, "feed clients")
    assert [row[:LABEL_WIDTH].strip() for row in throughput] == list(THROUGHPUT_ROWS), proc.stdout
    for row in throughput:
        rate, ratio = row[LABEL_WIDTH:].split()[:2]
        assert _number(rate) > 0, row  # events per second
        assert _number(ratio) > 0, row  # x the baseline
    for row in throughput[1:3] + throughput[4:]:  # rows with reading clients
        cells = row[LABEL_WIDTH:].split()
        assert _number(cells[2]) > 0, row  # µs per message
        assert cells[-2] == "100%", row  # every reading client got every event
    assert throughput[1].split()[-1] == "0", throughput[1]  # no reading client dropped
    assert throughput[-1].split()[-1] == "1", throughput[-1]  # the stuck client was
    assert "the stuck client was dropped in 1 of 1 rounds" in proc.stdout

    latency = _table(lines, "rate/s")
    assert len(latency) == 2, proc.stdout  # 10 and 50 clients at 100 events/s
    for row in latency:
        rate, clients, achieved, _cpu, p50, p99, worst, received = row.split()
        assert (rate, received) == ("100", "100%"), row
        assert clients in ("10", "50"), row
        assert all(_number(cell) > 0 for cell in (achieved, p50, p99, worst)), row
    assert "300 durable events" in proc.stdout
