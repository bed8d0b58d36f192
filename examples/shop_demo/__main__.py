"""``python -m examples.shop_demo`` (``make demo``): the shop as a web app, with its dashboard.

Serves on http://127.0.0.1:8000/ (the next free port if 8000 is taken) and
prints the addresses. Local mode by default; with ``EVENT_BUS_MODE=redis``
(and ``HOOKBUS_REDIS_URL``) or ``EVENT_BUS_MODE=rabbitmq`` (and
``HOOKBUS_AMQP_URL``) it can run several web processes: ``--workers 2``.
Every process's bus has its transactional outbox in the shop's SQLite file.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from hookbus import Settings

from .database import outbox_url
from .web.store import DB_NAME

PORT_TRIES = 20


def _free_port(host: str, first: int) -> int:
    """``first`` or the next port that accepts a bind on ``host``."""
    for port in range(first, first + PORT_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port between {first} and {first + PORT_TRIES - 1} on {host}")


def main(argv: list[str] | None = None) -> int:
    """Serve the demo until Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m examples.shop_demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="first port to try")
    parser.add_argument(
        "--workers", type=int, default=1, help="web processes (redis or rabbitmq mode)"
    )
    parser.add_argument("--data-dir", help="where the SQLite file goes (default: a new temp dir)")
    args = parser.parse_args(argv)

    mode = Settings.from_env().mode
    if args.workers > 1 and mode == "local":
        parser.error(
            "several workers need EVENT_BUS_MODE=redis or rabbitmq: in local mode each process has "
            "its own bus, and a dashboard would see only its own worker's events"
        )
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="hookbus-shop-")
    os.environ["SHOP_DATA_DIR"] = data_dir  # read by every worker's create_app
    port = _free_port(args.host, args.port)
    base = f"http://{args.host}:{port}"
    processes = f"{args.workers} web process" + ("es" if args.workers > 1 else "")
    print(f"hookbus shop demo [{mode} mode, {processes}]")
    print(f"  dashboard   {base}/")
    print(f"  bus panel   {base}/hookbus/  (status, dead letters; public in the demo)")
    print(f"  JSON API    {base}/docs")
    print(f"  event feed  {base}/events/stream  (public in the demo: no login)")
    print(f"              ws://{args.host}:{port}/events/ws  (the same over WebSocket)")
    print(f"  data        {data_dir}")
    print(f"  outbox      {outbox_url(Path(data_dir) / DB_NAME)}")
    print("Ctrl+C to stop.", flush=True)
    uvicorn.run(
        "examples.shop_demo.web:create_app",
        factory=True,
        host=args.host,
        port=port,
        workers=args.workers,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
