"""A new user's path in a real browser, in English and in Simplified Chinese: add a sub-device with the http
flasher through its form, watch an MD5 fault from the emulator fail the automatic install (translated in the
release summary and a repair issue), fail again by hand (translated error), then install once the fault is gone.

Screenshots go to the test's temporary folder, or to `$TENCENT_IOT_SCREENSHOTS` (the README's come from
`TENCENT_IOT_SCREENSHOTS=docs scripts/test tests/browser`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import time

import aiohttp
from playwright.async_api import Locator, Page, expect
import pytest

from demo_support.demo_push import push_firmware
from demo_support.demo_setup import DemoError, HomeAssistantApi
from demo_support.demo_stack import DemoPaths, Ports, running_demo
from tencent_iot_emulator.console_client import ConsoleClient
from tests.browser.browser_rig import (
    UI_TIMEOUT_MS,
    VIEWPORT,
    call_ws,
    chromium,
    free_port,
    log_in,
    open_more_info,
    screenshot,
    screenshots_folder,
)
from tests.emulator_fixtures import eventually

PRODUCT = "LIGHTPID01"
DEVICE = "light4"
ENTITY_ID = "update.porch_light_firmware"
VERSION = "V100R0001"
IMAGE_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Words:
    """What the user reads in one language (the integration's words come from its translations)."""

    locale: str
    language: str
    add_sub_device: str
    submit: str
    http_flasher: str
    form_title: str
    update: str
    md5_failure: str
    repair_title: str


ENGLISH = Words(
    "en-US",
    "en",
    "Add sub-device",
    "Submit",
    "HTTP upload to the device",
    "Upload the image to Porch light over HTTP",
    "Update",
    "does not match its MD5 checksum",
    "Automatic update of Porch light failed",
)
CHINESE = Words(
    "zh-CN",
    "zh-Hans",
    "添加子设备",
    "提交",
    "HTTP 上传到设备",
    "通过 HTTP 将固件上传到 Porch light",
    "更新",
    "与其 MD5 校验值不符",
    "Porch light 的自动更新失败",
)


async def _toast_with(page: Page, text: str) -> str:
    """The text of the toast that says `text` (HA's toasts keep it in a property, behind shadow roots)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        texts = await page.locator("ha-toast").evaluate_all("(els) => els.map((e) => e.labelText || '')")
        found = [shown for shown in texts if text in shown]
        if found:
            return str(found[0])
        await page.wait_for_timeout(100)
    raise AssertionError(f"no toast says {text!r}")


async def _add_sub_device_through_the_form(
    page: Page, words: Words, ha_url: str, secret: str, http_url: str
) -> Locator:
    await page.goto(ha_url + "/config/integrations/integration/tencent_iot_gateway")
    await page.get_by_role("button", name=words.add_sub_device).click()
    dialog = page.locator("dialog-data-entry-flow")
    boxes = dialog.get_by_role("textbox")
    await expect(boxes.nth(0)).to_be_visible(timeout=UI_TIMEOUT_MS)
    # Product ID, device name, name, model, manufacturer, device secret, installed version.
    for index, value in (
        (0, PRODUCT),
        (1, DEVICE),
        (2, "Porch light"),
        (3, "Bulb A19"),
        (5, secret),
        (6, "0.1"),
    ):
        await boxes.nth(index).fill(value)
    await dialog.locator("ha-selector-select ha-select").click()
    await page.get_by_role("menuitem", name=words.http_flasher).click()
    await dialog.get_by_role("button", name=words.submit).click()
    await expect(dialog.get_by_text(words.form_title)).to_be_visible(timeout=UI_TIMEOUT_MS)
    boxes = dialog.get_by_role("textbox")
    # Upload URL, token, version URL; then poll interval, upload timeout, version timeout (seconds).
    await boxes.nth(0).fill(http_url + "/devices/{product_id}/{device_name}/firmware")
    await boxes.nth(2).fill(http_url + "/devices/{product_id}/{device_name}")
    seconds = dialog.get_by_role("spinbutton")
    await seconds.nth(0).fill("0.5")
    await seconds.nth(2).fill("60")
    return dialog


@pytest.mark.timeout(240)
@pytest.mark.parametrize("words", [ENGLISH, CHINESE], ids=["en", "zh-Hans"])
async def test_flasher_form_failure_and_install(socket_enabled: None, tmp_path: Path, words: Words) -> None:
    """Form → sub-device; MD5 fault → translated summary, repair issue, translated error; fixed → installed."""
    shots = screenshots_folder(tmp_path)
    paths = DemoPaths(tmp_path / "config", tmp_path / "emulator")
    ports = Ports(ha=free_port(), mqtt=0, mqtts=0, http=0, https=0)
    async with (
        aiohttp.ClientSession() as session,
        running_demo(paths, ports, session, timeout_s=90) as demo,
        chromium() as browser,
    ):
        ha_url = demo.setup.ha_url
        api = HomeAssistantApi(session, ha_url)
        api.access_token = demo.setup.access_token
        console = ConsoleClient(demo.endpoints.http_url, session)
        credentials = await console.add_device(PRODUCT, DEVICE)
        await console.put_virtual_device(PRODUCT, DEVICE, "0.1")

        page = await browser.new_page(viewport=VIEWPORT, locale=words.locale)
        await log_in(page, ha_url)
        # Texts Home Assistant composes itself (the release summary) follow the server's language.
        await call_ws(page, {"type": "config/core/update", "language": words.language})

        dialog = await _add_sub_device_through_the_form(
            page, words, ha_url, credentials.device_secret, demo.endpoints.http_url
        )
        await dialog.get_by_role("textbox").nth(0).scroll_into_view_if_needed()
        await screenshot(page, shots / f"flasher-form-{words.language}.png")
        await dialog.get_by_role("button", name=words.submit).click()
        await expect(dialog.locator("ha-dialog, ha-md-dialog, wa-dialog").first).to_be_hidden(
            timeout=UI_TIMEOUT_MS
        )

        async def porch_light_ready() -> bool:
            try:
                return (await api.state(ENTITY_ID))["state"] not in ("unavailable", "unknown")
            except DemoError:  # not there yet
                return False

        await eventually(porch_light_ready, within=30)

        # Unattended installs (policy `auto`), then a push whose download the emulator corrupts.
        await api.run_flow(
            "/api/config/config_entries/options/flow",
            {"handler": demo.setup.entry_id},
            [{"install_policy": "auto", "max_downloads": 2, "max_flashes": 2, "max_firmware_size_mib": 512}],
        )
        await eventually(porch_light_ready, within=30)
        # Set before the push (the automatic install starts at once); unthrottled pushes use the global knobs.
        await console.set_faults({"flip_byte_at": 100})
        pushed = await push_firmware(console, VERSION, size=IMAGE_SIZE, throttle_bps=None)
        assert pushed.task_id is not None

        async def failed() -> bool:
            summary = (await api.state(ENTITY_ID))["attributes"].get("release_summary") or ""
            return words.md5_failure in summary

        await eventually(failed, within=60)
        content = await open_more_info(page, ENTITY_ID)
        await expect(content).to_contain_text(words.md5_failure, timeout=UI_TIMEOUT_MS)
        await screenshot(page, shots / f"update-failed-{words.language}.png")

        # By hand, still faulted: the error is worded in the user's language.
        await content.get_by_role("button", name=words.update).click()
        toast = await _toast_with(page, words.md5_failure)
        # One language throughout: no English engine words in a Chinese toast (and the other way round).
        assert "mismatch" not in toast
        await screenshot(page, shots / f"update-error-{words.language}.png")
        await page.keyboard.press("Escape")

        await page.goto(ha_url + "/config/repairs")
        await page.get_by_text(words.repair_title).click()
        # The issue's description: the same translated failure.
        await expect(page.get_by_text(re.compile(re.escape(words.md5_failure))).first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        await screenshot(page, shots / f"repair-issue-{words.language}.png")
        await page.keyboard.press("Escape")

        # The fault is gone: the next install succeeds and the repair issue goes away.
        await console.reset_faults()
        await api.request("POST", "/api/services/update/install", {"entity_id": ENTITY_ID})

        async def installed() -> bool:
            return bool((await api.state(ENTITY_ID))["attributes"]["installed_version"] == VERSION)

        await eventually(installed, within=60)
        issues = await call_ws(page, {"type": "repairs/list_issues"})
        assert not [i for i in issues["issues"] if DEVICE in i["issue_id"]], issues
