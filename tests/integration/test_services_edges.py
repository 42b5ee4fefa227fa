"""The actions while the cloud cannot be reached: the user is told, and what can be kept is kept."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT, light_key, register_lights, setup_gateway, sub, wait_for

LIGHT1 = DeviceId(LIGHT_PRODUCT, "light1")


async def _disconnected_light(hass: HomeAssistant, gateway: Gateway) -> tuple[ConfigEntry, str]:
    """light1 set up and online, then the whole emulated cloud stops; returns the entry and its device id."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", version="1.0")])
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version == "1.0"
    await gateway.emulator.__aexit__(None, None, None)
    await wait_for(hass, lambda: not entry.runtime_data.connected)
    return entry, device.id


async def test_set_installed_version_while_disconnected(hass: HomeAssistant, gateway: Gateway) -> None:
    """The report fails and the user is told so, but the version is recorded (the next connection reports it)."""
    entry, device_id = await _disconnected_light(hass, gateway)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            DOMAIN, "set_installed_version", {"device_id": device_id, "version": "2.0"}, blocking=True
        )
    assert not isinstance(caught.value, ServiceValidationError), "not the user's mistake"
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == "report_failed_offline"
    placeholders = caught.value.translation_placeholders
    assert placeholders is not None
    assert placeholders["device"] == light_key("light1")
    # The entity is unavailable while disconnected; what it shows once back comes from the runtime.
    assert entry.runtime_data.snapshot(LIGHT1).installed_version == "2.0"
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert device.sw_version == "2.0"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_check_for_update_while_disconnected(hass: HomeAssistant, gateway: Gateway) -> None:
    """Asking the cloud while it cannot be reached is an error that names the device and the reason."""
    entry, device_id = await _disconnected_light(hass, gateway)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(DOMAIN, "check_for_update", {"device_id": device_id}, blocking=True)
    assert not isinstance(caught.value, ServiceValidationError), "not the user's mistake"
    assert caught.value.translation_key == "report_failed_offline"
    placeholders = caught.value.translation_placeholders
    assert placeholders is not None
    assert placeholders["device"] == light_key("light1")
    assert entry.runtime_data.snapshot(LIGHT1).installed_version == "1.0"
    assert await hass.config_entries.async_unload(entry.entry_id)
