"""Issue 9 §5 in Home Assistant: reloads and HA's stop never kill a flash, and a waiting install is not failed
by a reload that the job survives."""

from __future__ import annotations

import logging
from pathlib import Path

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_ON
from homeassistant.core import Event, HomeAssistant, callback
import pytest

from custom_components.tencent_iot_gateway.const import CONF_MAX_DOWNLOADS, DOMAIN, EVENT_FLASH_REQUEST
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from custom_components.tencent_iot_gateway.runtime import TencentIotConfigEntry

from .cloud_waits import cloud_task_ended
from .gateway_rig import Gateway
from .helpers import (
    LIGHT_PRODUCT,
    VERSION,
    install_update,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(251)) * 4200  # ~1 MiB
ENTITY = "update.light1_firmware"
LIGHT = DeviceId(LIGHT_PRODUCT, "light1")


async def test_an_options_change_mid_download_does_not_fail_the_waiting_install(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """The reload an options change causes suspends the download; the job resumes in the reloaded entry and
    the `update.install` call that waited on it returns successfully (no false "cancelled")."""
    await register_lights(gateway, "light1")
    flash_dir = tmp_path / "flashed"
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(flash_dir)})]
    )
    console = gateway.emulator.console
    await console.set_faults({"firmware": {f"{LIGHT_PRODUCT}/{VERSION}": {"throttle_bps": 400_000}}})
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    install = hass.async_create_task(install_update(hass, ENTITY))
    runtime = entry.runtime_data
    await wait_for(hass, lambda: runtime.snapshot(LIGHT).downloaded >= 300_000)

    await console.reset_faults()
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_MAX_DOWNLOADS: 3})
    await install  # raises if the reload failed the call
    assert entry.runtime_data is not runtime
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert (flash_dir / f"{LIGHT_PRODUCT}_light1_{VERSION}.bin").read_bytes() == FIRMWARE
    counters = (await console.stats()).firmware[f"{LIGHT_PRODUCT}/{VERSION}"]
    assert counters.bytes <= len(FIRMWARE) + 256 * 1024, "the download started over instead of resuming"
    await cloud_task_ended(gateway, "light1", "done")


async def _automation_flash_ready(
    hass: HomeAssistant, gateway: Gateway
) -> tuple[TencentIotConfigEntry, list[Event]]:
    await register_lights(gateway, "light1")
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "automation", "timeout_s": 60})]
    )
    requests: list[Event] = []

    @callback
    def record(event: Event) -> None:
        requests.append(event)

    hass.bus.async_listen(EVENT_FLASH_REQUEST, record)
    await push(gateway, bytes(range(256)) * 200, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    return entry, requests


async def _complete(hass: HomeAssistant, request: Event) -> None:
    await hass.services.async_call(
        DOMAIN, "complete_flash", {"job_id": request.data["job_id"], "success": True}, blocking=True
    )


async def test_a_reload_waits_for_the_flash_under_way(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """An options change while a flash runs: the reload waits (and says so), the flash completes once, the
    cloud hears `done`, and the install call succeeds."""
    entry, requests = await _automation_flash_ready(hass, gateway)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: len(requests) == 1)
    runtime = entry.runtime_data
    assert runtime.snapshot(LIGHT).state is JobState.FLASHING

    caplog.set_level(logging.WARNING)
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_MAX_DOWNLOADS: 3})
    await wait_for(hass, lambda: "Waiting up to" in caplog.text and "flash of" in caplog.text)
    assert runtime.snapshot(LIGHT).state is JobState.FLASHING
    await _complete(hass, requests[0])
    await install
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert len(requests) == 1, "flashed twice"
    await cloud_task_ended(gateway, "light1", "done")


async def test_home_assistant_stop_lets_a_flash_finish(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """HA stopping while a flash runs: the stop waits for it (within its budget) and the cloud hears `done`
    before the session closes."""
    entry, requests = await _automation_flash_ready(hass, gateway)
    install = hass.async_create_task(install_update(hass, ENTITY))
    await wait_for(hass, lambda: len(requests) == 1)
    runtime = entry.runtime_data
    caplog.set_level(logging.WARNING)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await wait_for(hass, lambda: "Waiting up to" in caplog.text)
    await _complete(hass, requests[0])
    await install
    await cloud_task_ended(gateway, "light1", "done")
    assert runtime.engine.ota.snapshot(LIGHT).installed_version == VERSION
