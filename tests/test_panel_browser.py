"""The web panel in a real headless Chromium, with the same strictness as the dashboard's
test: no console error or warning, page error, failed request or HTTP error.

A small shop on a real Redis serves the panel at ``/hookbus/``: ``accounting`` fails the
sales the test lists (one attempt: a dead letter), ``invoices`` books everything,
``reports`` is stuck (its events stay pending), and ``newsletter`` runs in workers that
are not started (no live consumer). The page shows the problems, opens the dead letter,
retries it once the confirmation is accepted (not when dismissed) and follows what the
test changes meanwhile without a reload. The screenshot goes to ``artifacts/panel.png``.
Then the demo's dashboard links to its own panel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Dialog, Page, expect

from browser import Problems, artifacts_dir, chromium, needs_chromium
from demo_server import demo_server
from hookbus import Event, EventBus
from hookbus.fastapi import bus_lifespan, panel_router
from redis_bus import redis_bus
from redis_helpers import clean_env, wait_until
from web_server import serving

pytestmark = [needs_chromium, pytest.mark.timeout(120)]

TYPE = "till.sale_closed"


class Sale(Event, name=TYPE):
    sale_id: int


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
async def page(browser: Browser, problems: Problems) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 1100})
    return problems.watch(await context.new_page())


class Shop:
    """The app's bus and what its handlers do; ``workers``: a bus that only declares the
    ``newsletter`` subscriber, run by workers elsewhere (none started)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.failing: set[int] = set()
        self.booked: list[int] = []
        self.reports_gate = asyncio.Event()
        self.bus: EventBus = redis_bus(url, prefix)
        self.workers: EventBus = redis_bus(url, prefix, consume=False)

        @self.bus.on(Sale, name="accounting", max_attempts=1)
        async def book(sale: Sale) -> None:
            if sale.sale_id in self.failing:
                raise RuntimeError(f"the accounting server refused sale {sale.sale_id}")
            self.booked.append(sale.sale_id)

        @self.bus.on(Sale, name="invoices")
        async def invoice(sale: Sale) -> None:
            return

        @self.bus.on(Sale, name="reports")
        async def report(sale: Sale) -> None:
            await self.reports_gate.wait()

        async def subscribe(sale: Sale) -> None:
            raise AssertionError("consume=False")

        self.workers.subscribe(Sale, subscribe, name="newsletter")

    def app(self) -> FastAPI:
        app = FastAPI(lifespan=bus_lifespan(self.bus, signals=()))
        subscriptions = [*self.bus.subscriptions, *self.workers.subscriptions]
        app.include_router(
            panel_router(public=True, refresh=0.5, subscriptions=subscriptions),
            prefix="/hookbus",
        )
        return app

    async def emit(self, *sale_ids: int) -> None:
        for sale_id in sale_ids:
            await self.bus.emit(Sale(sale_id=sale_id))

    async def dead_letters(self, count: int) -> None:
        async def counted() -> bool:
            return len(await self.bus.dead_letters()) == count

        await wait_until(counted, 10, f"{count} dead letter(s)")


class Dialogs:
    """Answers the page's next confirmation dialog, and keeps what each asked."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.asked: list[str] = []
        self._answered = asyncio.Event()

    def answer_next(self, *, accept: bool) -> None:
        self._answered.clear()

        async def answer(dialog: Dialog) -> None:
            self.asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())
            self._answered.set()

        self.page.once("dialog", answer)

    async def answered(self) -> str:
        """The question of the dialog just answered."""
        await asyncio.wait_for(self._answered.wait(), 5)
        return self.asked[-1]


@pytest.mark.redis
async def test_the_panel_shows_problems_and_retries_a_dead_letter(
    page: Page, problems: Problems, redis_url: str, redis_prefix: str
) -> None:
    shop = Shop(redis_url, "shop-" + redis_prefix[-6:])  # still unique, and reads well
    shop.failing.add(3)
    async with shop.workers, serving(shop.app()) as base:
        try:
            await shop.emit(1, 2, 3, 4)
            await shop.dead_letters(1)
            await run_the_panel(page, shop, base + "/hookbus/")
        finally:
            shop.reports_gate.set()
    assert not problems.lines, "\n".join(problems.lines)


async def run_the_panel(page: Page, shop: Shop, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#mode")).to_have_text("redis mode", timeout=10_000)
    await expect(page.locator("#updated")).to_contain_text("live")
    await expect(page.locator("#health")).to_have_text("2 problems")
    await expect(page.locator("#health")).to_have_class("health error")

    row = page.locator("#subscribers tr[data-subscriber=accounting]")
    await expect(row).to_have_class("warning")
    await expect(row.locator("td.dead")).to_have_text("1")
    await expect(row.locator("td.consumers")).to_have_text("1")
    newsletter = page.locator("#subscribers tr[data-subscriber=newsletter]")
    await expect(newsletter).to_have_class("error")
    await expect(newsletter.locator("td.lag")).to_have_text("4")
    await expect(newsletter.locator("td.consumers")).to_have_text("0")
    reports = page.locator("#subscribers tr[data-subscriber=reports]")
    await expect(reports.locator("td.pending")).not_to_have_text("0")
    await expect(reports).not_to_have_class("warning")
    problem_list = page.locator("#problems li")
    await expect(problem_list).to_have_count(2)
    await expect(page.locator("#problems li.error")).to_contain_text(
        f"newsletter / {TYPE}: no live consumer: 4 event(s) wait"
    )
    await expect(page.locator("#problems li.warning")).to_contain_text(
        f"accounting / {TYPE}: 1 dead letter(s)"
    )
    await expect(page.locator(f"#types tr[data-type='{TYPE}'] td.stored")).to_have_text("4")

    # The dead letter, opened from the list.
    letters = page.locator("#letters tr")
    await expect(letters).to_have_count(1)
    await expect(letters).to_contain_text("the accounting server refused sale 3")
    await letters.click()
    detail = page.locator("#letter")
    await expect(detail).to_be_visible()
    await expect(detail.locator("dd[data-field=error]")).to_have_text(
        "RuntimeError: the accounting server refused sale 3"
    )
    await expect(detail.locator("dd[data-field=from]")).to_contain_text(f"stream:{TYPE} entry ")
    await expect(detail.locator("#letter-body")).to_have_text('{\n  "sale_id": 3\n}')

    shot = artifacts_dir() / "panel.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # Dismissed: nothing happens. Accepted: re-queued, booked, gone from the page.
    dialogs = Dialogs(page)
    dialogs.answer_next(accept=False)
    await page.click("#retry")
    assert (await dialogs.answered()).startswith("Retry dead letter ")
    await expect(detail).to_be_visible()
    assert len(await shop.bus.dead_letters()) == 1

    shop.failing.clear()
    dialogs.answer_next(accept=True)
    await page.click("#retry")
    assert "goes back to accounting only" in await dialogs.answered()
    await expect(page.locator("#action-result")).to_contain_text("Re-queued")
    await expect(detail).to_be_hidden()
    await expect(letters).to_have_count(0)
    await expect(page.locator("#letters-empty")).to_be_visible()
    await expect(row.locator("td.dead")).to_have_text("0")
    await expect(row).not_to_have_class("warning")
    await expect(page.locator("#health")).to_have_text("1 problem")
    assert 3 in shop.booked

    # Live: what happens elsewhere shows up without a reload.
    shop.failing.add(6)
    await shop.emit(5, 6)
    await expect(page.locator(f"#types tr[data-type='{TYPE}'] td.stored")).to_have_text("6")
    await expect(newsletter.locator("td.lag")).to_have_text("6")
    await expect(letters).to_have_count(1)
    await expect(letters).to_contain_text("refused sale 6")
    await expect(row.locator("td.dead")).to_have_text("1")

    # Discard, from the subscriber's count: the list filtered to it, then emptied.
    await row.locator("td.dead button").click()
    await expect(page.locator("#filter-subscriber")).to_have_value("accounting")
    await letters.click()
    dialogs.answer_next(accept=True)
    await page.click("#discard")
    assert (await dialogs.answered()).startswith("Discard dead letter ")
    await expect(page.locator("#action-result")).to_contain_text("Discarded")
    await expect(letters).to_have_count(0)
    await expect(row.locator("td.dead")).to_have_text("0")
    assert await shop.bus.dead_letters() == []


async def test_the_demo_dashboard_links_its_panel(
    page: Page, problems: Problems, tmp_path: Path
) -> None:
    with demo_server(clean_env(), tmp_path) as server:
        await page.goto(server.base + "/")
        await expect(page.locator("#feed-status")).to_have_text("live", timeout=15_000)
        link = await page.locator("#panel-link").get_attribute("href")
        assert link == "/hookbus/"
        # In a page of its own: leaving the dashboard would abort its feed (a failed request).
        page = problems.watch(await page.context.new_page())
        await page.goto(server.base + link)
        await expect(page.locator("#mode")).to_have_text("local mode", timeout=10_000)
        await expect(page.locator("#health")).to_have_text("healthy")
        accounting = page.locator("#subscribers tr[data-subscriber=accounting]")
        await expect(accounting.locator("td.consumers")).to_have_text("1")
        # Local mode keeps no store of events: the figure is unknown.
        await expect(page.locator("#types tr[data-type=sale_closed] td.stored")).to_have_text("?")
    assert not problems.lines, "\n".join(problems.lines)
