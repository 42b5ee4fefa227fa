"""Base entities: one device for the gateway, one per sub-device linked to it, state pushed by the runtime."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .engine import DeviceId, JobSnapshot
from .entry_config import SubDeviceConfig
from .runtime import GatewayRuntime, TencentIotConfigEntry


class TencentIotEntity(Entity):
    """Pushed state, names through translations."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, runtime: GatewayRuntime, device: DeviceId | None, key: str) -> None:
        """`device` None: an entity of the gateway itself."""
        self.runtime = runtime
        self.sub_device = device
        target = device or runtime.gateway
        self._attr_unique_id = f"{target.key}-{key}"
        self._attr_translation_key = key
        if device is None:
            self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, runtime.gateway.key)})
        else:
            assert runtime.gateway_device_id is not None, "the gateway device is registered first"
            config = runtime.configs.get(device)
            model, model_id = config.device_model if config is not None else (device.product_id, None)
            self._attr_device_info = DeviceInfo(
                identifiers={(DOMAIN, device.key)},
                name=config.display_name if config is not None else device.device_name,
                manufacturer=config.manufacturer if config is not None else None,
                model=model,
                model_id=model_id,
                serial_number=device.key,
                sw_version=runtime.snapshot(device).installed_version,
                via_device_id=runtime.gateway_device_id,
            )

    async def async_added_to_hass(self) -> None:
        """Follow the runtime's pushes."""
        self.async_on_remove(self.runtime.async_add_listener(self.sub_device, self._handle_push))

    @callback
    def _handle_push(self) -> None:
        self.async_write_ha_state()


class SubDeviceEntity(TencentIotEntity):
    """An entity of one sub-device: available while the gateway is connected and the cloud took its online."""

    sub_device: DeviceId

    def __init__(self, runtime: GatewayRuntime, device: DeviceId, key: str) -> None:
        """Bind to a sub-device."""
        super().__init__(runtime, device, key)

    @property
    def available(self) -> bool:
        """The gateway is connected and the cloud accepted the sub-device's `online`."""
        return self.runtime.is_online(self.sub_device)

    @property
    def snapshot(self) -> JobSnapshot:
        """The sub-device's latest job snapshot."""
        return self.runtime.snapshot(self.sub_device)


def async_setup_sub_device_entities(
    entry: TencentIotConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[GatewayRuntime, DeviceId], list[Entity]],
) -> None:
    """Add `build`'s entities for every sub-device now, and for each one added while running."""
    runtime = entry.runtime_data

    @callback
    def add(config: SubDeviceConfig) -> None:
        async_add_entities(build(runtime, config.device), config_subentry_id=config.subentry_id)

    for config in runtime.configs.values():
        add(config)
    entry.async_on_unload(runtime.async_on_new_device(add))
