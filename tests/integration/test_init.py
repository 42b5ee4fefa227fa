"""Setting the entry up and down against the emulator: connected, auth failure, unreachable, unload, remove."""

from __future__ import annotations

import asyncio
from pathlib import Path
import socket

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.tencent_iot_gateway.const import CONF_DEVICE_SECRET, CONF_PORT, DOMAIN
from custom_components.tencent_iot_gateway.entry_config import cache_directory

from .gateway_rig import Gateway, add_entry


def _state(entry: ConfigEntry) -> ConfigEntryState:
    """Read afresh (mypy would keep the narrowing of an earlier assert)."""
    return entry.state


async def _gateway_online(gateway: Gateway) -> bool:
    status = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
    return status.online


async def _wait_offline(gateway: Gateway) -> None:
    for _ in range(100):
        if not await _gateway_online(gateway):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the gateway is still online")


async def test_setup_connects_and_unload_disconnects(hass: HomeAssistant, gateway: Gateway) -> None:
    """The entry logs in as the gateway, registers its device, and leaves on unload."""
    entry = await add_entry(hass, gateway.entry_data)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.connected
    assert await _gateway_online(gateway)
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, gateway.key), entry.entry_id)
    assert device is not None
    assert device.model == gateway.product_id
    assert device.manufacturer == "Tencent Cloud IoT"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(entry) is ConfigEntryState.NOT_LOADED
    await _wait_offline(gateway)


async def test_refused_login_starts_reauth(hass: HomeAssistant, gateway: Gateway) -> None:
    """The broker refuses the secret: setup error and a re-authentication flow."""
    entry = await add_entry(hass, gateway.entry_data | {CONF_DEVICE_SECRET: "d3Jvbmctc2VjcmV0LXZhbHVl"})
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert entry.reason is not None


async def test_unreachable_broker_retries_later(hass: HomeAssistant, gateway: Gateway) -> None:
    """Nothing listens: the entry is set to retry (ConfigEntryNotReady), with nothing left running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    entry = await add_entry(hass, gateway.entry_data | {CONF_PORT: port})
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_remove_deletes_store_and_cache(hass: HomeAssistant, gateway: Gateway) -> None:
    """Removing the entry deletes its firmware cache folder."""
    entry = await add_entry(hass, gateway.entry_data)
    folder = cache_directory(hass, entry.entry_id)
    await hass.async_add_executor_job(lambda: folder.mkdir(parents=True, exist_ok=True))
    await hass.async_add_executor_job((folder / "leftover.part").write_bytes, b"x")
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not await hass.async_add_executor_job(Path(folder).parent.exists)
