"""The `tencent_iot_gateway_ota` event: one per job state transition, with the data automations need."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

from homeassistant.components import persistent_notification
from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN, EVENT_OTA
from tests.integration.cloud_waits import cloud_task_ended
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import (
    LIGHT_PRODUCT,
    VERSION,
    install_update,
    light_key,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

# These tests read the OTA state sensor, which is disabled by default.
pytestmark = pytest.mark.usefixtures("ota_state_sensors_enabled")

FIRMWARE = bytes(range(256)) * 400  # 100 KiB
ENTITY = "update.light1_firmware"


def _record(hass: HomeAssistant) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    @callback
    def record(event: Event) -> None:
        events.append(dict(event.data))

    hass.bus.async_listen(EVENT_OTA, record)
    return events


async def test_event_sequence_of_an_install(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """Push then install: available, queued, downloading, verifying, flashing, done; once each."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})]
    )
    events = _record(hass)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    await install_update(hass, ENTITY)
    await hass.async_block_till_done()

    states = [e["state"] for e in events]
    assert states == ["available", "queued", "downloading", "verifying", "flashing", "done"], events
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    for event in events:
        assert event["device_id"] == device.id
        assert event["product_id"] == LIGHT_PRODUCT
        assert event["device_name"] == "light1"
        assert event["version"] == VERSION
        assert event["result_code"] is None
        assert event["message"] == ""
    assert events[0]["percent"] is None  # available
    assert events[1]["percent"] is None  # queued
    assert events[-2]["percent"] == 50  # flashing starts half-way
    assert events[-1]["percent"] == 100
    await cloud_task_ended(gateway, "light1", "done", VERSION)


async def test_failure_event_carries_code_and_message(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """A failed flash: the last event is `failed` with Tencent's code -5 and the reason."""
    await register_lights(gateway, "light1")
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(blocker)})])
    events = _record(hass)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await install_update(hass, ENTITY)
    await hass.async_block_till_done()
    last = events[-1]
    assert last["state"] == "failed"
    assert last["result_code"] == -5
    assert last["message"]
    assert last["version"] == VERSION
    await cloud_task_ended(gateway, "light1", "fail")


async def test_automation_notifies_on_failure(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """The README's first example: an automation triggered by a failed job (here it fires a test event)."""
    await register_lights(gateway, "light1")
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(blocker)})])
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "triggers": [
                    {"trigger": "event", "event_type": EVENT_OTA, "event_data": {"state": "failed"}}
                ],
                "actions": [
                    {
                        "event": "test_notified",
                        "event_data": {
                            "text": (
                                "{{ trigger.event.data.device_name }} -> {{ trigger.event.data.version }}: "
                                "{{ trigger.event.data.message }} ({{ trigger.event.data.result_code }})"
                            )
                        },
                    }
                ],
            }
        },
    )
    notified: list[str] = []
    hass.bus.async_listen("test_notified", callback(lambda event: notified.append(event.data["text"])))
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await install_update(hass, ENTITY)
    await hass.async_block_till_done()
    assert len(notified) == 1
    assert notified[0].startswith(f"light1 -> {VERSION}: ")
    assert notified[0].endswith("(-5)")
    await cloud_task_ended(gateway, "light1", "fail")


def _readme_automation(alias: str) -> dict[str, Any]:
    """The README's example automation with this alias, as Home Assistant would load it."""
    readme = Path(__file__).parents[3] / "README.md"
    for block in re.findall(r"```yaml\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.DOTALL):
        config = parse_yaml(block)
        if isinstance(config, dict) and config.get("alias") == alias:
            return config
    pytest.fail(f"no example automation {alias!r} in the README")


async def test_readme_examples(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """The README's two examples work: night install of every installable update; a notification on failure."""
    names = ("light1", "light2", "light3")
    await register_lights(gateway, *names)
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    await setup_gateway(
        hass,
        gateway,
        [
            sub("light1", flasher={"kind": "file", "directory": str(tmp_path / "ok")}),
            sub("light2", flasher={"kind": "file", "directory": str(blocker)}),
            sub("light3"),  # no flasher: not installable, left out by the template
        ],
    )
    notifications: list[str] = []

    @callback
    def on_notification(_kind: Any, current: dict[str, Any]) -> None:
        notifications[:] = [n["message"] for n in current.values()]

    assert await async_setup_component(hass, "persistent_notification", {})
    persistent_notification.async_register_callback(hass, on_notification)
    night = _readme_automation("Install sub-device firmware at night")
    failed = _readme_automation("Firmware update failed")
    assert await async_setup_component(hass, "automation", {"automation": [night, failed]})
    await push(gateway, FIRMWARE, *names)
    await wait_for(hass, lambda: all(state(hass, f"update.{n}_firmware").state == STATE_ON for n in names))

    await hass.services.async_call(
        "automation",
        "trigger",
        {ATTR_ENTITY_ID: "automation.install_sub_device_firmware_at_night"},
        blocking=True,
    )
    await wait_for(hass, lambda: state(hass, "sensor.light2_firmware_update_state").state == "failed")
    await wait_for(hass, lambda: state(hass, "sensor.light1_firmware_update_state").state == "done")
    await hass.async_block_till_done()
    assert state(hass, "update.light1_firmware").attributes["installed_version"] == VERSION
    assert state(hass, "sensor.light3_firmware_update_state").state == "available"
    assert len(notifications) == 1
    assert f"{LIGHT_PRODUCT}/light2" in notifications[0]
    assert notifications[0].endswith("(Tencent code -5)")
    await cloud_task_ended(gateway, "light1", "done", VERSION)
    await cloud_task_ended(gateway, "light2", "fail")
    # Detach the time trigger (a timer for 03:00 would outlive the test).
    await hass.services.async_call("automation", "turn_off", {ATTR_ENTITY_ID: "all"}, blocking=True)
