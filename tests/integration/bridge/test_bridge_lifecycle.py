"""The bridge over time: a restart keeps each entity's device, unavailable means offline (and back online with a
full report), removal unbinds (or, when told to keep it, leaves it bound and not adopted as a sub-device), the
logbook names Tencent Cloud as what changed the entity, and diagnostics show the bridge without secrets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
import json
from typing import Any

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest

from custom_components.tencent_iot_gateway.bridge.const import CONF_ENTITIES, SUBENTRY_BRIDGE
from custom_components.tencent_iot_gateway.bridge.pairings import pairings_of
from custom_components.tencent_iot_gateway.const import DOMAIN, SUBENTRY_SUB_DEVICE
from custom_components.tencent_iot_gateway.diagnostics import async_get_config_entry_diagnostics
from tests.emulator_fixtures import eventually
from tests.integration.bridge.bridge_rig import (
    BRIDGE_PRODUCT,
    BRIDGE_SECRET,
    DEVICE_NAME,
    LIGHT,
    answered,
    bridge_product,
    bridged_gateway,
    properties,
    reported,
    setup_lights,
    wait_settled,
)
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import state, wait_for

type WebSocketGenerator = Callable[[HomeAssistant], Awaitable[Any]]


async def _online(gateway: Gateway, name: str = DEVICE_NAME) -> bool:
    return (await gateway.emulator.console.get_device(BRIDGE_PRODUCT, name)).online


async def test_restart_keeps_the_pairing(hass: HomeAssistant, gateway: Gateway) -> None:
    """Unloaded, the pairings forgotten in memory, loaded again: the same device comes online from the store,
    without registering again (the product's secret is not kept anywhere to do so)."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    secret = (await pairings_of(hass, entry.entry_id)).get(LIGHT, BRIDGE_PRODUCT)
    assert secret is not None
    await hass.config_entries.async_unload(entry.entry_id)
    await eventually(lambda: _not(_online(gateway)))
    hass.data.pop(f"{DOMAIN}_bridge_pairings")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_settled(gateway, DEVICE_NAME)
    again = (await pairings_of(hass, entry.entry_id)).get(LIGHT, BRIDGE_PRODUCT)
    assert again == secret
    assert len(await gateway.emulator.console.list_devices(BRIDGE_PRODUCT)) == 1


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


async def test_unavailable_is_offline_and_back_reports_everything(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The light unavailable: its device goes offline in the cloud; back: online and its state reported."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    lights["desk"].set_available(False)
    await eventually(lambda: _not(_online(gateway)))
    lights["desk"]._attr_is_on = True  # changed while unreachable
    lights["desk"].set_available(True)
    await eventually(lambda: _online(gateway))
    await reported(gateway, {"power_switch": 1, "brightness": 50, "color_temp": 4000})


@pytest.mark.parametrize("unbind", [True, False])
async def test_removal_unbinds_or_keeps_the_device(
    hass: HomeAssistant, gateway: Gateway, unbind: bool
) -> None:
    """An entity taken out of the bridge: offline, and unbound when the bridge says so; kept bound, the gateway
    does not adopt it as a sub-device on its next connect."""
    await setup_lights(hass, "desk", "lamp")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT, "light.lamp"], unbind_on_remove=unbind)
    [subentry] = [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_BRIDGE]
    hass.config_entries.async_update_subentry(
        entry, subentry, data={**subentry.data, CONF_ENTITIES: ["light.lamp"]}
    )
    await eventually(lambda: _not(_online(gateway)))

    async def settled() -> bool:
        device = await gateway.emulator.console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)
        return (device.gateway is None) is unbind

    await eventually(settled)
    # The engine sends `offline` before `unbind`: both are through once the device is unbound.
    await hass.async_block_till_done()
    device = await gateway.emulator.console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)
    assert (device.gateway is None) is unbind
    assert await _online(gateway, "light_lamp")
    await hass.config_entries.async_reload(entry.entry_id)
    await wait_settled(gateway, "light_lamp")
    await hass.async_block_till_done()
    assert not [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_SUB_DEVICE]


async def test_removing_the_bridge_unbinds_its_devices(hass: HomeAssistant, gateway: Gateway) -> None:
    """The whole bridge subentry deleted: its devices are unbound."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    [subentry_id] = [i for i, s in entry.subentries.items() if s.subentry_type == SUBENTRY_BRIDGE]
    assert hass.config_entries.async_remove_subentry(entry, subentry_id)

    async def unbound() -> bool:
        return (await gateway.emulator.console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)).gateway is None

    await eventually(unbound)


async def test_diagnostics_show_the_bridge_without_secrets(hass: HomeAssistant, gateway: Gateway) -> None:
    """Each bridged entity's device, last report and last control; no product or device secret anywhere."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    record = await gateway.emulator.console.send_control(BRIDGE_PRODUCT, DEVICE_NAME, {"power_switch": 1})
    assert await answered(gateway, record.client_token) == (0, "")
    await reported(gateway, {"power_switch": 1})
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    [bridged] = diagnostics["engine"]["bridged_entities"]
    assert bridged["entity_id"] == LIGHT
    assert bridged["device"] == f"{BRIDGE_PRODUCT}/{DEVICE_NAME}"
    assert bridged["online"] is True
    assert bridged["last_control"]["params"] == {"power_switch": 1}
    assert bridged["last_report"]["values"]["power_switch"] == 1
    text = json.dumps(diagnostics)
    pairing = (await pairings_of(hass, entry.entry_id)).get(LIGHT, BRIDGE_PRODUCT)
    assert pairing is not None
    assert pairing.secret not in text
    assert BRIDGE_SECRET not in text
    assert (await properties(gateway)).info is not None


@pytest.fixture
def auto_enable_custom_integrations(recorder_db_url: str, enable_custom_integrations: None) -> None:
    """The recorder's database before Home Assistant (as `recorder_mock` requires), then this integration."""


async def test_logbook_names_tencent_cloud_as_the_origin(
    recorder_mock: Any, hass: HomeAssistant, gateway: Gateway, hass_ws_client: WebSocketGenerator
) -> None:
    """A control from the cloud: the light's change in the logbook is attributed to Tencent Cloud, with what it
    set; in Chinese too."""
    assert await async_setup_component(hass, "logbook", {})
    since = dt_util.utcnow() - timedelta(seconds=1)
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    record = await gateway.emulator.console.send_control(BRIDGE_PRODUCT, DEVICE_NAME, {"power_switch": 1})
    assert await answered(gateway, record.client_token) == (0, "")
    await wait_for(hass, lambda: state(hass, LIGHT).state == STATE_ON)
    for language, name, message in (
        ("en", "Tencent Cloud", "controlled it from Tencent Cloud: power_switch = 1"),
        ("zh-Hans", "腾讯云", "通过腾讯云控制：power_switch = 1"),  # noqa: RUF001
    ):
        await hass.config.async_update(language=language)
        await async_get_translations(hass, language, "exceptions", [DOMAIN])
        entries = await _logbook(hass, hass_ws_client, since, entity_ids=[LIGHT])
        [on] = [e for e in entries if e.get("state") == STATE_ON]
        assert on["context_domain"] == DOMAIN
        assert on["context_name"] == name
        assert on["context_message"] == message


async def _logbook(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, since: Any, **query: Any
) -> list[dict[str, Any]]:
    for _ in range(2):
        await hass.async_block_till_done()
        await get_instance(hass).async_block_till_done()
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "logbook/get_events", "start_time": since.isoformat(), **query})
    response = await client.receive_json()
    assert response["success"], response
    return list(response["result"])


async def test_control_for_an_entity_no_longer_bridged_runs_nothing(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A control that reaches the bridge after its entity left it (in flight when the subentry changed) is
    answered 'no longer bridged' and the light is not touched."""
    lights = await setup_lights(hass, "desk", "lamp")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT, "light.lamp"], unbind_on_remove=False)
    bridge = entry.runtime_data.bridge
    runner, [desk] = bridge._controls, [e for e in bridge._entities.values() if e.entity_id == LIGHT]
    [subentry] = [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_BRIDGE]
    hass.config_entries.async_update_subentry(
        entry, subentry, data={**subentry.data, CONF_ENTITIES: ["light.lamp"]}
    )
    await eventually(lambda: _not(_online(gateway)))
    code, status = await runner.run(desk, {"power_switch": 1})
    assert (code, status) == (-1, "the entity is no longer bridged")
    assert lights["desk"].calls == []
