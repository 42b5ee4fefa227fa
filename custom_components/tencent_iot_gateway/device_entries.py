"""The device registry entries of an entry's sub-devices, kept in step with what the gateway learns and what
the user edits (no reload needed)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN
from .engine import DeviceId
from .entry_config import SubDeviceConfig


def update_sw_version(hass: HomeAssistant, entry_id: str, device: DeviceId, version: str | None) -> None:
    """The version the device runs, on its device page."""
    registry = dr.async_get(hass)
    entry = registry.async_get_device_by_identifier((DOMAIN, device.key), entry_id)
    if entry is not None and entry.sw_version != version:
        registry.async_update_device(entry.id, sw_version=version)


def update_device_entry(hass: HomeAssistant, entry_id: str, config: SubDeviceConfig) -> None:
    """A renamed sub-device (or a new model or maker) shows at once, without a reload."""
    registry = dr.async_get(hass)
    entry = registry.async_get_device_by_identifier((DOMAIN, config.device.key), entry_id)
    if entry is not None:
        model, model_id = config.device_model
        registry.async_update_device(
            entry.id,
            name=config.display_name,
            model=model,
            model_id=model_id,
            manufacturer=config.manufacturer,
        )
