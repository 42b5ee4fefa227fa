"""What one gateway entry keeps in Home Assistant's storage, one `Store` per concern, and where its files go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import CONF_GATEWAY_VERSION, DOMAIN, STORAGE_VERSION
from .engine import OwnFirmware

type JsonStore = Store[dict[str, Any]]


class EntryStore(StrEnum):
    """The entry's stores (the value is part of the storage key)."""

    OTA = "ota"  # the OTA jobs' records (engine/stores/job_store.py)
    DOWNLOADS = "downloads"  # resume points of partial downloads
    # Sub-devices the user removed while they stay bound in the cloud: not adopted again from
    # `describe_sub_devices` (as HA ignores a dismissed discovery), until re-bound or added by hand.
    IGNORED = "ignored"
    # The gateway's own version as the options set it at the last start: a change since then wins over a
    # version a flash of the gateway left in the OTA store.
    GATEWAY = "gateway"
    # Halted rollouts wait for the user across a restart or a reload (an option changed after the halt).
    ROLLOUTS = "rollouts"


def store_key(entry_id: str, what: EntryStore | str) -> str:
    """The HA storage key of one of an entry's stores."""
    return f"{DOMAIN}.{entry_id}.{what}"


@dataclass(frozen=True, slots=True)
class EntryStores:
    """The stores of one entry."""

    ota: JsonStore
    downloads: JsonStore
    ignored: JsonStore
    gateway: JsonStore
    rollouts: JsonStore

    @classmethod
    def of(cls, hass: HomeAssistant, entry_id: str) -> EntryStores:
        """The entry's stores. The engine coalesces its writes and hands over documents it does not change
        afterwards, so HA may build the JSON of its two (large with many sub-devices) in the executor."""

        def store(what: EntryStore, *, in_executor: bool = False) -> JsonStore:
            return Store(
                hass, STORAGE_VERSION, store_key(entry_id, what), serialize_in_event_loop=not in_executor
            )

        return cls(
            ota=store(EntryStore.OTA, in_executor=True),
            downloads=store(EntryStore.DOWNLOADS, in_executor=True),
            ignored=store(EntryStore.IGNORED),
            gateway=store(EntryStore.GATEWAY),
            rollouts=store(EntryStore.ROLLOUTS),
        )

    async def async_remove(self) -> None:
        """Delete every store (the entry is removed)."""
        for store in (self.ota, self.downloads, self.ignored, self.gateway, self.rollouts):
            await store.async_remove()


async def async_own_firmware(options: Mapping[str, Any], store: JsonStore) -> OwnFirmware:
    """The gateway's own version: the options' (else unknown: the integration's version is not the firmware
    of the host it runs on); it wins over the one a flash of the gateway left in the OTA store only when it
    changed since the last start (`store` remembers it)."""
    version = str(options.get(CONF_GATEWAY_VERSION) or "").strip() or None
    saved = await store.async_load() or {}
    changed = saved.get("configured_version") != version
    if changed:
        await store.async_save({"configured_version": version})
    return OwnFirmware(version, version_wins=changed)
