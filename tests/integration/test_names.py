"""Names, not IDs: what a sub-device and the gateway are called; each sub-device's cloud connection."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigEntry, ConfigSubentry, ConfigSubentryData
from homeassistant.const import STATE_OFF, STATE_ON, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.loader import async_get_integration

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER_KIND,
    CONF_GATEWAY_VERSION,
    CONF_INSTALLED_VERSION,
    CONF_MODEL,
    CONF_NAME,
    CONF_PRODUCT_ID,
    DOMAIN,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.subentry_flow import UPDATED, nest

from .gateway_rig import Gateway, add_entry
from .helpers import (
    LIGHT_PRODUCT,
    add_sub_device,
    available,
    light_key,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)


def _device(hass: HomeAssistant, entry: ConfigEntry, key: str) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, key), entry.entry_id)
    assert device is not None
    return device


async def _add(hass: HomeAssistant, entry: ConfigEntry, secret: str, **names: str) -> Any:
    """Add light1 through the flow; with its secret the gateway binds it (a bound one would be adopted)."""
    return await add_sub_device(
        hass,
        entry,
        {
            CONF_PRODUCT_ID: LIGHT_PRODUCT,
            CONF_DEVICE_NAME: "light1",
            CONF_INSTALLED_VERSION: "1.0",
            CONF_FLASHER_KIND: "none",
            CONF_DEVICE_SECRET: secret,
        }
        | names,
    )


async def test_a_named_sub_device_shows_its_name_model_and_maker(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Title, device name, model (product id once, as model id) and manufacturer come from the subentry."""
    secrets = await register_lights(gateway, "light1", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    result = await _add(
        hass, entry, secrets["light1"], name="Kitchen light", model="Bulb A19", manufacturer="Acme"
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Kitchen light"
    await wait_for(hass, lambda: available(hass, "update.kitchen_light_firmware"))
    device = _device(hass, entry, light_key("light1"))
    assert (device.name, device.model, device.model_id, device.manufacturer) == (
        "Kitchen light",
        "Bulb A19",
        LIGHT_PRODUCT,
        "Acme",
    )
    assert state(hass, "update.kitchen_light_firmware").attributes["title"] == "Bulb A19"

    # Renamed while running: the device and the title follow, without a reload.
    subentry_id = next(iter(entry.subentries))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        nest(
            {
                CONF_NAME: "Hall light",
                CONF_MODEL: "",
                CONF_INSTALLED_VERSION: "1.0",
                CONF_FLASHER_KIND: "none",
            }
        ),
    )
    assert result["reason"] == UPDATED
    assert entry.subentries[subentry_id].title == "Hall light"
    await wait_for(hass, lambda: _device(hass, entry, light_key("light1")).name == "Hall light")
    device = _device(hass, entry, light_key("light1"))
    assert (device.model, device.model_id, device.manufacturer) == (LIGHT_PRODUCT, None, None)


async def test_an_unnamed_sub_device_is_its_device_name(hass: HomeAssistant, gateway: Gateway) -> None:
    """No "LIGHTPID01 (LIGHTPID01)", no invented manufacturer, no "PID/DN" title, no English in the title."""
    secrets = await register_lights(gateway, "light1", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    result = await _add(hass, entry, secrets["light1"])
    assert result["title"] == "light1"
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    device = _device(hass, entry, light_key("light1"))
    assert (device.name, device.model, device.model_id, device.manufacturer) == (
        "light1",
        LIGHT_PRODUCT,
        None,
        None,
    )
    assert state(hass, "update.light1_firmware").attributes["title"] == LIGHT_PRODUCT


async def test_the_gateway_shows_its_product_and_only_a_firmware_the_user_gave(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The integration's version is not the gateway's firmware: no firmware until the options name one."""
    entry = await add_entry(hass, gateway.entry_data)
    device = _device(hass, entry, gateway.key)
    integration = await async_get_integration(hass, DOMAIN)
    assert device.sw_version is None
    assert device.sw_version != str(integration.version)
    assert (device.model, device.model_id) == (gateway.product_id, None)

    hass.config_entries.async_update_entry(entry, options={CONF_GATEWAY_VERSION: "GW-2.4"})
    await hass.async_block_till_done()
    assert _device(hass, entry, gateway.key).sw_version == "GW-2.4"


async def test_adopted_sub_devices_are_titled_by_their_device_name(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    await register_lights(gateway, "light7")
    entry = await add_entry(hass, gateway.entry_data)
    await wait_for(hass, lambda: len(entry.subentries) == 1)
    assert [subentry.title for subentry in entry.subentries.values()] == ["light7"]


async def test_each_sub_device_has_a_diagnostic_connectivity_sensor(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Online: on. Not bound (the cloud answered -1): off with the reason. Gateway cut off: off, and why."""
    await register_lights(gateway, "light1")
    await register_lights(gateway, "light2", bind=False)
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    hass.config_entries.async_add_subentry(entry, _subentry(sub("light2")))
    online = "binary_sensor.light1_cloud_connection"
    unbound = "binary_sensor.light2_cloud_connection"
    await wait_for(
        hass, lambda: (s := hass.states.get(unbound)) is not None and s.attributes["reason"] == "not_bound"
    )
    assert state(hass, unbound).state == STATE_OFF
    assert state(hass, unbound).attributes["result_code"] == -1
    assert state(hass, online).state == STATE_ON
    assert state(hass, online).attributes == state(hass, online).attributes | {
        "reason": "online",
        "result_code": 0,
    }
    registered = er.async_get(hass).async_get(online)
    assert registered is not None
    assert registered.entity_category is EntityCategory.DIAGNOSTIC
    assert registered.disabled_by is None

    entry.runtime_data._set_connected(False)  # what a lost connection does, without waiting for it
    assert state(hass, online).state == STATE_OFF
    assert state(hass, online).attributes["reason"] == "gateway_disconnected"


async def test_the_ota_state_sensor_is_disabled_by_default(hass: HomeAssistant, gateway: Gateway) -> None:
    """It repeats the update entity; enabled by the user, it no longer repeats the target version either."""
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1")])
    registered = er.async_get(hass).async_get("sensor.light1_firmware_update_state")
    assert registered is not None
    assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get("sensor.light1_firmware_update_state") is None


def _subentry(data: ConfigSubentryData) -> ConfigSubentry:
    """A subentry added as the runtime adds an adopted one (no flow: light2 is not bound, so no secret)."""
    return ConfigSubentry(
        data=MappingProxyType(dict(data["data"])),
        subentry_type=data["subentry_type"],
        title=data["title"],
        unique_id=data["unique_id"],
    )
