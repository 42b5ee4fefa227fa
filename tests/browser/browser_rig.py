"""What the browser tests share: headless Chromium, Home Assistant's login, the more-info dialog, screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import re
import socket
from typing import Any

import aiohttp
from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright, expect

from demo_support.demo_setup import DEMO_USER, HomeAssistantApi
from demo_support.demo_stack import DemoPaths, Ports, RunningDemo, running_demo
from tencent_iot_emulator.console_client import ConsoleClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 900, "height": 640}
UI_TIMEOUT_MS = 30_000


def free_port() -> int:
    """A TCP port nothing listens on now, for Home Assistant."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class DemoInBrowser:
    """The demo running (Home Assistant and the emulator), their APIs, and a browser to drive its UI."""

    demo: RunningDemo
    api: HomeAssistantApi
    console: ConsoleClient
    browser: Browser

    @property
    def ha_url(self) -> str:
        """Where Home Assistant answers."""
        return self.demo.setup.ha_url


@contextlib.asynccontextmanager
async def demo_in_browser(tmp_path: Path) -> AsyncIterator[DemoInBrowser]:
    """The demo on free ports below `tmp_path`, Home Assistant's API logged in, the emulator's console, Chromium."""
    paths = DemoPaths(tmp_path / "config", tmp_path / "emulator")
    ports = Ports(ha=free_port(), mqtt=0, mqtts=0, http=0, https=0)
    async with (
        aiohttp.ClientSession() as session,
        running_demo(paths, ports, session, timeout_s=90) as demo,
        chromium() as browser,
    ):
        api = HomeAssistantApi(session, demo.setup.ha_url)
        api.access_token = demo.setup.access_token
        yield DemoInBrowser(demo, api, ConsoleClient(demo.endpoints.http_url, session), browser)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright on the test's event loop."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Page, ha_url: str) -> None:
    """Home Assistant's own login page (its fields by position: their labels are in the browser's language),
    then wait for the frontend's websocket connection."""
    _, username, password = DEMO_USER
    await page.goto(ha_url)
    await page.get_by_role("textbox").nth(0).fill(username)
    await page.locator("input[type=password]").fill(password)
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "() => document.querySelector('home-assistant')?.hass?.connected === true", timeout=UI_TIMEOUT_MS
    )
    # Let the default dashboard finish starting before dialogs are opened over it.
    await page.wait_for_url(re.compile(r"/home/|/lovelace/"), timeout=UI_TIMEOUT_MS)
    await page.wait_for_load_state("networkidle", timeout=UI_TIMEOUT_MS)


async def open_more_info(page: Page, entity_id: str) -> Locator:
    """Open the entity's more-info dialog the way the frontend's own cards do (the `hass-more-info` event)."""
    await page.evaluate(
        """(entityId) => document.querySelector('home-assistant').dispatchEvent(
            new CustomEvent('hass-more-info', {detail: {entityId}, bubbles: true, composed: true}))""",
        entity_id,
    )
    content = page.locator("more-info-update")
    try:
        await expect(content).to_be_visible(timeout=UI_TIMEOUT_MS // 3)
    except AssertionError:
        # An event sent while the default dashboard was still starting can leave the dialog hidden behind it:
        # close whatever is open and ask once more.
        await page.keyboard.press("Escape")
        await page.evaluate(
            """(entityId) => document.querySelector('home-assistant').dispatchEvent(
                new CustomEvent('hass-more-info', {detail: {entityId}, bubbles: true, composed: true}))""",
            entity_id,
        )
        await expect(content).to_be_visible(timeout=UI_TIMEOUT_MS)
    return content


async def frontend_summary_says(page: Page, entity_id: str, text: str) -> None:
    """Wait until the frontend's own copy of the entity's state has `text` in its release summary.

    The update dialog fetches the release notes once, when it opens, if the entity offers them then: opened on
    a state the frontend has not received yet (a job that has just ended), it would show neither the notes
    nor the summary."""
    await page.wait_for_function(
        """([entityId, text]) => (document.querySelector('home-assistant').hass.states[entityId]
            ?.attributes.release_summary ?? '').includes(text)""",
        arg=[entity_id, text],
        timeout=UI_TIMEOUT_MS,
    )


async def reload_frontend(page: Page) -> None:
    """Load the frontend again (what the backend names in the server's language, such as entity names, is
    read at load) and wait for its websocket connection."""
    await page.reload()
    await page.wait_for_function(
        "() => document.querySelector('home-assistant')?.hass?.connected === true", timeout=UI_TIMEOUT_MS
    )
    await page.wait_for_load_state("networkidle", timeout=UI_TIMEOUT_MS)


async def screenshot(page: Page, path: Path) -> None:
    """A screenshot once the dialog's finite animations (opening, fading) have finished: none may run for a few
    frames in a row, since a dialog's opening transition starts a frame or two after its content is there."""
    await page.evaluate(
        """async (timeoutMs) => {
            const deadline = performance.now() + timeoutMs;
            const idle = () => document.getAnimations().every(
                (a) => a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity);
            for (let quiet = 0; quiet < 5; ) {
                if (performance.now() > deadline) throw new Error('animations still running');
                await new Promise((resolve) => requestAnimationFrame(resolve));
                quiet = idle() ? quiet + 1 : 0;
            }
        }""",
        UI_TIMEOUT_MS,
    )
    await page.screenshot(path=path)


def screenshots_folder(tmp_path: Path) -> Path:
    """Where screenshots go: `$TENCENT_IOT_SCREENSHOTS` (the README's come from there), else the test's folder."""
    folder = os.environ.get("TENCENT_IOT_SCREENSHOTS")
    return Path(folder) if folder else tmp_path


async def call_ws(page: Page, message: dict[str, Any]) -> Any:
    """A websocket command through the frontend's own connection, as the logged-in user."""
    return await page.evaluate("(m) => document.querySelector('home-assistant').hass.callWS(m)", message)
