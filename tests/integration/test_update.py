"""The update entity through real installs: the emulator pushes, `update.install` flashes with the file flasher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.components.update.const import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    DATA_COMPONENT as UPDATE_COMPONENT,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
import pytest

from custom_components.tencent_iot_gateway import runtime
from custom_components.tencent_iot_gateway.const import CONF_INSTALL_POLICY, DOMAIN
from custom_components.tencent_iot_gateway.engine.ota.jobs import OtaSettings
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT, push, register_lights, setup_gateway, state as state_of, sub, wait_for

# These tests read the OTA state sensor, which is disabled by default.
pytestmark = pytest.mark.usefixtures("ota_state_sensors_enabled")

FIRMWARE = bytes(range(256)) * 400  # 100 KiB
VERSION = "V100R0001"


async def test_full_install_with_progress(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """Push → entity on with the new latest version → `update.install` returns when flashed → installed."""
    await register_lights(gateway, "light1")
    flash_dir = tmp_path / "flashed"
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(flash_dir)})]
    )
    entity_id = "update.light1_firmware"
    state = state_of(hass, entity_id)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_INSTALLED_VERSION] == "0.1"
    assert state.attributes["title"] == LIGHT_PRODUCT  # the model (none given): no untranslated words

    await push(gateway, FIRMWARE, "light1", version=VERSION)
    await wait_for(hass, lambda: state_of(hass, entity_id).state == STATE_ON)
    assert state_of(hass, entity_id).attributes[ATTR_LATEST_VERSION] == VERSION
    assert state_of(hass, "sensor.light1_firmware_update_state").state == "available"

    seen: list[tuple[bool, Any]] = []

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.entity_id == entity_id:
            seen.append((new.attributes[ATTR_IN_PROGRESS], new.attributes["update_percentage"]))

    unsubscribe = hass.bus.async_listen("state_changed", record)
    await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: entity_id}, blocking=True)
    unsubscribe()

    state = state_of(hass, entity_id)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert (True, None) in seen  # queued: indeterminate
    percents = [p for running, p in seen if running and p is not None]
    assert percents, seen
    assert percents == sorted(percents)
    # Honest: the bar reaches 100 only when the job is done (the file flasher says 100 before it returns).
    assert max(percents) <= 99, percents
    assert (flash_dir / f"{LIGHT_PRODUCT}_light1_{VERSION}.bin").read_bytes() == FIRMWARE
    assert state_of(hass, "sensor.light1_firmware_update_state").state == "done"
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{LIGHT_PRODUCT}/light1"), entry.entry_id
    )
    assert device is not None
    assert device.sw_version == VERSION
    assert device.via_device_id == entry.runtime_data.gateway_device_id

    async def reported() -> bool:
        status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
        return status.version == VERSION and status.task is not None and status.task.state == "done"

    await eventually(reported)


async def test_release_notes_show_no_signed_query(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Release notes: version, size, MD5 and host; never the signed URL."""
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})])
    await push(gateway, FIRMWARE, "light1", version=VERSION)
    await wait_for(hass, lambda: state_of(hass, "update.light1_firmware").state == STATE_ON)
    entity = hass.data[UPDATE_COMPONENT].get_entity("update.light1_firmware")
    assert entity is not None
    notes = await entity.async_release_notes()
    assert notes is not None
    assert VERSION in notes
    assert "100 KiB" in notes  # a human size
    assert "127.0.0.1" in notes
    assert "sign" not in notes
    assert "?" not in notes


async def test_failed_flash_raises_translated_error(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """The flasher cannot write: the install raises a translated error with Tencent's code -5, the cause
    (a file where the directory should be) and the advice."""
    await register_lights(gateway, "light1")
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(blocker)})])
    await push(gateway, FIRMWARE, "light1", version=VERSION)
    await wait_for(hass, lambda: state_of(hass, "update.light1_firmware").state == STATE_ON)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: "update.light1_firmware"}, blocking=True
        )
    assert caught.value.translation_key == "failure_file_not_a_directory"
    assert caught.value.translation_placeholders is not None
    assert caught.value.translation_placeholders["code"] == "-5"
    assert caught.value.translation_placeholders["path"] == str(blocker)
    assert "is a file, not a directory" in str(caught.value)
    assert "flasher settings" in str(caught.value)  # the advice
    assert caught.value.translation_placeholders["device"] == "light1"
    assert "Tencent code -5" in str(caught.value)
    sensor = state_of(hass, "sensor.light1_firmware_update_state")
    assert sensor.state == "failed"
    assert sensor.attributes["result_code"] == -5
    assert sensor.attributes["last_error"]


async def test_auto_policy_installs_on_push(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """Under `auto`, the push alone installs; the entity says auto_update."""
    await register_lights(gateway, "light1")
    await setup_gateway(
        hass,
        gateway,
        [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})],
        **{CONF_INSTALL_POLICY: "auto"},
    )
    assert state_of(hass, "update.light1_firmware").attributes["auto_update"] is True
    await push(gateway, FIRMWARE, "light1", version=VERSION)
    await wait_for(
        hass, lambda: state_of(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] == VERSION
    )


async def test_update_all_shares_one_download(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """Three sub-devices, one image, installed together: all done, the body fetched once."""
    names = ("light1", "light2", "light3")
    await register_lights(gateway, *names)
    await setup_gateway(
        hass, gateway, [sub(n, flasher={"kind": "file", "directory": str(tmp_path / n)}) for n in names]
    )
    await push(gateway, FIRMWARE, *names, version=VERSION)
    entity_ids = [f"update.{n}_firmware" for n in names]
    await wait_for(hass, lambda: all(state_of(hass, e).state == STATE_ON for e in entity_ids))
    await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: entity_ids}, blocking=True)
    assert all(state_of(hass, e).attributes[ATTR_INSTALLED_VERSION] == VERSION for e in entity_ids)
    stats = await gateway.emulator.console.stats()
    counters = stats.firmware[f"{LIGHT_PRODUCT}/{VERSION}"]
    assert counters.bytes == len(FIRMWARE), stats


async def test_no_flasher_means_no_install(hass: HomeAssistant, gateway: Gateway) -> None:
    """Without a flasher the entity shows the update but offers no install."""
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1")])
    await push(gateway, FIRMWARE, "light1", version=VERSION)
    await wait_for(hass, lambda: state_of(hass, "update.light1_firmware").state == STATE_ON)
    assert state_of(hass, "update.light1_firmware").attributes["supported_features"] & 1 == 0


async def test_late_install_says_the_cloud_task_has_ended(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Install pressed after the cloud's task ended and its URL expired: a translated error that says a new
    task is needed, nothing flashed, the entity not left in progress (issue 9 §2)."""
    quick = OtaSettings(fresh_url_timeout_s=0.3)
    monkeypatch.setattr(runtime, "ota_settings", lambda _options: quick)
    await register_lights(gateway, "light1")
    flash_dir = tmp_path / "flashed"
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(flash_dir)})])
    console = gateway.emulator.console
    await console.set_faults({"url_ttl_s": 0})
    await console.upload_firmware(LIGHT_PRODUCT, VERSION, FIRMWARE)
    task_id = await console.create_task(
        LIGHT_PRODUCT, VERSION, "list", devices=["light1"], url_scheme="http", timeout_s=0.2
    )
    await wait_for(hass, lambda: state_of(hass, "update.light1_firmware").state == STATE_ON)

    async def task_ended() -> bool:
        return (await console.get_task(task_id)).devices[f"{LIGHT_PRODUCT}/light1"].state == "timeout"

    await eventually(task_ended)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: "update.light1_firmware"}, blocking=True
        )
    assert caught.value.translation_key == "failure_task_ended"
    assert "upgrade task" in str(caught.value)
    assert "new upgrade task" in str(caught.value)
    state = state_of(hass, "update.light1_firmware")
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_INSTALLED_VERSION] == "0.1"
    assert not flash_dir.exists() or not any(flash_dir.iterdir())
