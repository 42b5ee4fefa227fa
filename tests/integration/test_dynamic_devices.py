"""Dynamic and stale sub-devices (bound or unbound in the console), and availability logged once each way."""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
import pytest

from custom_components.tencent_iot_gateway.const import CONF_INSTALLED_VERSION, DOMAIN, SUBENTRY_SUB_DEVICE
from tencent_iot_emulator.broker import BrokerLimits
from tests.emulator_fixtures import eventually, on_the_same_ports

from .gateway_rig import Gateway, add_entry
from .helpers import (
    LIGHT_PRODUCT,
    available,
    console_online,
    light_key,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

# The runtime logs what the cloud said; the entity-state cache logs availability (the runtime hands it every
# state change).
AVAILABILITY_LOGGERS = (
    "custom_components.tencent_iot_gateway.runtime",
    "custom_components.tencent_iot_gateway.entity_states",
)
# A sub-device with a secret would bind itself again on the next connect; the console's unbind must win.
SECRET_PLACEHOLDER = "c2VjcmV0LWtleS1mb3ItdGVzdCE="


def _keys(entry: ConfigEntry) -> set[str | None]:
    return {s.unique_id for s in entry.subentries.values() if s.subentry_type == SUBENTRY_SUB_DEVICE}


def _device_exists(hass: HomeAssistant, entry: ConfigEntry, name: str) -> bool:
    registry = dr.async_get(hass)
    return registry.async_get_device_by_identifier((DOMAIN, light_key(name)), entry.entry_id) is not None


async def test_bound_devices_are_adopted_at_startup(hass: HomeAssistant, gateway: Gateway) -> None:
    """`describe_sub_devices` after connecting: every bound sub-device gets a subentry, entities, online."""
    await register_lights(gateway, "light1", "light2")
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1")])
    await wait_for(hass, lambda: _keys(entry) == {light_key("light1"), light_key("light2")})
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
    adopted = next(s for s in entry.subentries.values() if s.unique_id == light_key("light2"))
    assert CONF_INSTALLED_VERSION not in adopted.data
    assert _device_exists(hass, entry, "light2")
    assert await console_online(gateway, "light2")
    assert len(entry.subentries) == 2  # light1 was not added a second time


async def test_an_adopted_sub_device_has_an_unknown_version_that_is_never_reported(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Issue 9 §3: adopted from the bound list, a sub-device's version is unknown: the update entity says
    so and how to set it, and the cloud's record is not overwritten; a manually added one reports what the
    user entered, and so does the adopted one once the user sets it."""
    await register_lights(gateway, "light1", "light2")
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1", version="1.2.3")])
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
    console = gateway.emulator.console

    async def manual_reported() -> bool:
        return (await console.get_device(LIGHT_PRODUCT, "light1")).version == "1.2.3"

    await eventually(manual_reported)
    adopted = hass.states.get("update.light2_firmware")
    assert adopted is not None
    assert adopted.attributes["installed_version"] is None
    assert "set_installed_version" in adopted.attributes["release_summary"]
    reports = [
        m
        for m in await console.messages(light_key("light2"))
        if m.direction == "in" and isinstance(m.payload, dict) and m.payload.get("type") == "report_version"
    ]
    assert reports == []

    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light2")), entry.entry_id)
    assert device is not None
    await hass.services.async_call(
        DOMAIN, "set_installed_version", {"device_id": device.id, "version": "2.0.0"}, blocking=True
    )

    async def adopted_reported() -> bool:
        return (await console.get_device(LIGHT_PRODUCT, "light2")).version == "2.0.0"

    await eventually(adopted_reported)
    assert entry.state.value == "loaded"


async def test_bound_in_console_while_running_appears(hass: HomeAssistant, gateway: Gateway) -> None:
    """A `change` push (bound) adds the sub-device and brings it online."""
    await register_lights(gateway, "light1")
    await register_lights(gateway, "light2", bind=False)
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    assert _keys(entry) == {light_key("light1")}
    await gateway.emulator.console.bind(gateway.key, light_key("light2"))
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
    assert light_key("light2") in _keys(entry)
    assert _device_exists(hass, entry, "light2")
    assert await console_online(gateway, "light2")


def _unbound_issue(hass: HomeAssistant, entry: ConfigEntry, name: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"unbound_{entry.entry_id}_{light_key(name)}")


async def test_unbound_in_console_is_kept_unavailable_with_a_repair(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A `change` push (unbound) keeps the subentry (flasher settings, tokens): unavailable, with a repair."""
    await register_lights(gateway, "light1", "light2")
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2", secret=SECRET_PLACEHOLDER)])
    await gateway.emulator.console.unbind(gateway.key, light_key("light2"))
    await wait_for(hass, lambda: not available(hass, "update.light2_firmware"))
    # old code: the subentry, its device and its entities were deleted
    assert _keys(entry) == {light_key("light1"), light_key("light2")}
    assert _device_exists(hass, entry, "light2")
    issue = _unbound_issue(hass, entry, "light2")
    assert issue is not None
    assert issue.translation_key == "sub_device_unbound"
    assert issue.translation_placeholders == {"device": light_key("light2"), "gateway": gateway.key}
    assert available(hass, "update.light1_firmware")
    # bound again in the console: back online, the repair goes away
    await gateway.emulator.console.bind(gateway.key, light_key("light2"))
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
    await wait_for(hass, lambda: _unbound_issue(hass, entry, "light2") is None)


async def test_unbind_all_keeps_every_sub_device(hass: HomeAssistant, gateway: Gateway) -> None:
    """`unbind_all` from the console: every sub-device stays configured but unavailable; the gateway stays up."""
    await register_lights(gateway, "light1", "light2")
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])
    await gateway.emulator.console.unbind_all(gateway.key)
    await wait_for(hass, lambda: not available(hass, "update.light1_firmware"))
    await wait_for(hass, lambda: not available(hass, "update.light2_firmware"))
    assert _keys(entry) == {light_key("light1"), light_key("light2")}
    assert _unbound_issue(hass, entry, "light1") is not None
    assert _unbound_issue(hass, entry, "light2") is not None
    assert entry.runtime_data.connected

    async def acknowledged() -> bool:
        records = await gateway.emulator.console.messages(gateway.key)
        return any(
            r.direction == "in" and isinstance(r.payload, dict) and r.payload.get("type") == "unbind_all"
            for r in records
        )

    await eventually(acknowledged)


async def test_the_bound_list_is_reconciled_on_every_connect(hass: HomeAssistant, gateway: Gateway) -> None:
    """Unbound and bound while Home Assistant was away: both are seen at the next connect."""
    await register_lights(gateway, "light1", "light2")
    await register_lights(gateway, "light3", bind=False)
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])
    assert await hass.config_entries.async_unload(entry.entry_id)
    await gateway.emulator.console.unbind(gateway.key, light_key("light2"))
    await gateway.emulator.console.bind(gateway.key, light_key("light3"))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: available(hass, "update.light3_firmware"))
    await wait_for(hass, lambda: _unbound_issue(hass, entry, "light2") is not None)
    assert not available(hass, "update.light2_firmware")
    assert light_key("light2") in _keys(entry)
    assert available(hass, "update.light1_firmware")


async def test_availability_logged_once_down_and_once_up(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker goes away and comes back: one line each way for the gateway, none per sub-device (1,000
    sub-devices would be 1,000 lines each way; old code logged one per sub-device). Coming online at start-up
    logs nothing either. A sub-device unavailable for a reason of its own (unbound in the console, then bound
    again) gets its own line each way."""
    for logger in AVAILABILITY_LOGGERS:
        caplog.set_level(logging.INFO, logger=logger)
    await register_lights(gateway, "light1", "light2")
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])
    emulator = gateway.emulator

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name in AVAILABILITY_LOGGERS]

    assert not [m for m in logged() if "light" in m]
    caplog.clear()

    await emulator.__aexit__(None, None, None)
    await wait_for(hass, lambda: not available(hass, "update.light1_firmware"))
    await wait_for(hass, lambda: not entry.runtime_data.connected)
    async with on_the_same_ports(emulator) as again:
        await wait_for(hass, lambda: available(hass, "update.light1_firmware"), within=15)
        await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
        assert (await again.console.get_device(LIGHT_PRODUCT, "light1")).online
        assert logged() == [
            f"Gateway {gateway.key} is disconnected: its 2 sub-device(s) are unavailable until it reconnects",
            f"Gateway {gateway.key} is connected again",
        ]
        caplog.clear()

        await again.console.unbind(gateway.key, light_key("light2"))
        await wait_for(hass, lambda: not available(hass, "update.light2_firmware"))
        await again.console.bind(gateway.key, light_key("light2"))
        await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
        assert logged() == [
            (
                f"Sub-device {light_key('light2')} is no longer bound to {gateway.key} in the cloud; it stays "
                "configured but unavailable"
            ),
            f"Sub-device {light_key('light2')} is unavailable: the cloud answered online with -1",
            f"Sub-device {light_key('light2')} is available again",
        ]
        assert available(hass, "update.light1_firmware")
        caplog.clear()
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert not [m for m in logged() if "unavailable" in m]  # unloading is not a loss of connection


async def test_a_refused_update_topic_is_said_not_silent(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Over the broker's subscription limit: the sub-device that cannot hear pushes is named (log, attribute,
    repair issue); the others work."""
    await gateway.emulator.set_limits(BrokerLimits(max_subscriptions=2))  # the gateway's own topic + one
    await register_lights(gateway, "light1", "light2")
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])

    def blocked() -> list[str]:
        return [
            name
            for name in ("light1", "light2")
            if state(hass, f"binary_sensor.{name}_cloud_connection").attributes.get("updates_blocked")
        ]

    await wait_for(hass, lambda: len(blocked()) == 1)
    [name] = blocked()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"updates_blocked_{entry.entry_id}_{light_key(name)}")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["device"] == light_key(name)
    assert any(
        light_key(name) in r.getMessage() and "cannot receive firmware updates" in r.getMessage()
        for r in caplog.records
    )
