"""Helpers of the integration tests: sub-devices in the emulator and in HA, pushes, installs, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.update.const import DOMAIN as UPDATE_DOMAIN, SERVICE_INSTALL
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigSubentryData
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import Context, Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers import config_validation as cv
import probatio as vol

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_INSTALLED_VERSION,
    CONF_PRODUCT_ID,
    CONF_UNBIND_ON_REMOVE,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.subentry_flow import nest
from tencent_iot_emulator.console_client import ConsoleError
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway, add_entry

LIGHT_PRODUCT = "LIGHTPROD1"
VERSION = "V200R0001"
WAIT_S = 15.0  # an upper bound: a loaded 2-core CI machine is slow, a passing test is not


def light_key(name: str) -> str:
    """`PID/DN` of a light."""
    return f"{LIGHT_PRODUCT}/{name}"


def sub(
    name: str,
    *,
    flasher: dict[str, Any] | None = None,
    version: str = "0.1",
    secret: str | None = None,
    unbind_on_remove: bool = False,
) -> ConfigSubentryData:
    """A light's subentry as the subentry flow stores it."""
    data: dict[str, Any] = {
        CONF_PRODUCT_ID: LIGHT_PRODUCT,
        CONF_DEVICE_NAME: name,
        CONF_INSTALLED_VERSION: version,
        CONF_UNBIND_ON_REMOVE: unbind_on_remove,
    }
    if flasher is not None:
        data[CONF_FLASHER] = flasher
    if secret is not None:
        data[CONF_DEVICE_SECRET] = secret
    return ConfigSubentryData(
        data=data, subentry_type=SUBENTRY_SUB_DEVICE, title=light_key(name), unique_id=light_key(name)
    )


async def register_lights(gateway: Gateway, *names: str, bind: bool = True) -> dict[str, str]:
    """Register lights in the emulator (bound to the gateway unless told otherwise); returns their secrets."""
    console = gateway.emulator.console
    try:
        await console.add_product(LIGHT_PRODUCT)
    except ConsoleError as err:
        if err.status != 409:  # 409: already there from an earlier call
            raise
    secrets: dict[str, str] = {}
    for name in names:
        credentials = await console.add_device(LIGHT_PRODUCT, name)
        secrets[name] = credentials.device_secret
        if bind:
            await console.bind(gateway.key, light_key(name))
    return secrets


async def push(gateway: Gateway, firmware: bytes, *names: str, version: str = VERSION) -> None:
    """Upload `firmware` as `version` and push it to the lights (plain http URLs)."""
    console = gateway.emulator.console
    await console.upload_firmware(LIGHT_PRODUCT, version, firmware)
    await console.create_task(LIGHT_PRODUCT, version, "list", devices=list(names), url_scheme="http")


async def install_update(
    hass: HomeAssistant, entity_id: str | list[str], *, context: Context | None = None
) -> None:
    """Press Install: `update.install` on `entity_id`; returns once the job has ended, raises if it failed.

    To watch, cancel or reload while the job runs: `hass.async_create_task(install_update(hass, entity_id))`.
    """
    await hass.services.async_call(
        UPDATE_DOMAIN, SERVICE_INSTALL, {ATTR_ENTITY_ID: entity_id}, blocking=True, context=context
    )


def state(hass: HomeAssistant, entity_id: str) -> State:
    """The state of an entity that must exist."""
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found


def suggested(result: Any) -> dict[str, Any]:
    """The values a flow's form comes back with (its suggested values), by field (sections' fields too)."""
    schema = result["data_schema"]
    assert schema is not None
    return _suggested(schema)


def _suggested(schema: vol.Schema) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in schema.schema.items():
        if isinstance(value, section):
            values |= _suggested(value.schema)
        elif key.description and "suggested_value" in key.description:
            values[str(key)] = key.description["suggested_value"]
    return values


def frontend_fields(result: Any) -> list[dict[str, Any]]:
    """A form's fields as HA sends them to its frontend (what the user sees: sections, required, defaults)."""
    schema = result["data_schema"]
    assert schema is not None
    fields = vol.to_field_list(schema, custom_serializer=cv.custom_serializer)
    assert isinstance(fields, list)
    return fields


async def add_sub_device(hass: HomeAssistant, entry: ConfigEntry, user_input: Mapping[str, Any]) -> Any:
    """Add a sub-device through the flow as the frontend does: its ids, then the rest (`user_input` flat; the
    form's sections are filled in from it). Returns the result of the step that did not go on (a form with
    errors, or the flasher's form), or the entry created."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": SOURCE_USER}
    )
    ids = {key: user_input[key] for key in (CONF_PRODUCT_ID, CONF_DEVICE_NAME)}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], ids)
    if result.get("step_id") != "device":
        return result
    rest = {key: value for key, value in user_input.items() if key not in ids}
    return await hass.config_entries.subentries.async_configure(result["flow_id"], nest(rest))


async def wait_for(hass: HomeAssistant, check: Callable[[], bool], within: float = WAIT_S) -> None:
    """Wait until `check()` holds, re-checking on every state change (and every 50 ms, for non-state facts)."""
    changed = asyncio.Event()

    @callback
    def on_change(_event: Event[EventStateChangedData]) -> None:
        changed.set()

    unsubscribe = hass.bus.async_listen("state_changed", on_change)
    try:
        async with asyncio.timeout(within):
            while not check():
                changed.clear()
                try:
                    async with asyncio.timeout(0.05):
                        await changed.wait()
                except TimeoutError:
                    continue
    finally:
        unsubscribe()


def available(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether the entity exists and is not unavailable."""
    found = hass.states.get(entity_id)
    return found is not None and found.state != STATE_UNAVAILABLE


async def setup_gateway(
    hass: HomeAssistant, gateway: Gateway, subs: list[ConfigSubentryData], **options: Any
) -> ConfigEntry:
    """Add the gateway's entry with these sub-devices and wait until their entities are available."""
    entry = await add_entry(hass, gateway.entry_data, options=options or None, subentries=subs)
    await wait_for(
        hass, lambda: all(available(hass, f"update.{s['data'][CONF_DEVICE_NAME]}_firmware") for s in subs)
    )
    # A push racing the announce's version reports is pushed again by the cloud: tests push after them.
    await entry.runtime_data.engine.wait_versions_reported()
    return entry


async def gateway_operations(gateway: Gateway, kind: str) -> list[dict[str, Any]]:
    """The `kind` operations the gateway sent, as the emulator logged them (payload of each)."""
    records = await gateway.emulator.console.messages(gateway.key)
    return [
        record.payload.get("payload") or {}
        for record in records
        if record.direction == "in"
        and record.topic == f"$gateway/operation/{gateway.key}"
        and isinstance(record.payload, dict)
        and record.payload.get("type") == kind
    ]


async def operation_seen(gateway: Gateway, kind: str, device: str) -> None:
    """Wait until the gateway has sent a `kind` operation naming `device` (`PID/DN`)."""
    product_id, device_name = device.split("/", 1)

    async def probe() -> bool:
        for payload in await gateway_operations(gateway, kind):
            for entry in payload.get("devices") or []:
                if entry.get("product_id") == product_id and entry.get("device_name") == device_name:
                    return True
        return False

    await eventually(probe)


async def console_online(gateway: Gateway, name: str) -> bool:
    """Whether the emulator counts the light online."""
    return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, name)).online
