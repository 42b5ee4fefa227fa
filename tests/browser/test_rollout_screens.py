"""Staged rollouts in a real browser, in English and Simplified Chinese: the rollout options in the options
form, and the repair issue of a rollout halted by a failing canary (with its failing device and reason).

Screenshots go to the test's temporary folder, or to `$TENCENT_IOT_SCREENSHOTS` (the README's come from
`TENCENT_IOT_SCREENSHOTS=docs scripts/test tests/browser`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import time

from playwright.async_api import expect
import pytest

from demo_support.demo_push import push_firmware, wait_versions_reported
from demo_support.demo_setup import LIGHTS
from tests.browser.browser_rig import (
    UI_TIMEOUT_MS,
    VIEWPORT,
    call_ws,
    demo_in_browser,
    log_in,
    screenshot,
    screenshots_folder,
)
from tests.emulator_fixtures import eventually

VERSION = "V300R0001"


@dataclass(frozen=True, slots=True)
class Words:
    """What the user reads in one language."""

    locale: str
    language: str
    configure: str
    submit: str
    rollout: str
    canary_size: str
    halted: str
    reason: str


ENGLISH = Words(
    "en-US",
    "en",
    "Configure",
    "Submit",
    "Staged rollout",
    "Canary group size",
    f"Rollout of {VERSION} halted",
    # The failing device's reason as its install call words it (the server's language: English here).
    "with HTTP 422 (Tencent code",
)
CHINESE = Words(
    "zh-CN",
    "zh-Hans",
    "配置",
    "提交",
    "分阶段发布",
    "金丝雀组大小",
    f"{VERSION} 的发布已中止",
    # The failing device's reason is text the backend composes, in the server's language (English in the demo,
    # whatever the user's): only the language-neutral part is asserted here.
    "HTTP 422",
)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("words", [ENGLISH, CHINESE], ids=["en", "zh-Hans"])
async def test_rollout_options_and_halted_rollout_repair(
    socket_enabled: None, tmp_path: Path, words: Words
) -> None:
    """The options form shows the rollout settings; a canary that refuses the image halts the rollout and the
    repair issue says so, naming the failing device and its reason."""
    shots = screenshots_folder(tmp_path)
    async with demo_in_browser(tmp_path) as rig:
        demo, api, console, browser = rig.demo, rig.api, rig.console, rig.browser
        ha_url = rig.ha_url
        page = await browser.new_page(viewport=VIEWPORT, locale=words.locale)
        await log_in(page, ha_url)
        await call_ws(page, {"type": "config/core/update", "language": words.language})

        await page.goto(ha_url + "/config/integrations/integration/tencent_iot_gateway")
        await page.get_by_role("button", name=words.configure).first.click()
        dialog = page.locator("dialog-data-entry-flow")
        # The first page has only the switch; with it on, the rollout's own page asks its settings.
        rollout = dialog.locator("ha-selector-boolean").filter(has_text=words.rollout).locator("ha-switch")
        await expect(rollout).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(dialog.get_by_text(words.canary_size)).to_have_count(0)
        await rollout.click()
        await expect(rollout.get_by_role("switch")).to_be_checked()
        await dialog.get_by_role("button", name=words.submit).click()
        await expect(dialog.get_by_text(words.canary_size).first).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(dialog.get_by_text(words.rollout, exact=True).first).to_be_visible()
        await dialog.get_by_role("spinbutton", name=words.canary_size).scroll_into_view_if_needed()
        await screenshot(page, shots / f"rollout-options-{words.language}.png")
        await page.keyboard.press("Escape")

        reloaded = time.time()
        await api.run_flow(
            "/api/config/config_entries/options/flow",
            {"handler": demo.setup.entry_id},
            [
                {
                    "install_policy": "auto",
                    "max_downloads": 2,
                    "max_flashes": 2,
                    "max_firmware_size_mib": 512,
                    "rollout": True,
                },
                {"canary_size": 1, "canary_unit": "devices", "soak_min": 0, "max_failures": 1},
            ],
        )

        async def lights_ready() -> bool:
            states = [await api.state(f"update.{light.device_name}_firmware") for light in LIGHTS]
            return all(s["state"] not in ("unavailable", "unknown") for s in states)

        await eventually(lights_ready, within=30)
        await wait_versions_reported(console, reloaded)
        for light in LIGHTS:
            await console.set_virtual_device_fault(light.product_id, light.device_name, "reject")
        await push_firmware(console, VERSION, size=64 * 1024, throttle_bps=None)

        async def halted() -> bool:
            issues = await call_ws(page, {"type": "repairs/list_issues"})
            return any(i["translation_key"] == "rollout_halted" for i in issues["issues"])

        await eventually(halted, within=60)
        await page.goto(ha_url + "/config/repairs")
        await page.get_by_text(re.compile(re.escape(words.halted))).first.click()
        await expect(page.get_by_text(re.compile(re.escape(words.reason))).first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        await screenshot(page, shots / f"rollout-halted-{words.language}.png")
