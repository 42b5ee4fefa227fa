"""The actions against the emulator: set_installed_version, cancel_update, check_for_update, complete_flash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION, ATTR_LATEST_VERSION
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryDisabler
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN, EVENT_FLASH_REQUEST
from tests.emulator_fixtures import eventually

from .cloud_waits import cloud_task_ended
from .gateway_rig import Gateway
from .helpers import (
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
NEWER = "V200R0002"
ENTITY = "update.light1_firmware"
SENSOR = "sensor.light1_firmware_update_state"
# Slow enough that a test acts while the download runs (100 KiB take about 5 s), fast to stop when cut.
SLOW = {"throttle_bps": 20_000}


async def _light(hass: HomeAssistant, gateway: Gateway, flasher: dict[str, Any] | None = None) -> ConfigEntry:
    await register_lights(gateway, "light1")
    flasher = flasher or {"kind": "file", "directory": "/nonexistent-but-never-reached"}
    return await setup_gateway(hass, gateway, [sub("light1", flasher=flasher)])


def _device_id(hass: HomeAssistant, entry: ConfigEntry, key: str) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, key), entry.entry_id)
    assert device is not None, key
    return device.id


async def _call(hass: HomeAssistant, action: str, data: dict[str, Any]) -> None:
    await hass.services.async_call(DOMAIN, action, data, blocking=True)


async def _ota_updates_sent(gateway: Gateway) -> int:
    """How many messages the cloud sent on light1's OTA update topic."""
    records = await gateway.emulator.console.messages(light_key("light1"))
    topic = f"$ota/update/{light_key('light1')}"
    return sum(1 for r in records if r.direction == "out" and r.topic == topic)


async def test_set_installed_version(hass: HomeAssistant, gateway: Gateway) -> None:
    """The version is recorded (entity, device), and reported to the cloud."""
    entry = await _light(hass, gateway)
    device_id = _device_id(hass, entry, light_key("light1"))
    await _call(hass, "set_installed_version", {"device_id": device_id, "version": "2.0.1"})
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "2.0.1"
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert device.sw_version == "2.0.1"

    async def reported() -> bool:
        return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version == "2.0.1"

    await eventually(reported)


async def test_set_installed_version_to_the_offered_one(hass: HomeAssistant, gateway: Gateway) -> None:
    """Flashed by other means to the pushed version: nothing is pending any more."""
    entry = await _light(hass, gateway)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    await _call(
        hass,
        "set_installed_version",
        {"device_id": _device_id(hass, entry, light_key("light1")), "version": VERSION},
    )
    found = state(hass, ENTITY)
    assert found.state == STATE_OFF
    assert found.attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert state(hass, SENSOR).state == "idle"


async def test_check_for_update_makes_the_cloud_push_again(hass: HomeAssistant, gateway: Gateway) -> None:
    """The version is reported again; the cloud answers with the pending firmware."""
    entry = await _light(hass, gateway)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    before = await _ota_updates_sent(gateway)
    assert before >= 1
    await _call(hass, "check_for_update", {"device_id": _device_id(hass, entry, light_key("light1"))})

    async def pushed_again() -> bool:
        return await _ota_updates_sent(gateway) > before

    await eventually(pushed_again)
    assert state(hass, ENTITY).attributes[ATTR_LATEST_VERSION] == VERSION


async def test_cancel_update_while_downloading(hass: HomeAssistant, gateway: Gateway) -> None:
    """`cancel_update` stops the download; the awaiting install raises a translated error, not CancelledError."""
    entry = await _light(hass, gateway)
    await gateway.emulator.console.set_faults(SLOW)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: state(hass, SENSOR).state == "downloading")
    await _call(hass, "cancel_update", {"device_id": _device_id(hass, entry, light_key("light1"))})
    with pytest.raises(HomeAssistantError) as caught:
        await install
    assert caught.value.translation_key == "install_cancelled"
    assert state(hass, SENSOR).state == "available"
    assert state(hass, ENTITY).attributes["in_progress"] is False
    await cloud_task_ended(gateway, "light1", "fail")


async def test_a_newer_push_replaces_the_awaited_job(hass: HomeAssistant, gateway: Gateway) -> None:
    """A push of another version during the download: the install raises `install_replaced`."""
    await _light(hass, gateway)
    await gateway.emulator.console.set_faults(SLOW)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: state(hass, SENSOR).state == "downloading")
    await push(gateway, FIRMWARE[::-1], "light1", version=NEWER)
    with pytest.raises(HomeAssistantError) as caught:
        await install
    assert caught.value.translation_key == "install_replaced"
    assert (caught.value.translation_placeholders or {})["offered"] == NEWER
    assert state(hass, ENTITY).attributes[ATTR_LATEST_VERSION] == NEWER


async def test_cancelling_the_install_call_itself_propagates(hass: HomeAssistant, gateway: Gateway) -> None:
    """A cancellation of the caller is not turned into an error: it stays a cancellation."""
    await _light(hass, gateway)
    await gateway.emulator.console.set_faults(SLOW)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: state(hass, SENSOR).state == "downloading")
    install.cancel()
    with pytest.raises(asyncio.CancelledError):
        await install


async def test_cancel_update_with_nothing_running(hass: HomeAssistant, gateway: Gateway) -> None:
    """Nothing to cancel is not an error (automations may cancel blindly)."""
    entry = await _light(hass, gateway)
    await _call(hass, "cancel_update", {"device_id": _device_id(hass, entry, light_key("light1"))})
    assert state(hass, SENSOR).state == "idle"


async def test_cancel_update_refused_while_flashing(hass: HomeAssistant, gateway: Gateway) -> None:
    """A flash under way cannot be cancelled; the job then completes normally."""
    entry = await _light(hass, gateway, {"kind": "automation", "timeout_s": 10})
    job_ids: list[str] = []
    hass.bus.async_listen(EVENT_FLASH_REQUEST, callback(lambda event: job_ids.append(event.data["job_id"])))
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: bool(job_ids))
    assert state(hass, SENSOR).state == "flashing"
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "cancel_update", {"device_id": _device_id(hass, entry, light_key("light1"))})
    assert caught.value.translation_key == "cannot_cancel_flashing"
    await _call(hass, "complete_flash", {"job_id": job_ids[0], "success": True})
    await install
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    await cloud_task_ended(gateway, "light1", "done", VERSION)


DEVICE_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("set_installed_version", {"version": "1.0"}),
    ("cancel_update", {}),
    ("check_for_update", {}),
]


@pytest.mark.parametrize(("action", "extra"), DEVICE_ACTIONS)
async def test_unknown_device(
    hass: HomeAssistant, gateway: Gateway, action: str, extra: dict[str, Any]
) -> None:
    """A device id that does not exist."""
    await _light(hass, gateway)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, action, {"device_id": "0123456789abcdef"} | extra)
    assert caught.value.translation_domain == "homeassistant"
    assert caught.value.translation_key == "service_device_not_found"


@pytest.mark.parametrize(("action", "extra"), DEVICE_ACTIONS)
async def test_device_of_another_integration(
    hass: HomeAssistant, gateway: Gateway, action: str, extra: dict[str, Any]
) -> None:
    """A device that another integration owns."""
    await _light(hass, gateway)
    # Disabled, so Home Assistant does not try to set up an integration that does not exist.
    other = ConfigEntry(
        data={},
        disabled_by=ConfigEntryDisabler.USER,
        discovery_keys=MappingProxyType({}),
        domain="other_integration",
        minor_version=1,
        options={},
        source=SOURCE_USER,
        subentries_data=None,
        title="Other",
        unique_id="other",
        version=1,
    )
    await hass.config_entries.async_add(other)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other_integration", "lamp")}, name="Lamp"
    )
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, action, {"device_id": device.id} | extra)
    assert caught.value.translation_key == "service_device_wrong_domain"


@pytest.mark.parametrize(("action", "extra"), DEVICE_ACTIONS)
async def test_the_gateway_is_not_a_sub_device(
    hass: HomeAssistant, gateway: Gateway, action: str, extra: dict[str, Any]
) -> None:
    """The gateway's own device is no target."""
    entry = await _light(hass, gateway)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, action, {"device_id": entry.runtime_data.gateway_device_id} | extra)
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == "not_a_sub_device"


@pytest.mark.parametrize(("action", "extra"), DEVICE_ACTIONS)
async def test_entry_not_loaded(
    hass: HomeAssistant, gateway: Gateway, action: str, extra: dict[str, Any]
) -> None:
    """A sub-device of an unloaded gateway."""
    entry = await _light(hass, gateway)
    device_id = _device_id(hass, entry, light_key("light1"))
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, action, {"device_id": device_id} | extra)
    assert caught.value.translation_key == "service_config_entry_not_loaded"


async def test_set_installed_version_refuses_an_invalid_version(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A version Tencent does not accept (over 32 characters)."""
    entry = await _light(hass, gateway)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(
            hass,
            "set_installed_version",
            {"device_id": _device_id(hass, entry, light_key("light1")), "version": "1." + "0" * 32},
        )
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == "invalid_version_too_long"
    assert caught.value.translation_placeholders == {"version": "1." + "0" * 32, "length": "34", "max": "32"}
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "0.1"


async def test_complete_flash_unknown_job(hass: HomeAssistant, gateway: Gateway) -> None:
    """No flash request waits under that job id."""
    await _light(hass, gateway)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "complete_flash", {"job_id": "nope", "success": True})
    assert caught.value.translation_key == "unknown_job"
    assert (caught.value.translation_placeholders or {})["job_id"] == "nope"


async def test_complete_flash_invalid_version(hass: HomeAssistant, gateway: Gateway) -> None:
    """The version given must be a valid firmware version; the request keeps waiting."""
    await _light(hass, gateway, {"kind": "automation", "timeout_s": 10})
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:
        events.append(event)

    hass.bus.async_listen(EVENT_FLASH_REQUEST, record)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: bool(events))
    job_id = events[0].data["job_id"]
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "complete_flash", {"job_id": job_id, "success": True, "version": "not\nvalid"})
    assert caught.value.translation_key == "invalid_version_control_character"
    await _call(hass, "complete_flash", {"job_id": job_id, "success": True})
    await install
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    await cloud_task_ended(gateway, "light1", "done", VERSION)


async def test_actions_are_described_and_translated(hass: HomeAssistant) -> None:
    """services.yaml describes every registered action's fields; each has a name in both languages."""
    assert await async_setup_component(hass, DOMAIN, {})
    base = Path(__file__).parents[2] / "custom_components" / DOMAIN
    described = parse_yaml((base / "services.yaml").read_text(encoding="utf-8"))
    assert isinstance(described, dict)
    assert set(hass.services.async_services_for_domain(DOMAIN)) == set(described)
    expected = {
        "set_installed_version": {"device_id", "version"},
        "cancel_update": {"device_id"},
        "check_for_update": {"device_id"},
        "complete_flash": {"job_id", "success", "message", "version"},
        "resume_rollout": {"device_id"},
    }
    assert {action: set(described[action]["fields"]) for action in described} == expected
    for name in ("strings.json", "translations/en.json", "translations/zh-Hans.json"):
        services = json.loads((base / name).read_text(encoding="utf-8"))["services"]
        for action, fields in expected.items():
            assert services[action]["name"], (name, action)
            assert set(services[action]["fields"]) == fields, (name, action)
