"""Run-time work that must not grow with the number of sub-devices per change (issue 10).

A subentry added or edited is applied to its own sub-device only: the sync that applies it used to rebuild
every sub-device's flasher and notify every sub-device's entities, O(N) work for each change.
"""

from __future__ import annotations

from types import MappingProxyType

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant, callback

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_INSTALLED_VERSION,
    CONF_PRODUCT_ID,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.runtime import GatewayRuntime

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT, available, light_key, register_lights, setup_gateway, sub, wait_for


async def test_a_new_sub_device_leaves_the_others_alone(hass: HomeAssistant, gateway: Gateway) -> None:
    """Adding light3 (a subentry, then bound in the console) does not notify light1's entities."""
    await register_lights(gateway, "light1", "light2")
    await register_lights(gateway, "light3", bind=False)
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])
    runtime: GatewayRuntime = entry.runtime_data
    notified: list[None] = []

    @callback
    def on_light1() -> None:
        notified.append(None)

    remove = runtime.async_add_listener(DeviceId(LIGHT_PRODUCT, "light1"), on_light1)
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(
                {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light3", CONF_INSTALLED_VERSION: "0.1"}
            ),
            subentry_type=SUBENTRY_SUB_DEVICE,
            title=light_key("light3"),
            unique_id=light_key("light3"),
        ),
    )
    await gateway.emulator.console.bind(gateway.key, light_key("light3"))
    await wait_for(hass, lambda: available(hass, "update.light3_firmware"))
    await hass.async_block_till_done()
    remove()
    assert notified == []
