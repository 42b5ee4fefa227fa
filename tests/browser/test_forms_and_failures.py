"""A new user's path in a real browser, in English and in Simplified Chinese: add a sub-device through its
three forms (ids; settings with collapsed sections, where a pre-flight condition is set; the http flasher),
watch its install wait for that condition with the reason in the update dialog, then an MD5 fault from the
emulator fail it (worded with advice in the dialog, a repair issue and the error of a retry by hand), a second
sub-device whose device refuses the connection fail with the reason and what to check, and finally install.

Screenshots go to the test's temporary folder, or to `$TENCENT_IOT_SCREENSHOTS` (the README's come from
`TENCENT_IOT_SCREENSHOTS=docs scripts/test tests/browser`).
"""

# ruff: noqa: RUF001  (Chinese texts use full-width punctuation)

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import time

from playwright.async_api import Locator, Page, ViewportSize, expect
import pytest

from demo_support.demo_push import push_firmware
from demo_support.demo_setup import SEED_VERSION, SUBENTRY_TYPE, DemoError, HomeAssistantApi
from tests.browser.browser_rig import (
    UI_TIMEOUT_MS,
    VIEWPORT,
    call_ws,
    demo_in_browser,
    free_port,
    frontend_summary_says,
    log_in,
    open_more_info,
    reload_frontend,
    screenshot,
    screenshots_folder,
)
from tests.emulator_fixtures import eventually

PRODUCT = "LIGHTPID01"
DEVICE = "light4"
ENTITY_ID = "update.porch_light_firmware"
MODEL = "Bulb A19"
# A second sub-device whose device is not listening: its flash fails with "refused the connection".
REFUSING_DEVICE = "light5"
REFUSING_NAME = "Garage light"
REFUSING_ENTITY_ID = "update.garage_light_firmware"
VERSION = "V100R0001"
IMAGE_SIZE = 256 * 1024
# The pre-flight condition set through the form: the battery (a state the test sets) above 30 %.
BATTERY = "sensor.porch_light_battery"
CONDITION = "{{ states('sensor.porch_light_battery') | int(0) > 30 }}"
# Tall enough to show the settings form's fields and all of its sections at once.
FORM_VIEWPORT: ViewportSize = {"width": VIEWPORT["width"], "height": 1040}


@dataclass(frozen=True, slots=True)
class Words:
    """What the user reads in one language (the integration's words come from its translations)."""

    locale: str
    language: str
    add_sub_device: str
    submit: str
    product_id: str
    device_name: str
    settings_title: str
    name: str
    device_secret: str
    installed_version: str
    details: str
    model: str
    preflight: str
    health: str
    http_flasher: str
    form_title: str
    upload_url: str
    version_url: str
    poll_interval: str
    version_timeout: str
    update: str
    firmware: str
    held: str
    md5_failure: str
    md5_advice: str
    repair_title: str
    refused: str
    refused_advice: str


ENGLISH = Words(
    locale="en-US",
    language="en",
    add_sub_device="Add sub-device",
    submit="Submit",
    product_id="Product ID",
    device_name="Device name",
    settings_title=f"Add {DEVICE}",
    name="Name",
    device_secret="Device secret",
    installed_version="Installed firmware version",
    details="Model, maker and removal",
    model="Model",
    preflight="Pre-flight conditions",
    health="Health check after a flash",
    http_flasher="HTTP upload to the device",
    form_title="Upload the image to Porch light over HTTP",
    upload_url="Upload URL",
    version_url="Version URL",
    poll_interval="Poll interval",
    version_timeout="Version timeout",
    update="Update",
    firmware="Firmware",
    held="Waiting: the pre-flight condition of Porch light is false",
    md5_failure="does not match its MD5 checksum",
    md5_advice="upload the firmware to the console again",
    repair_title="Automatic update of Porch light failed",
    refused="refused the connection",
    refused_advice="Is it on, and is the Upload URL in its flasher settings right?",
)
CHINESE = Words(
    locale="zh-CN",
    language="zh-Hans",
    add_sub_device="添加子设备",
    submit="提交",
    product_id="产品 ID",
    device_name="设备名称",
    settings_title=f"添加 {DEVICE}",
    name="名称",
    device_secret="设备密钥",
    installed_version="当前固件版本",
    details="型号、制造商与删除",
    model="型号",
    preflight="预检条件",
    health="刷写后的健康检查",
    http_flasher="HTTP 上传到设备",
    form_title="通过 HTTP 将固件上传到 Porch light",
    upload_url="上传地址",
    version_url="版本查询地址",
    poll_interval="查询间隔",
    version_timeout="版本确认超时",
    update="更新",
    firmware="固件",
    held="等待中：Porch light 的预检条件未满足",
    md5_failure="与其 MD5 校验值不符",
    md5_advice="请在控制台重新上传固件",
    repair_title="Porch light 的自动更新失败",
    refused="拒绝了连接",
    refused_advice="设备是否已开机？刷写设置中的上传地址是否正确？",
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
    page: Page, words: Words, ha_url: str, secret: str, http_url: str, shots: Path
) -> Locator:
    """The three forms of a new sub-device, filled as a user would (fields by their labels); the dialog, on
    the flasher's form, ready to be submitted. Screenshots of the settings form with its sections."""
    await page.goto(ha_url + "/config/integrations/integration/tencent_iot_gateway")
    await page.get_by_role("button", name=words.add_sub_device).click()
    dialog = page.locator("dialog-data-entry-flow")

    # 1. Which device: its ids, nothing else.
    await dialog.get_by_role("textbox", name=words.product_id).fill(PRODUCT)
    await dialog.get_by_role("textbox", name=words.device_name).fill(DEVICE)
    await expect(dialog.get_by_role("textbox")).to_have_count(2)
    await dialog.get_by_role("button", name=words.submit).click()

    # 2. Its settings: four fields, the optional rest in three sections, collapsed.
    await expect(dialog.get_by_text(words.settings_title)).to_be_visible(timeout=UI_TIMEOUT_MS)
    sections = [
        dialog.get_by_role("button", name=title) for title in (words.details, words.preflight, words.health)
    ]
    for header in sections:
        await expect(header).to_have_attribute("aria-expanded", "false")
    model = dialog.get_by_role("textbox", name=words.model, exact=True)
    await expect(model).to_be_hidden()
    await dialog.get_by_role("textbox", name=words.name, exact=True).fill("Porch light")
    await dialog.get_by_role("textbox", name=words.device_secret, exact=True).fill(secret)
    await dialog.get_by_role("textbox", name=words.installed_version, exact=True).fill(SEED_VERSION)
    await dialog.locator("ha-selector-select ha-select").click()
    await page.get_by_role("menuitem", name=words.http_flasher).click()
    # A section opened, filled and closed again keeps what was entered (the model is the firmware's title).
    await sections[0].click()
    await model.fill(MODEL)
    await sections[0].click()
    await expect(model).to_be_hidden()
    await sections[1].click()
    # The section's template editor (CodeMirror): its text box takes the template as typed.
    condition = (
        dialog.locator("ha-form-expandable").filter(has_text=words.preflight).locator("ha-code-editor")
    ).get_by_role("textbox")
    await condition.fill(CONDITION)
    await expect(condition).to_have_text(CONDITION)
    await expect(sections[0]).to_have_attribute("aria-expanded", "false")
    await expect(sections[1]).to_have_attribute("aria-expanded", "true")
    await expect(sections[2]).to_have_attribute("aria-expanded", "false")
    await page.set_viewport_size(FORM_VIEWPORT)
    await sections[2].scroll_into_view_if_needed()
    await screenshot(page, shots / f"sub-device-form-{words.language}.png")
    await page.set_viewport_size(VIEWPORT)
    await dialog.get_by_role("button", name=words.submit).click()

    # 3. The http flasher's own form, which starts with the kind (to go to another one from here).
    await expect(dialog.get_by_text(words.form_title)).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(dialog.locator("ha-selector-select ha-select").first).to_contain_text(words.http_flasher)
    await dialog.get_by_role("textbox", name=words.upload_url).fill(
        http_url + "/devices/{product_id}/{device_name}/firmware"
    )
    await dialog.get_by_role("textbox", name=words.version_url).fill(
        http_url + "/devices/{product_id}/{device_name}"
    )
    await dialog.get_by_role("spinbutton", name=words.poll_interval).fill("0.5")
    await dialog.get_by_role("spinbutton", name=words.version_timeout).fill("60")
    return dialog


async def _add_refusing_sub_device(api: HomeAssistantApi, entry_id: str, secret: str) -> None:
    """The second sub-device, through the same flow by the REST API: an http flasher aimed at a port on
    which nothing listens (its device is off)."""
    path = "/api/config/config_entries/subentries/flow"
    result = await api.request("POST", path, {"handler": [entry_id, SUBENTRY_TYPE]})
    for user_input in (
        {"product_id": PRODUCT, "device_name": REFUSING_DEVICE},
        {
            "name": REFUSING_NAME,
            "device_secret": secret,
            "installed_version": SEED_VERSION,
            "flasher_kind": "http",
            "details": {"unbind_on_remove": False},
            "preflight": {},
            "health": {},
        },
        {"url": f"http://127.0.0.1:{free_port()}/ota"},
    ):
        assert result.get("type") == "form", result
        assert not result.get("errors"), result
        result = await api.request("POST", f"{path}/{result['flow_id']}", user_input)
    assert result.get("type") == "create_entry", result


@pytest.mark.timeout(300)
@pytest.mark.parametrize("words", [ENGLISH, CHINESE], ids=["en", "zh-Hans"])
async def test_forms_held_install_failures_and_install(
    socket_enabled: None, tmp_path: Path, words: Words
) -> None:
    """Sectioned form → sub-device; a false pre-flight condition → the dialog says why it waits; MD5 fault →
    reason and advice in the dialog, the repair issue and a retry's error; a device refusing the connection
    → reason and advice; fault gone → installed. One language throughout."""
    shots = screenshots_folder(tmp_path)
    async with demo_in_browser(tmp_path) as rig:
        demo, api, console, browser = rig.demo, rig.api, rig.console, rig.browser
        ha_url = rig.ha_url
        credentials = await console.add_device(PRODUCT, DEVICE)
        await console.put_virtual_device(PRODUCT, DEVICE, SEED_VERSION)
        refusing = await console.add_device(PRODUCT, REFUSING_DEVICE)
        # The battery the pre-flight condition reads: low, so an install waits.
        await api.request("POST", f"/api/states/{BATTERY}", {"state": "10"})

        page = await browser.new_page(viewport=VIEWPORT, locale=words.locale)
        await log_in(page, ha_url)
        # Texts Home Assistant composes itself (the release summary) follow the server's language.
        await call_ws(page, {"type": "config/core/update", "language": words.language})

        dialog = await _add_sub_device_through_the_form(
            page, words, ha_url, credentials.device_secret, demo.endpoints.http_url, shots
        )
        await dialog.get_by_role("textbox", name=words.upload_url).scroll_into_view_if_needed()
        await screenshot(page, shots / f"flasher-form-{words.language}.png")
        await dialog.get_by_role("button", name=words.submit).click()
        await expect(dialog.locator("ha-dialog, ha-md-dialog, wa-dialog").first).to_be_hidden(
            timeout=UI_TIMEOUT_MS
        )
        await _add_refusing_sub_device(api, demo.setup.entry_id, refusing.device_secret)

        async def ready(entity_id: str) -> bool:
            try:
                return (await api.state(entity_id))["state"] not in ("unavailable", "unknown")
            except DemoError:  # not there yet
                return False

        async def both_ready() -> bool:
            return await ready(ENTITY_ID) and await ready(REFUSING_ENTITY_ID)

        await eventually(both_ready, within=30)
        # The model entered in the collapsed section reached the sub-device: it is the firmware's title.
        assert (await api.state(ENTITY_ID))["attributes"]["title"] == MODEL

        # Unattended installs (policy `auto`), then a push whose download the emulator corrupts.
        await api.run_flow(
            "/api/config/config_entries/options/flow",
            {"handler": demo.setup.entry_id},
            [{"install_policy": "auto", "max_downloads": 2, "max_flashes": 2, "max_firmware_size_mib": 512}],
        )
        await eventually(both_ready, within=30)
        # The entry was reloaded after the switch to the user's language: the entity's name is in it, and so is
        # the frontend loaded again (it reads entity names when it loads).
        assert (await api.state(ENTITY_ID))["attributes"]["friendly_name"] == f"Porch light {words.firmware}"
        await reload_frontend(page)

        async def reported(device_name: str) -> bool:
            status = await console.get_device(PRODUCT, device_name)
            return status.online and status.version == SEED_VERSION

        # The task goes to the devices the cloud knows run 0.1: both new ones must have said so.
        await eventually(lambda: reported(DEVICE), within=30)
        await eventually(lambda: reported(REFUSING_DEVICE), within=30)
        # Set before the push (the automatic install starts at once); unthrottled pushes use the global knobs.
        await console.set_faults({"flip_byte_at": 100})
        pushed = await push_firmware(console, VERSION, size=IMAGE_SIZE, throttle_bps=None)
        assert pushed.task_id is not None

        async def summary_says(entity_id: str, text: str) -> bool:
            summary = (await api.state(entity_id))["attributes"].get("release_summary") or ""
            return text in summary

        # The battery is low: the install waits, and the dialog says why (not just "Installing").
        await eventually(lambda: summary_says(ENTITY_ID, words.held), within=60)
        content = await open_more_info(page, ENTITY_ID)
        await expect(content).to_contain_text(words.held, timeout=UI_TIMEOUT_MS)
        await expect(page.locator("ha-more-info-dialog")).to_contain_text(words.firmware)
        await screenshot(page, shots / f"update-held-{words.language}.png")
        await page.keyboard.press("Escape")
        await expect(content).to_have_count(0, timeout=UI_TIMEOUT_MS)

        # Charged: the install goes on, and the corrupted download fails it.
        await api.request("POST", f"/api/states/{BATTERY}", {"state": "80"})
        await eventually(lambda: summary_says(ENTITY_ID, words.md5_failure), within=60)
        await frontend_summary_says(page, ENTITY_ID, words.md5_failure)
        content = await open_more_info(page, ENTITY_ID)
        await expect(content).to_contain_text(words.md5_failure, timeout=UI_TIMEOUT_MS)
        await expect(content).to_contain_text(words.md5_advice)
        await expect(content).not_to_contain_text(words.held)
        await screenshot(page, shots / f"update-failed-{words.language}.png")

        # By hand, still faulted: the error is worded in the user's language, with the advice.
        await content.get_by_role("button", name=words.update).click()
        toast = await _toast_with(page, words.md5_failure)
        assert words.md5_advice in toast
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

        # The fault is gone; the second sub-device's device is off: its flash fails with what to check.
        await console.reset_faults()
        await page.goto(ha_url + "/config/integrations/integration/tencent_iot_gateway")
        content = await open_more_info(page, REFUSING_ENTITY_ID)
        await content.get_by_role("button", name=words.update).click()
        toast = await _toast_with(page, words.refused)
        assert words.refused_advice in toast, toast
        assert "ClientConnectorError" not in toast
        await page.keyboard.press("Escape")
        await expect(content).to_have_count(0, timeout=UI_TIMEOUT_MS)
        await frontend_summary_says(page, REFUSING_ENTITY_ID, words.refused)
        content = await open_more_info(page, REFUSING_ENTITY_ID)
        await expect(content).to_contain_text(words.refused, timeout=UI_TIMEOUT_MS)
        await expect(content).to_contain_text(words.refused_advice)
        await screenshot(page, shots / f"update-refused-{words.language}.png")
        await page.keyboard.press("Escape")

        # The next install of the first one succeeds and its repair issue goes away.
        await api.request("POST", "/api/services/update/install", {"entity_id": ENTITY_ID})

        async def installed() -> bool:
            return bool((await api.state(ENTITY_ID))["attributes"]["installed_version"] == VERSION)

        await eventually(installed, within=60)
        issues = await call_ws(page, {"type": "repairs/list_issues"})
        assert not [i for i in issues["issues"] if DEVICE in i["issue_id"]], issues
