"""Driving Debian's Chromium (the ``chromium`` package, ``.ci/run`` installs it) through
Playwright with that executable, no browser download; and watching pages for anything
going wrong: console errors and warnings, uncaught page errors, failed requests, HTTP
error responses."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    async_playwright,
)

from redis_helpers import REPO_ROOT

__all__ = ["ARTIFACTS", "CHROMIUM", "Problems", "artifacts_dir", "chromium", "needs_chromium"]

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

#: Mark of the browser tests: skipped without a chromium on PATH.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (.ci/run installs it)"
)


class Problems:
    """What went wrong in the pages it watches: console errors, uncaught page errors,
    failed requests and HTTP error responses, as readable lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.lines.append(f"console {message.type}: {message.text} ({message.location})")

    def _page_error(self, error: Error) -> None:
        self.lines.append(f"page error: {error}")

    def _request_failed(self, request: Request) -> None:
        self.lines.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.lines.append(f"HTTP {response.status}: {response.request.method} {response.url}")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed at the end."""
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def artifacts_dir() -> Path:
    """Where the browser tests save their screenshots (created)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
