"""A staged rollout in Home Assistant: a failing canary halts the rest, a repair issue says so, and the
`resume_rollout` action lets the stopped devices install."""

from __future__ import annotations

from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_CANARY_COUNT,
    CONF_CANARY_PERCENT,
    CONF_INSTALL_POLICY,
    CONF_MAX_FAILURES,
    CONF_ROLLOUT,
    CONF_SOAK_MIN,
    DOMAIN,
    EVENT_FLASH_REQUEST,
)
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway
from .helpers import (
    LIGHT_PRODUCT,
    VERSION,
    light_key,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(256)) * 40
NAMES = ("light1", "light2", "light3")
ROLLOUT = {
    CONF_INSTALL_POLICY: "auto",
    CONF_ROLLOUT: True,
    CONF_CANARY_COUNT: 1,
    CONF_CANARY_PERCENT: 0,
    CONF_SOAK_MIN: 0,
    CONF_MAX_FAILURES: 1,
}


async def halt_a_rollout(hass: HomeAssistant, gateway: Gateway) -> tuple[ConfigEntry, list[str], str]:
    """Three lights in a rollout whose canary's flash fails; once halted: the entry, the flash requests so
    far (the canary's) and the repair issue's id. Every later flash works."""
    await register_lights(gateway, *NAMES)
    entry = await setup_gateway(
        hass,
        gateway,
        [sub(name, flasher={"kind": "automation", "timeout_s": 10}) for name in NAMES],
        **ROLLOUT,
    )
    requests: list[str] = []

    @callback
    def answer(event: Event) -> None:
        requests.append(event.data["device_name"])
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN,
                "complete_flash",
                {"job_id": event.data["job_id"], "success": len(requests) > 1, "message": "bricked on boot"},
                blocking=True,
            )
        )

    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    await push(gateway, FIRMWARE, *NAMES)
    issue_id = f"rollout_halted_{entry.entry_id}_{VERSION}"
    await wait_for(hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)
    return entry, requests, issue_id


async def test_a_failing_canary_halts_the_rollout_raises_a_repair_and_resume_continues(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The canary's flash fails: the two others are stopped (-5 "rollout halted after 1 of 3 failed: ..." in
    the cloud), the update stays offered, a repair issue names the failing device; resume installs the two."""
    entry, requests, issue_id = await halt_a_rollout(hass, gateway)

    async def cloud_states() -> dict[str, tuple[str, str | None]] | None:
        found: dict[str, tuple[str, str | None]] = {}
        for name in NAMES:
            task = (await gateway.emulator.console.get_device(LIGHT_PRODUCT, name)).task
            if task is None or task.state not in {"done", "fail"}:
                return None
            found[name] = (task.state, task.result_msg)
        return found

    ended = await eventually(cloud_states, within=15.0)
    (canary,) = requests
    assert ended[canary] == ("fail", "the flashing automation reported a failure: bricked on boot")
    others = [name for name in NAMES if name != canary]
    for name in others:
        assert ended[name] == ("fail", "the rollout halted after 1 of 3 devices failed")
        entity = state(hass, f"update.{name}_firmware")
        assert entity.state == "on"  # still offered
        assert entity.attributes[ATTR_INSTALLED_VERSION] == "0.1"

    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "rollout_halted"
    placeholders = issue.translation_placeholders or {}
    assert placeholders["failed"] == "1"
    assert placeholders["total"] == "3"
    assert placeholders["halted"] == "2"
    # Each failure as the install call words it, in the server's language (not the cloud's English).
    assert placeholders["failures"] == (
        f"- The automation that flashes {canary} reported a failure for {VERSION} (Tencent code -5): "
        "“bricked on boot”. Check that automation and its device."
    )

    registry = dr.async_get(hass)
    gateway_device = registry.async_get_device_by_identifier((DOMAIN, gateway.key), entry.entry_id)
    light_device = registry.async_get_device_by_identifier((DOMAIN, light_key(canary)), entry.entry_id)
    assert gateway_device is not None
    assert light_device is not None
    with pytest.raises(ServiceValidationError):  # a sub-device is not where rollouts are resumed
        await hass.services.async_call(
            DOMAIN, "resume_rollout", {"device_id": light_device.id}, blocking=True
        )
    await hass.services.async_call(DOMAIN, "resume_rollout", {"device_id": gateway_device.id}, blocking=True)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await _installed(hass, others)
    assert sorted(requests[1:]) == sorted(others)
    assert state(hass, f"update.{canary}_firmware").attributes[ATTR_INSTALLED_VERSION] == "0.1"

    async def reported() -> bool:
        versions = [(await gateway.emulator.console.get_device(LIGHT_PRODUCT, n)).version for n in others]
        return versions == [VERSION, VERSION]

    await eventually(reported)
    with pytest.raises(ServiceValidationError):  # nothing left to resume
        await hass.services.async_call(
            DOMAIN, "resume_rollout", {"device_id": gateway_device.id}, blocking=True
        )


async def _installed(hass: HomeAssistant, names: list[str]) -> None:
    await wait_for(
        hass,
        lambda: all(
            state(hass, f"update.{name}_firmware").attributes[ATTR_INSTALLED_VERSION] == VERSION
            for name in names
        ),
    )


async def test_the_repair_fix_flow_resumes_the_halted_rollout(hass: HomeAssistant, gateway: Gateway) -> None:
    """Confirming the halted rollout's repair does what `resume_rollout` does: the stopped devices install."""
    assert await async_setup_component(hass, "repairs", {})
    _entry, requests, issue_id = await halt_a_rollout(hass, gateway)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, context={"issue_id": issue_id})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert "“bricked on boot”" in (result.get("description_placeholders") or {})["failures"]
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await _installed(hass, [name for name in NAMES if name != requests[0]])


async def test_a_halted_rollout_outlives_a_reload(hass: HomeAssistant, gateway: Gateway) -> None:
    """The entry reloads while its rollout is halted (an option changed, say): the repair issue is raised
    again by the reloaded entry, and confirming it installs the stopped devices (old code: the reload forgot
    the halt, and its repair issue stayed with nothing behind it)."""
    assert await async_setup_component(hass, "repairs", {})
    entry, requests, issue_id = await halt_a_rollout(hass, gateway)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.rollouts_halted
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert (issue.translation_placeholders or {})["halted"] == "2"

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, context={"issue_id": issue_id})
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await _installed(hass, [name for name in NAMES if name != requests[0]])
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_turning_rollouts_off_ends_a_halt_and_its_repair(hass: HomeAssistant, gateway: Gateway) -> None:
    """Rollouts turned off in the options while one is halted: after the reload no repair issue is left,
    and every device keeps its offer (the failed canary too), to install like any other."""
    entry, _requests, issue_id = await halt_a_rollout(hass, gateway)
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ROLLOUT: False})
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.engine.connected)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert not entry.runtime_data.rollouts_halted
    assert [state(hass, f"update.{name}_firmware").state for name in NAMES] == ["on"] * 3
