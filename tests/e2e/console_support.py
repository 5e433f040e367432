"""Driving the web console in a real browser: Playwright with Debian's Chromium, headless.

Playwright is told the browser's path (``scripts/install --dev`` installs the Debian
package ``chromium``); it never downloads a browser of its own. Shared by the browser
tests and ``scripts/console-screenshots``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

#: Debian's Chromium (``FLEETGATE_CHROMIUM`` names another).
CHROMIUM = os.environ.get("FLEETGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: A laptop's window.
VIEWPORT = {"width": 1366, "height": 900}
#: Generous bound on anything the page waits for (never a measurement).
WAIT_MS = 60_000


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: run scripts/install --dev (Debian package chromium)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(
    browser: Browser, api_url: str, tenant: str, username: str, password: str
) -> BrowserContext:
    """A browser context whose session is logged in to the console as that user."""
    context = await browser.new_context(viewport=VIEWPORT, base_url=api_url)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = await context.new_page()
    await page.goto("/console/login")
    await log_in(page, tenant, username, password)
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    await page.close()
    return context


async def log_in(page: Page, tenant: str, username: str, password: str) -> None:
    """Fill in and send the login form the page shows."""
    await page.get_by_label("Tenant").fill(tenant)
    await page.get_by_label("User").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def live(page: Page) -> None:
    """Wait until the page's live stream is connected."""
    await expect(page.locator("[data-live-source]").first).to_have_attribute(
        "data-connected", "true"
    )
