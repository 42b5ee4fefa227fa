"""Sub-devices the cloud binds to the gateway appear in Home Assistant on their own, as config subentries;
those the user removed while they stay bound are not added back until bound again or added by hand."""

from __future__ import annotations

import logging
from types import MappingProxyType

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback

from .const import CONF_DEVICE_NAME, CONF_PRODUCT_ID, SUBENTRY_SUB_DEVICE
from .engine import DeviceId
from .entry_storage import JsonStore

_LOGGER = logging.getLogger(__name__)


class SubDeviceAdoption:
    """Adds bound sub-devices as subentries; remembers the ones the user removed (the ignored store)."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, gateway: DeviceId, store: JsonStore) -> None:
        """Adopt into `entry` the sub-devices bound to `gateway`; `store` keeps the ignored ones."""
        self._hass = hass
        self._entry = entry
        self._gateway = gateway
        self._store = store
        self._ignored: set[str] = set()

    async def async_load(self) -> None:
        """Read the ignored sub-devices saved by an earlier run."""
        saved = await self._store.async_load() or {}
        self._ignored = {key for key in saved.get("devices", []) if isinstance(key, str)}

    async def async_set_ignored(self, device: DeviceId, *, ignored: bool) -> None:
        """Ignore a sub-device removed while still bound (or stop ignoring one added again)."""
        if (device.key in self._ignored) == ignored:
            return
        if ignored:
            self._ignored.add(device.key)
        else:
            self._ignored.discard(device.key)
        await self._store.async_save({"devices": sorted(self._ignored)})

    @callback
    def adopt(self, devices: tuple[DeviceId, ...], *, include_ignored: bool = False) -> None:
        """Add a subentry for each device not configured yet (`include_ignored`: bound again on purpose)."""
        known = {subentry.unique_id for subentry in self._entry.subentries.values()}
        for device in devices:
            if device.key in known or device == self._gateway:
                continue
            if device.key in self._ignored and not include_ignored:
                _LOGGER.debug("Not adding %s again: it was removed while still bound", device)
                continue
            _LOGGER.info("Adding sub-device %s, bound to %s in the cloud", device, self._gateway)
            self._hass.config_entries.async_add_subentry(
                self._entry,
                ConfigSubentry(
                    data=MappingProxyType(
                        # No installed version: unknown until the user or a flasher says, so the gateway
                        # does not overwrite the cloud's record of the device with a guess.
                        {CONF_PRODUCT_ID: device.product_id, CONF_DEVICE_NAME: device.device_name}
                    ),
                    subentry_type=SUBENTRY_SUB_DEVICE,
                    title=device.device_name,
                    unique_id=device.key,
                ),
            )
