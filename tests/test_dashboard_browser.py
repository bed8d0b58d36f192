"""The demo's dashboard in a real headless Chromium: an import's progress bar reaches
100 % and a sale closed from the page shows up in the live feed.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it), driven by
Playwright with that executable (no browser download). The screenshot is saved
to ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from demo_server import demo_server
from redis_helpers import REPO_ROOT, clean_env

ARTIFACTS = Path(os.environ.get("HOOKBUS_ARTIFACTS", REPO_ROOT / "artifacts"))
CHROMIUM = os.environ.get("HOOKBUS_CHROMIUM") or shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs it)"),
    pytest.mark.timeout(120),
]


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            yield await context.new_page()
        finally:
            await browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def test_import_progress_reaches_100_and_a_closed_sale_appears_in_the_feed(
    page: Page, tmp_path: Path, artifacts: Path
) -> None:
    env = clean_env(SHOP_IMPORT_PACE="0.02")
    with demo_server(env, tmp_path) as server:
        await page.goto(server.base + "/")
        await expect(page.locator("#feed-status")).to_have_text("live", timeout=15_000)
        await expect(page.locator("#mode")).to_have_text("local mode")

        await page.click("#import-sample")
        progress = page.locator("#import-progress")
        await expect(page.locator("#import-progress-label")).to_have_text("100%", timeout=30_000)
        await expect(progress).to_have_attribute("aria-valuenow", "100")
        await expect(page.locator("#import-result")).to_contain_text("40 articles imported")

        await page.fill("#sale-form input[name=label]", "Lampe de chevet")
        await page.fill("#sale-form input[name=total]", "7.50")
        await page.select_option("#sale-form select[name=payment_method]", "card")
        await page.click("#close-sale")
        result = page.locator("#sale-result")
        await expect(result).to_contain_text("closed", timeout=10_000)
        sale_id = re.search(r"Sale #(\d+)", await result.inner_text())
        assert sale_id is not None, await result.inner_text()

        sale_in_feed = page.locator("#feed li[data-type=sale_closed]")
        await expect(sale_in_feed.first).to_contain_text(
            f"Sale #{sale_id[1]} closed: 7.50 € (card)", timeout=10_000
        )
        barcodes = page.locator("#counters tr[data-subscriber=barcodes] td.handled")
        await expect(barcodes).to_have_text("40", timeout=15_000)
        accounting = page.locator("#counters tr[data-subscriber=accounting] td.handled")
        await expect(accounting).to_have_text("1", timeout=15_000)
        await expect(page.locator("#online li").first).to_contain_text("Volunteer")
        # Technical events (progress, counters) are in the feed but hidden by default.
        assert await page.locator("#feed li[data-type=progress_updated]").count() > 0
        await expect(page.locator("#feed li[data-type=progress_updated]").first).to_be_hidden()

        # A member joins; a gift-voucher sale is refused by accounting until it is a dead letter.
        await page.fill("#member-form input[name=name]", "Camille Martin")
        await page.fill("#member-form input[name=email]", "camille@example.org")
        await page.click("#member-form button[type=submit]")
        await expect(page.locator("#member-result")).to_contain_text("Welcome, Camille Martin")
        newsletter = page.locator("#counters tr[data-subscriber=newsletter] td.handled")
        await expect(newsletter).to_have_text("1", timeout=15_000)
        await page.select_option("#sale-form select[name=payment_method]", "voucher")
        await page.click("#close-sale")
        dead = page.locator("#counters tr[data-subscriber=accounting] td.dead")
        await expect(dead).to_have_text("1", timeout=20_000)
        letter = page.locator("#letters li")
        await expect(letter).to_have_count(1, timeout=10_000)
        await expect(letter).to_contain_text("unknown payment 'voucher'")
        await expect(letter).to_contain_text("accounting")

        shot = artifacts / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        await letter.locator("button.discard").click()
        await expect(letter).to_have_count(0, timeout=10_000)
        await expect(page.locator("#letters-empty")).to_be_visible()
