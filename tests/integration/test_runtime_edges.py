"""The running gateway's edges: bad subentries, a secret given later, the cloud away, options, a reset secret."""

from __future__ import annotations

import json
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_RECONFIGURE, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER_KIND,
    CONF_INSTALL_POLICY,
    CONF_INSTALLED_VERSION,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    DOMAIN,
    SUBENTRY_SUB_DEVICE,
    InstallPolicy,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.subentry_flow import nest
from tencent_iot_emulator.registry import REGISTRY_FILE
from tests.emulator_fixtures import eventually, on_the_same_ports

from .gateway_rig import Gateway, add_entry
from .helpers import (
    LIGHT_PRODUCT,
    available,
    light_key,
    operation_seen,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)
from .test_diagnostics import ClientFactory, get_diagnostics_for_config_entry

INTEGRATION_LOGGER = "custom_components.tencent_iot_gateway"
LIGHT1 = DeviceId(LIGHT_PRODUCT, "light1")
INSTALL_FEATURE = 1


def _subentry_id(entry: ConfigEntry, name: str) -> str:
    [subentry_id] = [i for i, s in entry.subentries.items() if s.unique_id == light_key(name)]
    return subentry_id


def _runtime_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the integration's HA side logged (the runtime and the modules it composes), not the engine."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(INTEGRATION_LOGGER) and not r.name.startswith(f"{INTEGRATION_LOGGER}.engine")
    ]


async def test_an_invalid_subentry_is_skipped_and_logged(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A subentry with an unusable device name (stored by an older version, say): logged, the rest works."""
    await register_lights(gateway, "light1")
    broken = sub("light2")
    broken["data"] = dict(broken["data"]) | {CONF_DEVICE_NAME: "no spaces allowed"}
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1"), broken])
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    assert list(entry.runtime_data.configs) == [LIGHT1]
    messages = [m for m in _runtime_logs(caplog) if m.startswith("Ignoring sub-device")]
    assert messages
    assert all(m.startswith(f"Ignoring sub-device {light_key('light2')}: device_name") for m in messages)
    assert hass.states.get("update.light2_firmware") is None
    assert await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
    assert (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).online


async def test_an_unusable_flasher_is_logged_and_offers_no_install(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A flasher setting of an unknown kind: the device still works, but cannot be installed from HA."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "carrier-pigeon"})])
    assert not entry.runtime_data.has_flasher(LIGHT1)
    assert state(hass, "update.light1_firmware").attributes["supported_features"] & INSTALL_FEATURE == 0
    messages = [m for m in _runtime_logs(caplog) if "flasher" in m]
    assert messages
    assert all(m.startswith(f"The flasher of {light_key('light1')} is not usable: kind") for m in messages)


async def test_the_secret_stays_out_of_reprs_and_logs(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A sub-device's configuration names the device in logs, never its secret."""
    caplog.set_level(logging.DEBUG, logger="custom_components.tencent_iot_gateway")
    secrets = await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", secret=secrets["light1"])])
    config = entry.runtime_data.configs[LIGHT1]
    assert config.secret == secrets["light1"]
    assert light_key("light1") in repr(config)
    assert secrets["light1"] not in repr(config)
    assert secrets["light1"] not in caplog.text


async def test_a_secret_given_later_binds_the_sub_device(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Unbound in the cloud and no secret: unavailable. The secret added to the subentry: bound, online, live."""
    secrets = await register_lights(gateway, "light1", bind=False)
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1")])
    runtime = entry.runtime_data
    await wait_for(hass, lambda: runtime.online_result(LIGHT1) == -1)
    assert not available(hass, "update.light1_firmware")
    assert (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).gateway is None

    subentry = entry.subentries[_subentry_id(entry, "light1")]
    hass.config_entries.async_update_subentry(
        entry, subentry, data=dict(subentry.data) | {CONF_DEVICE_SECRET: secrets["light1"]}
    )
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    assert entry.runtime_data is runtime, "applied live, without a reload"
    assert runtime.online_result(LIGHT1) == 0
    await operation_seen(gateway, "bind", light_key("light1"))
    status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
    assert status.gateway == gateway.key
    assert status.online


async def test_a_version_edit_while_the_cloud_is_away_is_kept_and_logged(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The installed version edited while disconnected: the report fails (a warning), the version is kept."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", version="1.0")])
    await gateway.emulator.__aexit__(None, None, None)
    await wait_for(hass, lambda: not entry.runtime_data.connected)
    caplog.clear()

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(entry, "light1")},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], nest({CONF_INSTALLED_VERSION: "1.5", CONF_FLASHER_KIND: "none"})
    )
    assert result["type"] is FlowResultType.ABORT
    await wait_for(hass, lambda: entry.runtime_data.snapshot(LIGHT1).installed_version == "1.5")
    await hass.async_block_till_done()
    [warning] = [m for m in _runtime_logs(caplog) if m.startswith("Could not report")]
    assert warning.startswith(f"Could not report the version of sub-device {light_key('light1')}:")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_changed_options_reload_the_gateway(hass: HomeAssistant, gateway: Gateway) -> None:
    """The options flow on a running gateway: the entry reloads and the new policy applies."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(
        hass,
        gateway,
        [sub("light1", flasher={"kind": "file", "directory": "/nonexistent-but-never-reached"})],
    )
    before = entry.runtime_data
    assert before.install_policy is InstallPolicy.MANUAL
    assert state(hass, "update.light1_firmware").attributes["auto_update"] is False

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "auto",
            CONF_MAX_DOWNLOADS: 2,
            CONF_MAX_FLASHES: 1,
            CONF_MAX_FIRMWARE_SIZE_MIB: 16,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    assert entry.runtime_data is not before, "reloaded"
    assert entry.runtime_data.install_policy is InstallPolicy.AUTO
    assert state(hass, "update.light1_firmware").attributes["auto_update"] is True
    assert not before.connected, "the old runtime let go of its session"


async def test_diagnostics_with_nothing_pending(
    hass: HomeAssistant, gateway: Gateway, hass_client: ClientFactory
) -> None:
    """An up-to-date sub-device: its job is idle and no pending firmware is listed."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    engine = diagnostics["engine"]
    assert isinstance(engine, dict)
    [light] = engine["sub_devices"]
    assert isinstance(light, dict)
    assert light["device"] == light_key("light1")
    assert light["latest_version"] == light["installed_version"] == "0.1"
    assert light["job"]["state"] == "idle"
    assert light["pending_firmware"] is None


async def test_a_secret_reset_in_the_cloud_asks_for_reauthentication(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The gateway's secret changes while it is away: the reconnect is refused and a reauth flow starts."""
    entry = await add_entry(hass, gateway.entry_data)
    await wait_for(hass, lambda: entry.runtime_data.connected)
    emulator = gateway.emulator
    await emulator.__aexit__(None, None, None)
    await wait_for(hass, lambda: not entry.runtime_data.connected)

    registry_file = emulator.state_dir / REGISTRY_FILE
    data: dict[str, Any] = json.loads(registry_file.read_text(encoding="utf-8"))
    for device in data["devices"]:
        if device["device_name"] == gateway.device_name:
            device["secret"] = "bmV3LXNlY3JldC12YWx1ZQ=="
    registry_file.write_text(json.dumps(data), encoding="utf-8")

    async with on_the_same_ports(emulator):

        async def reauth_started() -> bool:
            flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
            return [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]

        await eventually(reauth_started, within=15)
        assert not entry.runtime_data.connected
        assert await hass.config_entries.async_unload(entry.entry_id)
