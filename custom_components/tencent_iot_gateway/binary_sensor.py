"""Connectivity: the gateway's connection to the cloud, and each sub-device's online state in the cloud."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .engine import RESULT_NOT_BOUND, DeviceId
from .entity import SubDeviceEntity, TencentIotEntity, async_setup_sub_device_entities
from .runtime import GatewayRuntime, TencentIotConfigEntry

# Read-only state pushed by the runtime: nothing to throttle.
PARALLEL_UPDATES = 0
# The cloud's answer to `online` for a sub-device that is not bound to this gateway.


class OnlineReason(StrEnum):
    """Why a sub-device is (not) online in the cloud: the `reason` attribute (translated in the UI)."""

    ONLINE = "online"
    WAITING = "waiting"
    """The gateway has not had the cloud's answer yet."""
    GATEWAY_DISCONNECTED = "gateway_disconnected"
    NOT_BOUND = "not_bound"
    REFUSED = "refused"
    """Another non-zero result: `result_code` says which."""


async def async_setup_entry(
    hass: HomeAssistant, entry: TencentIotConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The gateway's sensor, and one per sub-device."""
    async_add_entities([GatewayConnectivity(entry.runtime_data)])

    def build(runtime: GatewayRuntime, device: DeviceId) -> list[Entity]:
        return [SubDeviceConnectivity(runtime, device)]

    async_setup_sub_device_entities(entry, async_add_entities, build)


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


class SubDeviceConnectivity(SubDeviceEntity, BinarySensorEntity):
    """On while the cloud has the sub-device online through this gateway; off says why (`reason`)."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, runtime: GatewayRuntime, device: DeviceId) -> None:
        """The sensor of one sub-device."""
        super().__init__(runtime, device, "sub_device_connectivity")

    @property
    def available(self) -> bool:
        """Always: being offline, unbound or cut off is what this sensor shows."""
        return True

    @property
    def is_on(self) -> bool:
        """Whether the cloud accepted the sub-device's `online` and the gateway is connected."""
        return self.runtime.is_online(self.sub_device)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """`reason` (see `OnlineReason`), the cloud's `result_code`, and `updates_blocked`.

        `updates_blocked`: the broker refused the update topic, so no firmware push can reach the sub-device
        although it is online (a repair issue says so too).
        """
        result = self.runtime.online_result(self.sub_device)
        return {
            "reason": self._reason(result).value,
            "result_code": result,
            "updates_blocked": self.runtime.updates_blocked(self.sub_device),
        }

    def _reason(self, result: int | None) -> OnlineReason:
        if not self.runtime.connected:
            return OnlineReason.GATEWAY_DISCONNECTED
        if self.runtime.is_online(self.sub_device):
            return OnlineReason.ONLINE
        if result is None:
            return OnlineReason.WAITING
        if result == RESULT_NOT_BOUND:
            return OnlineReason.NOT_BOUND
        return OnlineReason.REFUSED
