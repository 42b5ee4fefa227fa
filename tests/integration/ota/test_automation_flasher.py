"""The `automation` flasher end to end: the job fires a flash request and waits for `complete_flash`."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_FLASHER,
    CONF_FLASHER_KIND,
    CONF_INSTALLED_VERSION,
    DOMAIN,
    EVENT_FLASH_REQUEST,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.subentry_flow import nest
from tests.emulator_fixtures import eventually
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

FIRMWARE = bytes(range(256)) * 200  # 50 KiB
ENTITY = "update.light1_firmware"


async def _ready(hass: HomeAssistant, gateway: Gateway, timeout_s: float = 5.0) -> ConfigEntry:
    """One light with the automation flasher, a firmware pushed to it."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "automation", "timeout_s": timeout_s})]
    )
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    return entry


async def test_an_automation_flashes_and_answers(hass: HomeAssistant, gateway: Gateway) -> None:
    """A real automation answers the request: the install ends with the new version, reported to the cloud."""
    entry = await _ready(hass, gateway)
    requests: list[dict[str, Any]] = []
    images: list[bytes] = []

    @callback
    def record(event: Event) -> None:
        requests.append(dict(event.data))
        # The image exists while the request waits (it is deleted once the job ends).
        images.append(Path(event.data["image_path"]).read_bytes())

    hass.bus.async_listen(EVENT_FLASH_REQUEST, record)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "triggers": [{"trigger": "event", "event_type": EVENT_FLASH_REQUEST}],
                "actions": [
                    {
                        "action": f"{DOMAIN}.complete_flash",
                        "data": {"job_id": "{{ trigger.event.data.job_id }}", "success": True},
                    }
                ],
            }
        },
    )
    await install_update(hass, ENTITY)

    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert len(requests) == 1
    request = requests[0]
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert request["device_id"] == device.id
    assert request["product_id"] == LIGHT_PRODUCT
    assert request["device_name"] == "light1"
    assert request["version"] == VERSION
    assert request["md5"] == hashlib.md5(FIRMWARE).hexdigest()
    assert request["size"] == len(FIRMWARE)
    assert len(request["job_id"]) >= 16
    assert images == [FIRMWARE]

    async def reported() -> bool:
        status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
        return status.version == VERSION and status.task is not None and status.task.state == "done"

    await eventually(reported)


async def test_failure_reported_by_the_automation(hass: HomeAssistant, gateway: Gateway) -> None:
    """`complete_flash` with success false: the install raises code -5 with the automation's message."""
    await _ready(hass, gateway)

    @callback
    def answer(event: Event) -> None:
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN,
                "complete_flash",
                {"job_id": event.data["job_id"], "success": False, "message": "the device did not reboot"},
                blocking=True,
            )
        )

    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    with pytest.raises(HomeAssistantError) as caught:
        await install_update(hass, ENTITY)
    assert caught.value.translation_key == "failure_automation_failed"
    placeholders = caught.value.translation_placeholders or {}
    assert placeholders["code"] == "-5"
    assert placeholders["remote"] == "the device did not reboot"  # the automation's own words, quoted
    assert "“the device did not reboot”" in str(caught.value)
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "0.1"

    async def failed_in_cloud() -> bool:
        status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
        task = status.task
        return (
            task is not None
            and task.state == "fail"
            and task.result_msg == "the flashing automation reported a failure: the device did not reboot"
        )

    await eventually(failed_in_cloud)


async def test_no_answer_times_out(hass: HomeAssistant, gateway: Gateway) -> None:
    """Nobody answers: the job fails after the flasher's timeout, and a late answer is refused."""
    await _ready(hass, gateway, timeout_s=0.3)
    job_ids: list[str] = []
    hass.bus.async_listen(EVENT_FLASH_REQUEST, callback(lambda event: job_ids.append(event.data["job_id"])))
    started = asyncio.get_running_loop().time()
    with pytest.raises(HomeAssistantError) as caught:
        await install_update(hass, ENTITY)
    assert asyncio.get_running_loop().time() - started < 3
    placeholders = caught.value.translation_placeholders or {}
    assert placeholders["code"] == "-5"
    assert caught.value.translation_key == "failure_automation_timeout"
    assert placeholders["seconds"] == "0.3"
    assert "complete_flash" in str(caught.value)  # the advice names the action to call
    assert state(hass, "sensor.light1_firmware_update_state").state == "failed"
    assert len(job_ids) == 1
    await cloud_task_ended(gateway, "light1", "fail")
    with pytest.raises(ServiceValidationError) as late:
        await hass.services.async_call(
            DOMAIN, "complete_flash", {"job_id": job_ids[0], "success": True}, blocking=True
        )
    assert late.value.translation_key == "unknown_job"


async def test_answer_with_the_version_the_device_reports(hass: HomeAssistant, gateway: Gateway) -> None:
    """`complete_flash` may name the version the device now runs; it is the one recorded."""
    await _ready(hass, gateway)

    @callback
    def answer(event: Event) -> None:
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN,
                "complete_flash",
                {"job_id": event.data["job_id"], "success": True, "version": event.data["version"]},
                blocking=True,
            )
        )

    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    await install_update(hass, ENTITY)
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    await cloud_task_ended(gateway, "light1", "done", VERSION)


async def test_selectable_in_the_sub_device_flow(hass: HomeAssistant, gateway: Gateway) -> None:
    """The sub-device flow offers `automation` and stores its timeout; a bad timeout is a form error."""
    entry = await setup_gateway(hass, gateway, [])
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"product_id": LIGHT_PRODUCT, "device_name": "light9"}
    )
    schema = result["data_schema"]
    assert schema is not None
    kinds = schema.schema[CONF_FLASHER_KIND].config["options"]
    assert "automation" in kinds
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        nest({CONF_INSTALLED_VERSION: "1.0", CONF_FLASHER_KIND: "automation", "unbind_on_remove": False}),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "flasher_automation"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {"timeout_s": 120})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    stored = next(s for s in entry.subentries.values() if s.unique_id == light_key("light9"))
    assert stored.data[CONF_FLASHER] == {"kind": "automation", "timeout_s": 120.0}
    # The running gateway takes it without a reload (the cloud does not know light9: it stays unavailable).
    await wait_for(hass, lambda: entry.runtime_data.has_flasher(DeviceId(LIGHT_PRODUCT, "light9")))
