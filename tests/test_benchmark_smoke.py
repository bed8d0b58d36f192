"""The local benchmark runs end to end on a tiny workload and prints its table."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("bare loop", "hookbus local", "hookbus local + metrics", "blinker", "async-signals")


def test_benchmark_runs_and_prints_every_contender() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_BUS_", "HOOKBUS_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.local",
            "--events",
            "300",
            "--latency-events",
            "50",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("contender"))
    table = lines[header + 2 :]
    table = table[: table.index("")] if "" in table else table
    rows = {line.split("  ")[0]: line for line in table}
    assert len(rows) == len(CONTENDERS), proc.stdout
    for name in CONTENDERS:
        # Each row's label begins with the longest contender name that it starts with.
        matching = [
            label
            for label in rows
            if max((n for n in CONTENDERS if label.startswith(n)), key=len, default="") == name
        ]
        assert len(matching) == 1, (name, proc.stdout)
        cells = rows[matching[0]].split()
        assert float(cells[-1]) > 0  # p99 latency in µs
        assert float(cells[-4].replace(",", "")) > 0  # events per second
    assert "300 events, 3 async subscribers" in proc.stdout
    assert "hookbus / async-signals:" in proc.stdout
    assert "hookbus with metrics / without:" in proc.stdout
