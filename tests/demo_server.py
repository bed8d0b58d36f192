"""Running the web demo as ``make demo`` does (``python -m examples.shop_demo``), in tests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from redis_helpers import REPO_ROOT, free_port

__all__ = ["DemoServer", "demo_server"]

START_TIMEOUT = 30.0


class DemoServer:
    """A running demo: its base URL and everything it printed so far."""

    def __init__(self, base: str, process: subprocess.Popen[str]) -> None:
        self.base = base
        self.process = process
        self.output: list[str] = []


@contextmanager
def demo_server(env: dict[str, str], data_dir: Path, *, workers: int = 1) -> Iterator[DemoServer]:
    """Start the demo on a free loopback port; stop it (SIGTERM, then SIGKILL) at the end.

    Yields once the printed dashboard URL answers ``/api/meta`` (every worker
    up is not guaranteed with several: ask until each has answered if it matters).
    """
    command = [
        sys.executable,
        "-m",
        "examples.shop_demo",
        "--port",
        str(free_port()),
        "--workers",
        str(workers),
        "--data-dir",
        str(data_dir),
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DemoServer("", process)
    found = threading.Event()

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line.rstrip("\n"))
            if line.strip().startswith("dashboard"):
                server.base = line.split()[-1].rstrip("/")
                found.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        if not found.wait(START_TIMEOUT):
            raise AssertionError("the demo printed no dashboard URL:\n" + "\n".join(server.output))
        _wait_until_serving(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def _wait_until_serving(server: DemoServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError("the demo exited:\n" + "\n".join(server.output))
        try:
            if httpx.get(f"{server.base}/api/meta", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the demo did not serve within {START_TIMEOUT} s")
