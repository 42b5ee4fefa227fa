"""What the bridge tests share: a light of a test integration (real `light.*` actions), a bridge product in
the emulator with the standard light template, a gateway entry with a bridge subentry made through the flow,
and the cloud's view of a bridged device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.light import LightEntity
from homeassistant.components.light.const import ColorMode
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)

from custom_components.tencent_iot_gateway.bridge.const import (
    CONF_CATEGORY,
    CONF_CREATION,
    CONF_ENTITIES,
    CONF_PROPERTIES,
    CONF_READ_ONLY,
    SUBENTRY_BRIDGE,
)
from custom_components.tencent_iot_gateway.const import (
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGISTRATION_URL,
    CONF_UNBIND_ON_REMOVE,
)
from tencent_iot_emulator.console_client import DeviceProperties
from tests.emulator_fixtures import eventually
from tests.integration.gateway_rig import Gateway, add_entry
from tests.integration.helpers import wait_for

BRIDGE_PRODUCT = "BRLIGHT001"
BRIDGE_SECRET = "QlJJREdFLVBST0RVQ1QtU0VDUkVU"
LIGHT = "light.desk"
DEVICE_NAME = "light_desk"


class TestLight(LightEntity):
    """A dimmable, colour-temperature light whose availability a test switches."""

    _attr_color_mode = ColorMode.COLOR_TEMP
    _attr_min_color_temp_kelvin = 2700
    _attr_max_color_temp_kelvin = 6500
    _attr_should_poll = False

    def __init__(self, name: str) -> None:
        """Off, at half brightness and 4000 K."""
        self._attr_name = name
        self._attr_supported_color_modes = {ColorMode.COLOR_TEMP}
        self._attr_unique_id = f"bridge-test-{name}"
        self._attr_is_on = False
        self._attr_brightness = 128
        self._attr_color_temp_kelvin = 4000
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = False

    async def async_turn_on(self, **kwargs: Any) -> None:
        """On, with what the action asked."""
        self.calls.append(("turn_on", kwargs))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the bulb does not answer")
        self._attr_is_on = True
        if "brightness" in kwargs:
            self._attr_brightness = kwargs["brightness"]
        if "color_temp_kelvin" in kwargs:
            self._attr_color_temp_kelvin = kwargs["color_temp_kelvin"]
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Off."""
        self.calls.append(("turn_off", kwargs))
        self._attr_is_on = False
        self.async_write_ha_state()

    def set_available(self, available: bool) -> None:
        """The device behind the entity is reachable or not."""
        self._attr_available = available
        self.async_write_ha_state()


async def setup_lights(hass: HomeAssistant, *names: str) -> dict[str, TestLight]:
    """Lights `light.<name>` of the test integration `bridgetest`."""
    lights = {name: TestLight(name) for name in names}

    async def async_setup_platform(
        hass: HomeAssistant, config: Any, add_entities: AddEntitiesCallback, discovery_info: Any = None
    ) -> None:
        add_entities(list(lights.values()))

    mock_integration(hass, MockModule("bridgetest"))
    mock_platform(hass, "bridgetest.light", MockPlatform(async_setup_platform=async_setup_platform))
    assert await async_setup_component(hass, "light", {"light": [{"platform": "bridgetest"}]})
    await hass.async_block_till_done()
    return lights


async def bridge_product(gateway: Gateway, product_id: str = BRIDGE_PRODUCT, category: str = "light") -> None:
    """The product in the emulator: a product secret (dynamic registration) and a standard template."""
    await gateway.emulator.console.add_product(product_id, BRIDGE_SECRET)
    await gateway.emulator.console.set_template(product_id, category)


async def add_bridge(
    hass: HomeAssistant,
    entry: ConfigEntry,
    gateway: Gateway,
    entities: list[str],
    *,
    product_id: str = BRIDGE_PRODUCT,
    category: str = "light",
    read_only: bool = False,
    unbind_on_remove: bool = True,
    properties: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Add a bridge through its flow as the frontend does (registration with the product secret)."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_PRODUCT_ID: product_id,
            CONF_CATEGORY: category,
            CONF_CREATION: "register",
            CONF_READ_ONLY: read_only,
            CONF_UNBIND_ON_REMOVE: unbind_on_remove,
        },
    )
    assert result["step_id"] == "entities", result
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                CONF_ENTITIES: entities,
                CONF_PRODUCT_SECRET: BRIDGE_SECRET,
                CONF_REGISTRATION_URL: gateway.emulator.https_url,
                CONF_PROPERTIES: dict(properties or {}),
            },
        )
    )


async def bridged_gateway(
    hass: HomeAssistant, gateway: Gateway, entities: list[str], **bridge: Any
) -> ConfigEntry:
    """The gateway's entry, and a bridge of `entities` added through the flow; waits until each is online."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await add_bridge(hass, entry, gateway, entities, **bridge)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    for entity_id in entities:
        await wait_settled(gateway, device_name(entity_id), bridge.get("product_id", BRIDGE_PRODUCT))
    return entry


async def wait_settled(gateway: Gateway, name: str, product_id: str = BRIDGE_PRODUCT) -> None:
    """Until the device is online and its online sequence is through (info and a first report are in): a
    control sent before its down topic is subscribed is one the cloud keeps pending for `get_status`."""
    await wait_online(gateway, name, product_id)

    async def settled() -> bool:
        props = await gateway.emulator.console.device_properties(product_id, name)
        return props.info is not None and bool(props.reported)

    await eventually(settled)


def device_name(entity_id: str) -> str:
    """The device a (short) entity id becomes."""
    return entity_id.replace(".", "_")


async def wait_online(gateway: Gateway, name: str, product_id: str = BRIDGE_PRODUCT) -> None:
    """Until the cloud counts the device online."""

    async def online() -> bool:
        return (await gateway.emulator.console.get_device(product_id, name)).online

    await eventually(online)


async def properties(
    gateway: Gateway, name: str = DEVICE_NAME, product_id: str = BRIDGE_PRODUCT
) -> DeviceProperties:
    """The cloud's view of the device's data."""
    return await gateway.emulator.console.device_properties(product_id, name)


async def reported(gateway: Gateway, expected: Mapping[str, Any], name: str = DEVICE_NAME) -> None:
    """Until the cloud has these reported values."""

    async def probe() -> bool:
        got = (await properties(gateway, name)).reported
        return all(got.get(k) == v for k, v in expected.items())

    await eventually(probe)


async def answered(gateway: Gateway, token: str, name: str = DEVICE_NAME) -> tuple[int, str]:
    """The device's `control_reply` to the control `token`: (code, status)."""

    async def probe() -> tuple[int, str] | None:
        record = (await properties(gateway, name)).control(token)
        if record is None or record.reply_code is None:
            return None
        return record.reply_code, record.reply_status or ""

    return await eventually(probe)


__all__ = ["wait_for"]
