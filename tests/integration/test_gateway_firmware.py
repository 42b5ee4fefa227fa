"""The gateway's own firmware: its version reported, a push to it offered and installed by an automation."""

from __future__ import annotations

from typing import Any

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION, ATTR_LATEST_VERSION
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.loader import async_get_integration

from custom_components.tencent_iot_gateway.const import (
    CONF_GATEWAY_UPDATES,
    CONF_GATEWAY_VERSION,
    DOMAIN,
    EVENT_FLASH_REQUEST,
)
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway, add_entry
from .helpers import available, install_update, state, wait_for

FIRMWARE = bytes(range(256)) * 40
ENTITY = "update.gw01_gwprod0001_gateway_firmware"
NEW_VERSION = "2.0.0"


async def _cloud_version(gateway: Gateway) -> str | None:
    return (await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)).version


async def _push_to_gateway(gateway: Gateway) -> None:
    console = gateway.emulator.console
    await console.upload_firmware(gateway.product_id, NEW_VERSION, FIRMWARE)
    await console.create_task(
        gateway.product_id, NEW_VERSION, "list", devices=[gateway.device_name], url_scheme="http"
    )


async def test_a_push_to_the_gateway_installs_through_the_automation_flasher(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The gateway reports the version the user set, a push to it is offered on the gateway device, and the
    install fires a flash request that `complete_flash` answers: the cloud sees `done` and the new version."""
    entry = await add_entry(
        hass, gateway.entry_data, options={CONF_GATEWAY_UPDATES: True, CONF_GATEWAY_VERSION: "1.0.0"}
    )
    await wait_for(hass, lambda: available(hass, ENTITY))

    async def reported_set_version() -> bool:
        return await _cloud_version(gateway) == "1.0.0"

    await eventually(reported_set_version)
    gateway_device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, gateway.key), entry.entry_id)
    assert gateway_device is not None
    assert gateway_device.sw_version == "1.0.0"

    await _push_to_gateway(gateway)
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    assert state(hass, ENTITY).attributes[ATTR_LATEST_VERSION] == NEW_VERSION
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "1.0.0"

    requests: list[dict[str, Any]] = []

    @callback
    def answer(event: Event) -> None:
        requests.append(dict(event.data))
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN, "complete_flash", {"job_id": event.data["job_id"], "success": True}, blocking=True
            )
        )

    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    await install_update(hass, ENTITY)

    assert len(requests) == 1
    assert requests[0]["device_id"] == gateway_device.id
    assert requests[0]["product_id"] == gateway.product_id
    assert requests[0]["device_name"] == gateway.device_name
    assert requests[0]["version"] == NEW_VERSION
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == NEW_VERSION
    assert state(hass, ENTITY).state == "off"

    async def done_in_cloud() -> bool:
        status = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
        return status.version == NEW_VERSION and status.task is not None and status.task.state == "done"

    await eventually(done_in_cloud)
    refreshed = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, gateway.key), entry.entry_id)
    assert refreshed is not None
    assert refreshed.sw_version == NEW_VERSION

    # A restart keeps the flashed version: the option did not change since, so it does not win.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: available(hass, ENTITY))
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == NEW_VERSION


async def test_nothing_by_default_and_no_invented_version_when_on(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Off (the default), the gateway reports nothing and has no update entity; on without a version set, it
    still reports nothing (the integration's version is not the host's firmware) and its version is unknown."""
    entry = await add_entry(hass, gateway.entry_data)
    await wait_for(hass, lambda: available(hass, "binary_sensor.gw01_gwprod0001_cloud_connection"))
    assert hass.states.get(ENTITY) is None
    assert await _cloud_version(gateway) is None

    hass.config_entries.async_update_entry(entry, options={CONF_GATEWAY_UPDATES: True})
    await hass.async_block_till_done()
    await wait_for(hass, lambda: available(hass, ENTITY))
    await entry.runtime_data.engine.wait_versions_reported()
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] is None
    assert await _cloud_version(gateway) is None
    gateway_device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, gateway.key), entry.entry_id)
    assert gateway_device is not None
    assert gateway_device.sw_version is None
    integration_version = str((await async_get_integration(hass, DOMAIN)).version)
    assert integration_version not in str(state(hass, ENTITY).attributes)
