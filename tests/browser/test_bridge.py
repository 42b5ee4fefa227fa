"""The bridge in a real browser, in English and Simplified Chinese: a light bridged to Tencent through the
"Bridge entities to Tencent" form in Home Assistant's UI, toggled from the emulator's console page (the stand-in
for Tencent's app), then changed in Home Assistant and seen on the console page.

The demo (`demo_support`) registers the light product in the emulator (the standard light template, dynamic
registration on) and its configuration has `light.living_room_lamp`. Screenshots go to the test's temporary
folder, or to `$TENCENT_IOT_SCREENSHOTS` (the README's come from `TENCENT_IOT_SCREENSHOTS=docs scripts/test
tests/browser`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Locator, Page, expect
import pytest

from demo_support.demo_setup import BRIDGE_LIGHT, BRIDGE_PRODUCT
from tencent_iot_emulator.console_client import ConsoleError
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

DEVICE_NAME = (
    "light_living_room_lamp"  # what the bridge names the light's device (its entity id, `_` for `.`)
)
DEVICE_KEY = f"{BRIDGE_PRODUCT}/{DEVICE_NAME}"
LIGHT_NAME = "Living room lamp"


@dataclass(frozen=True, slots=True)
class Words:
    """What the user reads in one language (the integration's words come from its translations)."""

    locale: str
    language: str
    bridge: str
    light: str
    submit: str
    entities_title: str
    product_secret: str
    registration_url: str
    finish: str


ENGLISH = Words(
    "en-US",
    "en",
    "Bridge entities to Tencent",
    "Light",
    "Submit",
    f"Entities of {BRIDGE_PRODUCT}",
    "Product secret",
    "Registration service URL",
    "Finish",
)
CHINESE = Words(
    "zh-CN",
    "zh-Hans",
    "将实体桥接到腾讯云",
    "灯",
    "提交",
    f"{BRIDGE_PRODUCT} 的实体",
    "产品密钥",
    "注册服务地址",
    "完成",
)


async def _bridge_the_light(
    page: Page, words: Words, ha_url: str, product_secret: str, https_url: str
) -> Locator:
    """The subentry flow in the UI: the product and its category, then the light, the product secret and the
    emulator's registration service; returns the dialog at its second step, filled in."""
    await page.goto(ha_url + "/config/integrations/integration/tencent_iot_gateway")
    await page.get_by_role("button", name=words.bridge).click()
    dialog = page.locator("dialog-data-entry-flow")
    product = dialog.get_by_role("textbox").nth(0)
    await expect(product).to_be_visible(timeout=UI_TIMEOUT_MS)
    await product.fill(BRIDGE_PRODUCT)
    await dialog.locator("ha-selector-select ha-select").first.click()
    await page.get_by_role("menuitem", name=words.light, exact=True).click()
    await dialog.get_by_role("button", name=words.submit).click()

    await expect(dialog.get_by_text(words.entities_title)).to_be_visible(timeout=UI_TIMEOUT_MS)
    await dialog.locator("ha-selector-entity ha-entity-picker").first.click()
    # The light category's filter leaves the demo's one light (no typing: a key the search box has not taken
    # yet is one of Home Assistant's shortcuts).
    await dialog.locator("ha-picker-combo-box ha-combo-box-item").filter(has_text=LIGHT_NAME).click()
    await _until_form_has(page, dialog, "entities", [BRIDGE_LIGHT])
    # The product secret, then the registration service (the gateway's entry is a custom deployment, the
    # emulator: its service is the emulator's); the property identifiers' boxes come after, folded.
    boxes = dialog.locator("ha-selector-text input")
    for key, box, value in (
        ("product_secret", boxes.nth(0), product_secret),
        ("registration_url", boxes.nth(1), https_url),
    ):
        await box.fill(value)
        await _until_form_has(page, dialog, key, value)
    await expect(dialog.get_by_text(words.product_secret)).to_be_visible()
    await expect(dialog.get_by_text(words.registration_url)).to_be_visible()
    return dialog


async def _until_form_has(page: Page, dialog: Locator, key: str, value: object) -> None:
    """Until the form holds what was entered: the frontend takes each change into its data after a render, so
    a change made before that one was taken would replace it (a product secret lost to the next box)."""
    form = await dialog.locator("step-flow-form ha-form").first.element_handle()
    await page.wait_for_function(
        "([form, key, value]) => JSON.stringify(form.data?.[key]) === JSON.stringify(value)",
        arg=[form, key, value],
        timeout=UI_TIMEOUT_MS,
    )


def _console_value(console_page: Page, property_id: str) -> Locator:
    """The value the console page shows for a property of the bridged light's device."""
    device = console_page.locator(f'article.thing[data-device="{DEVICE_KEY}"]')
    return (
        device.get_by_role("row")
        .filter(has=console_page.locator(f"code:text-is('{property_id}')"))
        .locator("code.value")
    )


async def _send_from_console(console_page: Page, property_id: str, value: str) -> None:
    """The console page's control form, as a person uses it; what they entered outlives the page's refresh."""
    form = console_page.locator(f'article.thing[data-device="{DEVICE_KEY}"] form.control')
    await form.get_by_label("Property").select_option(property_id)
    await form.get_by_label("Value").fill(value)
    updated = console_page.locator("main .meta").first
    await expect(updated).not_to_have_text(await updated.inner_text(), timeout=UI_TIMEOUT_MS)
    await expect(form.get_by_label("Property")).to_have_value(property_id)
    await expect(form.get_by_label("Value")).to_have_value(value)
    await form.get_by_role("button", name="Send control").click()
    await expect(form.locator("output")).to_contain_text(
        f'Sent {{"{property_id}":{value}}}', timeout=UI_TIMEOUT_MS
    )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("words", [ENGLISH, CHINESE], ids=["en", "zh-Hans"])
async def test_bridge_a_light_and_control_it_both_ways(
    socket_enabled: None, tmp_path: Path, words: Words
) -> None:
    """Bridge form → the light's device online in the cloud; console control power_switch 1 → the light is on
    in HA; brightness changed in HA → the console page shows the new value."""
    shots = screenshots_folder(tmp_path)
    async with demo_in_browser(tmp_path) as rig:
        demo, api, console, browser = rig.demo, rig.api, rig.console, rig.browser
        ha_url = rig.ha_url
        assert (await api.state(BRIDGE_LIGHT))["state"] == "off"

        page = await browser.new_page(viewport=VIEWPORT, locale=words.locale)
        await log_in(page, ha_url)
        await call_ws(page, {"type": "config/core/update", "language": words.language})
        dialog = await _bridge_the_light(
            page, words, ha_url, demo.setup.bridge_product_secret, demo.endpoints.https_url
        )
        await screenshot(page, shots / f"bridge-form-{words.language}.png")
        await dialog.get_by_role("button", name=words.submit).click()
        success = dialog.get_by_text(f"{BRIDGE_PRODUCT} (light)")
        await expect(success).to_be_visible(timeout=UI_TIMEOUT_MS)
        await dialog.get_by_role("button", name=words.finish).click()
        await expect(success).to_be_hidden(timeout=UI_TIMEOUT_MS)

        async def settled() -> bool:
            """Registered, online, its info and first report in: a control now reaches it at once."""
            try:
                status = await console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)
            except ConsoleError as err:
                if err.status == 404:
                    return False
                raise
            data = await console.device_properties(BRIDGE_PRODUCT, DEVICE_NAME)
            return status.online and data.info is not None and bool(data.reported)

        await eventually(settled, within=30)

        # The cloud's side: the console page shows the light off, and turns it on.
        console_page = await browser.new_page(viewport=VIEWPORT, locale=words.locale)
        await console_page.goto(demo.endpoints.http_url + "/")
        await expect(_console_value(console_page, "power_switch")).to_have_text("0", timeout=UI_TIMEOUT_MS)
        await _send_from_console(console_page, "power_switch", "1")

        async def light_on() -> bool:
            return bool((await api.state(BRIDGE_LIGHT))["state"] == "on")

        await eventually(light_on, within=10)
        device = console_page.locator(f'article.thing[data-device="{DEVICE_KEY}"]')
        await expect(device.locator(".last-control")).to_contain_text(
            "answered code 0", timeout=UI_TIMEOUT_MS
        )
        await expect(_console_value(console_page, "power_switch")).to_have_text("1", timeout=UI_TIMEOUT_MS)
        await device.evaluate("(article) => article.scrollIntoView({block: 'start'})")
        await screenshot(console_page, shots / f"bridge-console-{words.language}.png")

        # Home Assistant's side: the light's own dialog, its brightness slider 10 % down (50 → 40 %); the
        # console page follows.
        await page.evaluate(
            """(entityId) => document.querySelector('home-assistant').dispatchEvent(
                new CustomEvent('hass-more-info', {detail: {entityId}, bubbles: true, composed: true}))""",
            BRIDGE_LIGHT,
        )
        slider = page.locator("more-info-light ha-state-control-light-brightness [role=slider]")
        await expect(slider).to_have_attribute("aria-valuenow", "50", timeout=UI_TIMEOUT_MS)
        await slider.focus()
        await page.keyboard.press("PageDown")
        await expect(_console_value(console_page, "brightness")).to_have_text("40", timeout=UI_TIMEOUT_MS)
        assert (await api.state(BRIDGE_LIGHT))["attributes"]["brightness"] == round(40 * 255 / 100)
        await screenshot(page, shots / f"bridge-light-{words.language}.png")
