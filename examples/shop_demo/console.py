"""``python -m examples.shop_demo.console`` (``make demo-console``): a day at the till,
in the console, with a summary at the end."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from .demo import DB_NAME, run_demo
from .report import render

HEADER = (
    "hookbus demo: ressourcerie till -> accounting sync (SQLite), "
    "receipt printer, progress [local mode]"
)


async def main() -> int:
    """Run the demo in a temporary directory; 0 if the results add up."""
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="hookbus-shop-") as tmp:
        data_dir = Path(tmp)
        print(f"journal: {data_dir / DB_NAME} (temporary, removed at exit)")
        result = await run_demo(data_dir)
    for line in render(result):
        print(line)
    return 0 if result.consistent else 1


if __name__ == "__main__":
    # Retries are logged at INFO: keep them out; the dead letter's ERROR shows.
    # stdout, so that the log line lands in order among the printed ones.
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="  log %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(asyncio.run(main()))
