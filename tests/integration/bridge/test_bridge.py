"""The bridge against the emulator: a light bridged through the flow is registered, bound and online with its
state; changes go up; the cloud's controls come down as light actions and are answered; bad controls are
refused with a reason and run nothing; unavailable means offline; a restart keeps the pairing; removal unbinds."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.tencent_iot_gateway.bridge.const import (
    EVENT_CLOUD_CONTROL,
    MAX_WAITING_CONTROLS,
    SUBENTRY_BRIDGE,
)
from custom_components.tencent_iot_gateway.const import DOMAIN
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
    wait_online,
)
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import state, wait_for


async def _control(
    gateway: Gateway, params: dict[str, Any], *, check: bool = True, name: str = DEVICE_NAME
) -> str:
    record = await gateway.emulator.console.send_control(BRIDGE_PRODUCT, name, params, check=check)
    assert record.delivered
    return record.client_token


async def test_bridged_light_is_registered_bound_online_and_reported(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Through the flow: the device is registered with the product secret, bound to the gateway, online, told
    the device's info and the light's full state; it has no OTA topic."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    console = gateway.emulator.console
    # Two subscriptions per connection: the gateway's result topic and the device's `$thing` topic. An
    # `$ota/update` subscription for the bridged device would take the second one and starve its reports.
    async with console.session.put(
        f"{console.base_url}/api/limits", json={"max_subscriptions": 2}
    ) as response:
        assert response.status == 200
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    device = await console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)
    assert device.gateway == gateway.key
    await reported(gateway, {"power_switch": 0})
    props = await properties(gateway)
    assert "brightness" not in props.reported  # Home Assistant has no brightness for a light that is off
    assert props.info is not None
    assert props.info["device_label"] == {"entity_id": LIGHT}
    assert props.refused_reports == 0
    # The pairing is not in the subentry: no secret there.
    [subentry] = [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_BRIDGE]
    assert BRIDGE_SECRET not in str(dict(subentry.data))
    assert device_secret_of(hass, entry) not in str(dict(subentry.data))


def device_secret_of(hass: HomeAssistant, entry: ConfigEntry) -> str:
    pairing = entry.runtime_data.bridge._pairings.get(LIGHT, BRIDGE_PRODUCT)
    assert pairing is not None
    return str(pairing.secret)


async def test_state_changes_are_reported(hass: HomeAssistant, gateway: Gateway) -> None:
    """Turning the light on and dimming it in HA: the cloud has the new values."""
    await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    await reported(gateway, {"power_switch": 0})
    await hass.services.async_call(
        "light",
        "turn_on",
        {"entity_id": LIGHT, "brightness_pct": 80, "color_temp_kelvin": 3000},
        blocking=True,
    )
    await reported(gateway, {"power_switch": 1, "brightness": 80, "color_temp": 3000})
    await hass.services.async_call("light", "turn_off", {"entity_id": LIGHT}, blocking=True)
    await reported(gateway, {"power_switch": 0})


async def test_control_toggles_the_light_and_is_answered(hass: HomeAssistant, gateway: Gateway) -> None:
    """power_switch 1 with brightness and colour temperature: one light.turn_on with those, answered 0, the
    new state reported back; the control's event carries the context of the light's change."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    await reported(gateway, {"power_switch": 0})
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CLOUD_CONTROL, events.append)
    token = await _control(gateway, {"power_switch": 1, "brightness": 30, "color_temp": 5000})
    assert await answered(gateway, token) == (0, "")
    assert lights["desk"].calls == [("turn_on", {"brightness": 76, "color_temp_kelvin": 5000})]
    light = state(hass, LIGHT)
    assert light.state == STATE_ON
    assert light.context.id == events[0].context.id
    assert events[0].data["entity_id"] == LIGHT
    await reported(gateway, {"power_switch": 1, "brightness": 30, "color_temp": 5000})
    token = await _control(gateway, {"power_switch": 0})
    assert await answered(gateway, token) == (0, "")
    assert state(hass, LIGHT).state == STATE_OFF
    assert not (await properties(gateway)).pending_control


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"rgb_color": 255}, "unknown property: rgb_color"),
        ({"power_switch": "on"}, "wrong type: power_switch"),
        ({"brightness": 1.5}, "wrong type: brightness"),
        ({"brightness": 101}, "out of range: brightness"),
        ({"color_temp": 9000}, "out of range: color_temp"),
        ({"power_switch": 1, "brightness": -1}, "out of range: brightness"),
    ],
)
async def test_bad_controls_are_refused_and_run_nothing(
    hass: HomeAssistant, gateway: Gateway, params: dict[str, Any], status: str
) -> None:
    """A control the light cannot take is answered with the reason and no action runs (the whole control:
    a valid property beside a bad one is not carried out either); nothing stays pending."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    token = await _control(gateway, params, check=False)
    code, reason = await answered(gateway, token)
    assert code == -1
    assert reason == status
    assert lights["desk"].calls == []
    assert state(hass, LIGHT).state == STATE_OFF
    assert not (await properties(gateway)).pending_control


async def test_failing_action_is_answered_with_its_error(hass: HomeAssistant, gateway: Gateway) -> None:
    """The light's action raises: the reply says the action failed, and diagnostics keep it."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    lights["desk"].fail_next = True
    token = await _control(gateway, {"power_switch": 1})
    code, reason = await answered(gateway, token)
    assert code == -1
    assert reason.startswith("the action failed")
    [bridged] = (await async_get_config_entry_diagnostics(hass, entry))["engine"]["bridged_entities"]
    assert bridged["last_control"]["code"] == -1
    assert bridged["errors"]


async def test_read_only_bridge_refuses_every_control(hass: HomeAssistant, gateway: Gateway) -> None:
    """Bridged read-only: state goes up, a control is answered 'read-only' and the light is not touched."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT], read_only=True)
    await reported(gateway, {"power_switch": 0})
    token = await _control(gateway, {"power_switch": 1})
    code, reason = await answered(gateway, token)
    assert (code, reason) == (-1, "read-only: the entity is bridged without control")
    assert lights["desk"].calls == []


async def test_a_flood_of_controls_is_answered_whole(hass: HomeAssistant, gateway: Gateway) -> None:
    """Many controls at once: each one is answered (none lost, none left pending); those beyond what may wait
    are refused as busy and not run; the light ends in a state one of the run ones set."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    count = MAX_WAITING_CONTROLS * 3
    tokens = await asyncio.gather(*(_control(gateway, {"brightness": 1 + i}) for i in range(count)))
    replies = [await answered(gateway, token) for token in tokens]
    done = [r for r in replies if r[0] == 0]
    busy = [r for r in replies if r[0] != 0]
    assert len(replies) == count
    assert busy
    assert all(r[1] == "too many controls waiting; try again" for r in busy)
    assert len(lights["desk"].calls) == len(done)
    assert not (await properties(gateway)).pending_control


async def test_pending_control_is_applied_at_online_then_cleared(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A control sent while the light was unavailable (its device offline) is carried out when it is back,
    then cleared in the cloud; and unavailable meant offline in the cloud."""
    lights = await setup_lights(hass, "desk")
    await bridge_product(gateway)
    await bridged_gateway(hass, gateway, [LIGHT])
    lights["desk"].set_available(False)

    async def offline() -> bool:
        return not (await gateway.emulator.console.get_device(BRIDGE_PRODUCT, DEVICE_NAME)).online

    await eventually(offline)
    record = await gateway.emulator.console.send_control(BRIDGE_PRODUCT, DEVICE_NAME, {"power_switch": 1})
    assert not record.delivered
    lights["desk"].set_available(True)
    await wait_online(gateway, DEVICE_NAME)
    await wait_for(hass, lambda: state(hass, LIGHT).state == STATE_ON)
    await reported(gateway, {"power_switch": 1})

    async def cleared() -> bool:
        return not (await properties(gateway)).pending_control

    await eventually(cleared)


async def test_refused_property_raises_an_issue_and_is_not_sent_again(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """A template without colour temperature: the cloud refuses it, a repair issue names the entity, the
    property and the product, and later reports leave it out (no more refused reports)."""
    await setup_lights(hass, "desk")
    await gateway.emulator.console.add_product(BRIDGE_PRODUCT, BRIDGE_SECRET)
    await gateway.emulator.console.set_template(
        BRIDGE_PRODUCT,
        properties=[
            {"id": "power_switch", "type": "bool"},
            {"id": "brightness", "type": "int", "min": 0, "max": 100},
        ],
    )
    entry = await bridged_gateway(hass, gateway, [LIGHT])
    await hass.services.async_call("light", "turn_on", {"entity_id": LIGHT}, blocking=True)
    registry = ir.async_get(hass)
    issue_id = f"bridge_property_refused_{entry.entry_id}_{BRIDGE_PRODUCT}/{DEVICE_NAME}_color_temp"
    await wait_for(hass, lambda: registry.async_get_issue(DOMAIN, issue_id) is not None)
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["property"] == "color_temp"
    assert issue.translation_placeholders["product"] == BRIDGE_PRODUCT
    assert issue.translation_placeholders["entity_id"] == LIGHT
    await reported(gateway, {"power_switch": 1, "brightness": 50})
    refused = (await properties(gateway)).refused_reports
    await hass.services.async_call(
        "light",
        "turn_on",
        {"entity_id": LIGHT, "brightness_pct": 70, "color_temp_kelvin": 3000},
        blocking=True,
    )
    await reported(gateway, {"power_switch": 1, "brightness": 70})
    assert (await properties(gateway)).refused_reports == refused
