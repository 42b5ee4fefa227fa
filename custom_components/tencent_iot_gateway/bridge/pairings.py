"""Which device each bridged entity is, kept across restarts: entity id -> product, device name, secret.

One store per gateway entry, shared by the subentry flow (which registers devices or takes the user's) and
the running bridge, through `pairings_of`, so both see one copy. A pairing outlives the entity's removal from
the bridge: bridging the entity again into the same product uses the same device (Tencent's registration of
a device that exists may be refused, and a device bound before must not get a second one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_PRODUCT_ID,
    DOMAIN,
    STORAGE_VERSION,
)
from custom_components.tencent_iot_gateway.engine import DeviceId, InvalidFieldError

_DATA_KEY: Final = f"{DOMAIN}_bridge_pairings"


@dataclass(frozen=True, slots=True)
class Pairing:
    """An entity's device and its secret."""

    device: DeviceId
    secret: str

    def __repr__(self) -> str:
        """The secret stays out of logs."""
        return f"Pairing({self.device})"


class Pairings:
    """The pairings of one entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Not read before `async_load`."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.bridge")
        self._pairings: dict[str, Pairing] = {}
        self._loaded = False

    async def async_load(self) -> None:
        """Read what an earlier run kept (once)."""
        if self._loaded:
            return
        saved = await self._store.async_load() or {}
        for entity_id, raw in (saved.get("pairings") or {}).items():
            try:
                device = DeviceId(str(raw[CONF_PRODUCT_ID]), str(raw[CONF_DEVICE_NAME]))
                self._pairings[entity_id] = Pairing(device, str(raw[CONF_DEVICE_SECRET]))
            except KeyError, TypeError, InvalidFieldError:
                continue
        self._loaded = True

    def get(self, entity_id: str, product_id: str) -> Pairing | None:
        """The entity's device in this product, if it has one."""
        pairing = self._pairings.get(entity_id)
        return pairing if pairing is not None and pairing.device.product_id == product_id else None

    def devices(self) -> set[DeviceId]:
        """Every device paired with an entity."""
        return {pairing.device for pairing in self._pairings.values()}

    async def async_set(self, pairings: dict[str, Pairing]) -> None:
        """Keep these pairings (replacing the entities' earlier ones)."""
        self._pairings |= pairings
        await self._save()

    async def async_remove(self) -> None:
        """Delete the store (the entry is removed)."""
        self._pairings.clear()
        await self._store.async_remove()

    async def _save(self) -> None:
        await self._store.async_save(
            {
                "pairings": {
                    entity_id: {
                        CONF_PRODUCT_ID: pairing.device.product_id,
                        CONF_DEVICE_NAME: pairing.device.device_name,
                        CONF_DEVICE_SECRET: pairing.secret,
                    }
                    for entity_id, pairing in self._pairings.items()
                }
            }
        )


async def pairings_of(hass: HomeAssistant, entry_id: str) -> Pairings:
    """The entry's pairings, loaded (one object per entry for the flow and the runtime alike)."""
    shared: dict[str, Pairings] = hass.data.setdefault(_DATA_KEY, {})
    pairings = shared.get(entry_id)
    if pairings is None:
        pairings = shared[entry_id] = Pairings(hass, entry_id)
    await pairings.async_load()
    return pairings


async def async_remove_pairings(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is removed: its pairings go with it."""
    pairings = await pairings_of(hass, entry_id)
    await pairings.async_remove()
    hass.data.get(_DATA_KEY, {}).pop(entry_id, None)
