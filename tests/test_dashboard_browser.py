"""The demo's dashboard in a real headless Chromium: an import's progress bar reaches
100 % and a sale closed from the page shows up in the live feed; a visitor who renames
themselves is listed under the new name only, on every open page. Every page loads and
runs without a console error, a page error or a failed request (favicon included).

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it), driven by
Playwright with that executable (no browser download). The screenshot is saved
to ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from browser import Problems, artifacts_dir, chromium, needs_chromium
from demo_server import demo_server
from redis_helpers import clean_env

pytestmark = [needs_chromium, pytest.mark.timeout(120)]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
def problems() -> Problems:
    return Problems()


async def open_page(browser: Browser, problems: Problems, name: str | None = None) -> Page:
    """A page in a context of its own: another visitor, with ``name`` as their name."""
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    if name is not None:
        await context.add_init_script(
            f"localStorage.getItem('hookbus-demo-user') || "
            f"localStorage.setItem('hookbus-demo-user', {name!r})"
        )
    return problems.watch(await context.new_page())


@pytest.fixture
async def page(browser: Browser, problems: Problems) -> Page:
    return await open_page(browser, problems)


@pytest.fixture
def artifacts() -> Path:
    return artifacts_dir()


async def test_import_progress_reaches_100_and_a_closed_sale_appears_in_the_feed(
    page: Page, problems: Problems, tmp_path: Path, artifacts: Path
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
        assert not problems.lines, "\n".join(problems.lines)


def online(page: Page, user: str | None = None) -> Locator:
    """The entries of the page's "Who's online" list (those of ``user`` if given)."""
    if user is None:
        return page.locator("#online li[data-user]")
    return page.locator(f'#online li[data-user="{user}"]')


async def test_a_rename_replaces_the_old_name_on_every_page(
    browser: Browser, problems: Problems, tmp_path: Path
) -> None:
    with demo_server(clean_env(), tmp_path) as server:
        ann = await open_page(browser, problems, "Ann")
        bob = await open_page(browser, problems, "Bob")
        ann_tab = problems.watch(await ann.context.new_page())  # the same browser: one visitor
        pages = (ann, bob, ann_tab)
        for page in pages:
            await page.goto(server.base + "/")
            await expect(page.locator("#feed-status")).to_have_text("live", timeout=15_000)
        for page in pages:
            await expect(online(page)).to_have_text(
                [re.compile(r"^Ann"), re.compile(r"^Bob")], timeout=10_000
            )
        await expect(online(ann, "Ann")).to_contain_text("(you)")

        await ann.fill("#me", "Anne-Marie")
        await ann.press("#me", "Enter")
        for page in pages:
            await expect(online(page, "Anne-Marie")).to_have_count(1, timeout=5_000)
            await expect(online(page, "Ann")).to_have_count(0, timeout=2_000)
            await expect(online(page)).to_have_count(2)
        await expect(online(ann, "Anne-Marie")).to_contain_text("(you)")
        await expect(online(bob, "Anne-Marie")).not_to_contain_text("(you)")
        await expect(ann_tab.locator("#me")).to_have_value("Anne-Marie")
        await expect(online(ann_tab, "Anne-Marie")).to_contain_text("(you)")

        # A page opened after the rename learns the names from the server, not the old one.
        carol = await open_page(browser, problems, "Carol")
        await carol.goto(server.base + "/")
        await expect(online(carol)).to_have_text(
            [re.compile(r"^Anne-Marie"), re.compile(r"^Bob"), re.compile(r"^Carol")],
            timeout=10_000,
        )
        assert not problems.lines, "\n".join(problems.lines)
