"""Pre-flight conditions of a sub-device in Home Assistant: a false template holds the install, with its reason
on the update entity and in the OTA event, and releases it once it renders true."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from typing import Any

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION, ATTR_RELEASE_SUMMARY
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_FLASHER_KIND,
    CONF_INSTALLED_VERSION,
    CONF_MAINTENANCE_END,
    CONF_MAINTENANCE_START,
    CONF_PREFLIGHT_CONDITION,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    CONF_PRODUCT_ID,
    CONF_UNBIND_ON_REMOVE,
    DOMAIN,
    EVENT_FLASH_REQUEST,
    EVENT_OTA,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.engine.errors import InvalidFieldError
from custom_components.tencent_iot_gateway.ota import preflight_templates
from custom_components.tencent_iot_gateway.ota.preflight_templates import PreflightConfig, in_window
from custom_components.tencent_iot_gateway.ota.template_watch import template_changes
from custom_components.tencent_iot_gateway.subentry_flow import Section, nest
from tests.emulator_fixtures import eventually
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import (
    LIGHT_PRODUCT,
    VERSION,
    install_update,
    light_key,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(256)) * 40
ENTITY = "update.light1_firmware"
BATTERY = "sensor.light1_battery"
CONDITION = "{{ states('sensor.light1_battery') | int(0) > 30 }}"


async def test_a_false_condition_holds_the_install_and_releases_it_when_true(
    hass: HomeAssistant, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Battery at 10 %: the install waits, queued, saying why (entity and event), nothing flashed; at 80 % it
    goes on through the flasher and ends done in the cloud. The condition is followed, not polled: the job
    goes on as soon as the battery changes (old code: at the next 15 s render)."""
    hass.states.async_set(BATTERY, "10")
    await register_lights(gateway, "light1")
    light = sub("light1", flasher={"kind": "automation", "timeout_s": 10})
    light["data"] = dict(light["data"]) | {CONF_PREFLIGHT_CONDITION: CONDITION, CONF_PREFLIGHT_TIMEOUT_MIN: 5}
    await setup_gateway(hass, gateway, [light])
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")

    events: list[dict[str, Any]] = []
    flash_requests: list[str] = []

    @callback
    def on_ota(event: Event) -> None:
        events.append(dict(event.data))

    @callback
    def answer(event: Event) -> None:
        flash_requests.append(event.data["job_id"])
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN, "complete_flash", {"job_id": event.data["job_id"], "success": True}, blocking=True
            )
        )

    hass.bus.async_listen(EVENT_OTA, on_ota)
    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    install = hass.async_create_task(install_update(hass, ENTITY))
    held = "Waiting: the pre-flight condition of light1 is false"
    # The phase line leads the summary; what is on offer follows it.
    await wait_for(
        hass,
        lambda: (state(hass, ENTITY).attributes.get(ATTR_RELEASE_SUMMARY) or "").startswith(f"{held}\n\n"),
    )
    held_events = [e for e in events if e["reason"]]
    assert held_events[0]["state"] == "queued"
    assert held_events[0]["reason"] == "the pre-flight condition of light1 is false"
    assert not flash_requests
    assert not install.done()

    hass.states.async_set(BATTERY, "80")
    async with asyncio.timeout(preflight_templates.POLL_INTERVAL_S / 3):
        await install
    assert len(flash_requests) == 1
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == VERSION
    assert events[-1]["state"] == "done"
    assert events[-1]["reason"] == ""

    async def done_in_cloud() -> bool:
        status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
        return status.task is not None and status.task.state == "done"

    await eventually(done_in_cloud)


def test_maintenance_window_spans_midnight_and_needs_both_ends() -> None:
    """22:00-04:00 contains 23:30 and 01:00, not 12:00; a window with one end is refused, naming the field."""
    window = (time(22, 0), time(4, 0))
    assert in_window(time(23, 30), window)
    assert in_window(time(1, 0), window)
    assert not in_window(time(12, 0), window)
    assert in_window(time(2, 0), (time(1, 0), time(3, 0)))
    assert not in_window(time(3, 0), (time(1, 0), time(3, 0)))
    with pytest.raises(InvalidFieldError) as caught:
        PreflightConfig.from_data({CONF_MAINTENANCE_START: "22:00:00"})
    assert caught.value.field == CONF_MAINTENANCE_END
    config = PreflightConfig.from_data(
        {CONF_MAINTENANCE_START: "22:00:00", CONF_MAINTENANCE_END: "04:00:00", CONF_PREFLIGHT_TIMEOUT_MIN: 2}
    )
    assert config.window == window
    assert config.timeout_s == 120


async def test_the_sub_device_form_stores_conditions_and_refuses_a_broken_template(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The add form takes a template, a window and a timeout; a template that does not parse names its field."""
    await register_lights(gateway, "light2", bind=False)
    entry = await setup_gateway(hass, gateway, [])
    base = {
        CONF_PRODUCT_ID: LIGHT_PRODUCT,
        CONF_DEVICE_NAME: "light2",
        CONF_INSTALLED_VERSION: "1.0.0",
        CONF_FLASHER_KIND: "none",
        CONF_UNBIND_ON_REMOVE: False,
    }
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": SOURCE_USER}
    )
    ids = {key: base.pop(key) for key in (CONF_PRODUCT_ID, CONF_DEVICE_NAME)}
    await hass.config_entries.subentries.async_configure(result["flow_id"], ids)
    # The template selector refuses what does not parse, naming the field (the form shows it there).
    with pytest.raises(InvalidData) as caught:
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], nest(base | {CONF_PREFLIGHT_CONDITION: "{{ states('sensor.x') > }}"})
        )
    assert caught.value.path == [Section.PREFLIGHT, CONF_PREFLIGHT_CONDITION]
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        nest(
            base
            | {
                CONF_PREFLIGHT_CONDITION: CONDITION,
                CONF_MAINTENANCE_START: "02:00:00",
                CONF_MAINTENANCE_END: "05:00:00",
                CONF_PREFLIGHT_TIMEOUT_MIN: 30.0,
            }
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (data,) = [s.data for s in entry.subentries.values()]
    assert data[CONF_PREFLIGHT_CONDITION] == CONDITION
    assert data[CONF_MAINTENANCE_START] == "02:00:00"
    assert data[CONF_MAINTENANCE_END] == "05:00:00"
    assert data[CONF_PREFLIGHT_TIMEOUT_MIN] == 30


async def test_an_automatic_install_waits_for_the_maintenance_window(
    hass: HomeAssistant, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install nobody started by hand, outside the window: held with the window in its reason."""
    monkeypatch.setattr(preflight_templates, "POLL_INTERVAL_S", 0.05)
    now = dt_util.now()
    start, end = (now + timedelta(hours=2)).time(), (now + timedelta(hours=3)).time()
    await register_lights(gateway, "light1")
    light = sub("light1", flasher={"kind": "automation", "timeout_s": 10})
    light["data"] = dict(light["data"]) | {
        CONF_MAINTENANCE_START: start.strftime("%H:%M:00"),
        CONF_MAINTENANCE_END: end.strftime("%H:%M:00"),
    }
    entry = await setup_gateway(hass, gateway, [light])
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    install = hass.async_create_task(install_update(hass, ENTITY))
    window = f"{start.strftime('%H:%M')} to {end.strftime('%H:%M')}"
    held = f"Waiting: outside the maintenance window of light1 ({window})"
    # The phase line leads the summary; what is on offer follows it.
    await wait_for(
        hass,
        lambda: (state(hass, ENTITY).attributes.get(ATTR_RELEASE_SUMMARY) or "").startswith(f"{held}\n\n"),
    )
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    await hass.services.async_call(DOMAIN, "cancel_update", {"device_id": device.id}, blocking=True)
    with pytest.raises(HomeAssistantError) as caught:
        await install
    assert caught.value.translation_key == "install_cancelled"


async def test_a_followed_template_wakes_its_wait_on_a_change_and_not_before(hass: HomeAssistant) -> None:
    """`template_changes` returns when an entity the template reads changes, not on a timer; with nothing
    changing it waits out its time (here short)."""
    hass.states.async_set(BATTERY, "10")
    changed = template_changes(hass, CONDITION)
    waiting = asyncio.ensure_future(changed(30.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    hass.states.async_set(BATTERY, "80")
    async with asyncio.timeout(2):
        await waiting
    started = hass.loop.time()
    await changed(0.2)  # nothing changes: returns at its timeout
    assert hass.loop.time() - started >= 0.2
