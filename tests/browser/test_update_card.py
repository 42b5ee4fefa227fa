"""The update card in a real browser: Home Assistant and the emulator set up as `scripts/develop` does.

A real `hass` process (temporary config folder, free port) and the emulator (`python -m tencent_iot_emulator
serve`) are started and set up by the demo's own code; headless Chromium (Debian's, driven by Playwright's
async API on the test's event loop) logs in, opens light1's firmware dialog, and installs a pushed firmware.
Screenshots of the dialog before, during and after the install are saved in the test's folder.
"""

from __future__ import annotations

from pathlib import Path
import time

from playwright.async_api import Locator, Page, TimeoutError as PlaywrightTimeoutError, expect
import pytest

from demo_support.demo_push import push_firmware
from demo_support.demo_setup import LIGHTS
from tests.browser.browser_rig import (
    UI_TIMEOUT_MS,
    VIEWPORT,
    demo_in_browser,
    log_in,
    open_more_info,
    screenshot,
    screenshots_folder,
)
from tests.emulator_fixtures import eventually

ENTITY_ID = "update.light1_firmware"
NEW_VERSION = "V100R0001"
# 1 MiB at 256 KiB/s: a download of about four seconds, so the bar has time to move.
IMAGE_SIZE = 1024 * 1024
THROTTLE_BPS = 256 * 1024
# The line above the bar while the image downloads (the dialog shows the phase, not only "Installing").
DOWNLOADING = "Downloading the image: "


def _row_value(content: Locator, key: str) -> Locator:
    """The value cell of a key/value row of the update dialog (CSS locators pierce the shadow roots)."""
    return content.locator(".row").filter(has_text=key).locator(".value")


async def _watch_progress(page: Page, content: Locator, installed: Locator, shot: Path) -> list[int]:
    """The bar's values while the install runs, until installed shows the new version; one screenshot."""
    bar = content.locator("ha-progress-bar")
    values: list[int] = []
    shot_taken = False
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while (await installed.inner_text()).strip() != NEW_VERSION:
        assert time.monotonic() < deadline, f"not installed in time; bar values {values}"
        if await bar.count():
            try:
                # The bar goes away when the install ends: read it without waiting for one to come back.
                value = await bar.evaluate("(el) => (el.indeterminate ? null : el.value)", timeout=1000)
            except PlaywrightTimeoutError:
                continue
            if isinstance(value, int | float) and (not values or values[-1] != int(value)):
                values.append(int(value))
                if not shot_taken and 10 <= value <= 40:
                    await page.screenshot(path=shot)
                    shot_taken = True
        await page.wait_for_timeout(100)
    return values


@pytest.mark.timeout(150)
async def test_update_card_installs_a_pushed_firmware(socket_enabled: None, tmp_path: Path) -> None:
    """Installed 0.1 → push → latest V100R0001 → Install → the phase and a moving bar → installed V100R0001,
    cloud `done`."""
    shots = screenshots_folder(tmp_path)
    light1 = LIGHTS[0]
    async with demo_in_browser(tmp_path) as rig:
        demo, api, console, browser = rig.demo, rig.api, rig.console, rig.browser
        assert (await api.state(ENTITY_ID))["attributes"]["installed_version"] == "0.1"

        page = await browser.new_page(viewport=VIEWPORT)
        await log_in(page, demo.setup.ha_url)
        content = await open_more_info(page, ENTITY_ID)
        installed = _row_value(content, "Installed version")
        latest = _row_value(content, "Latest version")
        await expect(installed).to_have_text("0.1", timeout=UI_TIMEOUT_MS)
        await expect(latest).to_have_text("0.1")
        await screenshot(page, tmp_path / "0-up-to-date.png")

        pushed = await push_firmware(console, NEW_VERSION, size=IMAGE_SIZE, throttle_bps=THROTTLE_BPS)
        assert pushed.task_id is not None, pushed
        task_id = pushed.task_id
        await expect(latest).to_have_text(NEW_VERSION, timeout=UI_TIMEOUT_MS)
        await expect(installed).to_have_text("0.1")
        # The dialog fetches release notes when it opens: open it again to see the pushed firmware's
        # (version, human size and the host it comes from).
        await page.keyboard.press("Escape")
        await expect(content).to_have_count(0, timeout=UI_TIMEOUT_MS)
        content = await open_more_info(page, ENTITY_ID)
        installed = _row_value(content, "Installed version")
        latest = _row_value(content, "Latest version")
        await expect(latest).to_have_text(NEW_VERSION, timeout=UI_TIMEOUT_MS)
        await expect(content.locator("ha-markdown")).to_contain_text("1.0 MiB", timeout=UI_TIMEOUT_MS)
        await screenshot(page, shots / "update-card-available.png")

        await content.get_by_role("button", name="Update").click()
        # While the job runs the dialog says what it does (release notes step aside for the summary).
        await expect(content).to_contain_text(DOWNLOADING, timeout=UI_TIMEOUT_MS)
        values = await _watch_progress(page, content, installed, shots / "update-card-installing.png")
        await expect(latest).to_have_text(NEW_VERSION)
        await expect(content.locator("ha-progress-bar")).to_have_count(0, timeout=UI_TIMEOUT_MS)
        await expect(content).not_to_contain_text(DOWNLOADING)
        await screenshot(page, shots / "update-card-installed.png")

        moving = [v for v in values if 0 < v < 100]
        assert len(set(moving)) >= 2, f"the bar did not move: {values}"
        assert values == sorted(values), f"the bar went backwards: {values}"
        assert any(10 <= v <= 40 for v in values), f"no screenshot while 10-40 %: {values}"

        async def light1_done() -> bool:
            task = await console.get_task(task_id)
            progress = task.devices.get(light1.key)
            return progress is not None and progress.state == "done"

        await eventually(light1_done, within=10)
        status = await console.get_device(light1.product_id, light1.device_name)
        assert status.version == NEW_VERSION
