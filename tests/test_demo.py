"""The console shop demo: its results add up, in-process and as a module."""

import subprocess
import sys
from pathlib import Path

import pytest

from examples.shop_demo import run_demo
from examples.shop_demo.events import SaleClosed
from redis_helpers import REPO_ROOT, clean_env


@pytest.mark.usefixtures("clean_environ")
async def test_run_demo_results_add_up(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(tmp_path, out=lines.append)

    assert result.db_path == tmp_path / "shop.sqlite3"
    assert result.db_path.is_file()
    assert result.sales == 40
    assert result.accounting_entries == result.sales - 1
    assert result.consistent

    (letter,) = result.dead_letters
    assert letter.subscriber == "accounting"
    assert letter.attempts == 3
    assert letter.event_type == "sale_closed"
    assert letter.error_type == "ValueError"
    refused = letter.event
    assert isinstance(refused, SaleClosed)
    assert refused.total < 0
    assert result.booked_total == result.register_total - refused.total

    receipts = result.stats_of("receipts", "sale_closed")
    assert receipts.retried > 0
    assert receipts.failed == receipts.retried
    assert receipts.dead_lettered == 0
    assert receipts.handled == result.sales
    assert [d for d in result.dead_letters if d.subscriber == "receipts"] == []
    accounting = result.stats_of("accounting", "sale_closed")
    assert (accounting.handled, accounting.dead_lettered) == (result.sales - 1, 1)
    with pytest.raises(KeyError):
        result.stats_of("nobody", "sale_closed")

    assert any("Z report" in line for line in lines)


def test_demo_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.shop_demo.console"],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Summary" in proc.stdout
    assert "Dead letters: 1" in proc.stdout
    assert "(ok)" in proc.stdout
