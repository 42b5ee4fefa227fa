"""Per sub-device: where its firmware update stands (an enum, disabled by default), with the last error."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .engine import DeviceId, JobState
from .entity import SubDeviceEntity, async_setup_sub_device_entities
from .runtime import GatewayRuntime, TencentIotConfigEntry

# Read-only state pushed by the runtime: nothing to throttle.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: TencentIotConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One OTA state sensor per sub-device."""

    def build(runtime: GatewayRuntime, device: DeviceId) -> list[Entity]:
        return [OtaStateSensor(runtime, device)]

    async_setup_sub_device_entities(entry, async_add_entities, build)


class OtaStateSensor(SubDeviceEntity, SensorEntity):
    """idle, available, queued, downloading, verifying, flashing, done or failed."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    # The update entity shows the same progress; enabled, this adds a logbook row per state of every install.
    # Automations have the `tencent_iot_gateway_ota` event.
    _attr_entity_registry_enabled_default = False

    def __init__(self, runtime: GatewayRuntime, device: DeviceId) -> None:
        """The sensor of one sub-device."""
        super().__init__(runtime, device, "ota_state")
        self._attr_options = [state.value for state in JobState]

    @property
    def native_value(self) -> str:
        """The job state."""
        return self.snapshot.state.value

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The last failure (code and message); the target version is the update entity's latest version."""
        snapshot = self.snapshot
        return {"last_error": snapshot.message or None, "result_code": snapshot.result_code}
