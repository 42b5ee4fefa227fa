"""The gateway's connection to the cloud."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import TencentIotEntity
from .runtime import GatewayRuntime, TencentIotConfigEntry

# Read-only state pushed by the runtime: nothing to throttle.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: TencentIotConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One connectivity sensor on the gateway device."""
    async_add_entities([GatewayConnectivity(entry.runtime_data)])


class GatewayConnectivity(TencentIotEntity, BinarySensorEntity):
    """On while the gateway's MQTT session is up."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, runtime: GatewayRuntime) -> None:
        """The gateway's sensor."""
        super().__init__(runtime, None, "connectivity")

    @property
    def is_on(self) -> bool:
        """Whether the session is connected."""
        return self.runtime.connected
