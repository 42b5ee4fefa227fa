"""Tencent IoT Gateway: Home Assistant as a gateway of Tencent Cloud IoT, with sub-device firmware updates."""

from __future__ import annotations

import logging
import shutil

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .bridge.pairings import async_remove_pairings
from .const import CONF_PRODUCT_ID, DOMAIN, MANUFACTURER, RELOAD_FLASH_WAIT_S, SHUTDOWN_FLASH_WAIT_S
from .engine import AuthenticationError, CannotConnectError, NotAGatewayError
from .entry_config import cache_directory
from .entry_storage import EntryStores
from .runtime import GatewayRuntime, TencentIotConfigEntry
from .services import async_setup_services

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR, Platform.UPDATE]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (they exist, and validate their target, whether or not an entry is loaded)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TencentIotConfigEntry) -> bool:
    """Connect the gateway; a refused login starts re-authentication, an unreachable broker retries later."""
    runtime = GatewayRuntime(hass, entry)
    try:
        await runtime.async_start()
    # A failed start leaves nothing running (the session released its socket), so there is nothing to stop.
    except AuthenticationError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="auth_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    except CannotConnectError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key=f"cannot_connect_{err.cause}",
            translation_placeholders=err.placeholders,
        ) from err
    except NotAGatewayError as err:
        # The console can change the product; HA retries the setup with its own backoff meanwhile.
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="not_gateway") from err
    entry.runtime_data = runtime
    gateway_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, runtime.gateway.key)},
        manufacturer=MANUFACTURER,
        model=entry.data[CONF_PRODUCT_ID],
        name=entry.title,
        serial_number=runtime.gateway.key,
        sw_version=runtime.gateway_sw_version,
    )
    runtime.gateway_device_id = gateway_device.id
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))

    async def _async_on_stop(_event: Event) -> None:
        # HA does not unload entries when it stops: close the session and save resume state ourselves. A
        # flash under way gets what HA's stop stage allows; one that outlasts it is reported as interrupted.
        await runtime.async_stop(flash_wait_s=SHUTDOWN_FLASH_WAIT_S)

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_on_stop))
    # Sub-devices adopted from the cloud while this setup ran (the first connect lists the bound ones) were
    # added as subentries before the listener above existed: apply them now.
    runtime.async_schedule_sync()
    return True


async def _async_entry_updated(hass: HomeAssistant, entry: TencentIotConfigEntry) -> None:
    """Options or connection data changed: reload. Only subentries changed: apply them live."""
    runtime = entry.runtime_data
    if dict(entry.options) != runtime.options or dict(entry.data) != runtime.data:
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    runtime.async_schedule_sync()


async def async_unload_entry(hass: HomeAssistant, entry: TencentIotConfigEntry) -> bool:
    """Close the MQTT session; downloads stop where they can resume, flashes under way are waited for."""
    # Before the entities go, so they keep showing the flash the reload waits for.
    await entry.runtime_data.async_finish_flashes(RELOAD_FLASH_WAIT_S)
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_stop()
    else:
        entry.runtime_data.allow_flashes()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: TencentIotConfigEntry) -> None:
    """Delete the entry's stores and cached firmware."""
    await EntryStores.of(hass, entry.entry_id).async_remove()
    await async_remove_pairings(hass, entry.entry_id)
    directory = cache_directory(hass, entry.entry_id).parent
    await hass.async_add_executor_job(shutil.rmtree, directory, True)
