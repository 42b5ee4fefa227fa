"""Health check and rollback in Home Assistant: a template that stays false after a flash fails the install
with -5 and puts the last good image back on through the same flasher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_HEALTH_TEMPLATE,
    CONF_HEALTH_TIMEOUT_MIN,
    CONF_ROLLBACK,
    DOMAIN,
    EVENT_FLASH_REQUEST,
)
from custom_components.tencent_iot_gateway.ota import health_templates
from tests.emulator_fixtures import eventually
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import (
    LIGHT_PRODUCT,
    install_update,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

GOOD = bytes(range(256)) * 40
BAD = bytes(reversed(range(256))) * 40
ENTITY = "update.light1_firmware"
ONLINE = "binary_sensor.light1_online"


async def _cloud(gateway: Gateway) -> tuple[str | None, str | None, str | None]:
    status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
    task = status.task
    return status.version, task.state if task else None, task.result_msg if task else None


async def test_a_failing_health_check_reports_fail_and_rolls_back(
    hass: HomeAssistant, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """V200 installs healthy (kept); V300 flashes but the device's entity stays off: the install fails with
    -5, the automation flashes V200's image back, the cloud hears the fail and then version V200."""
    monkeypatch.setattr(health_templates, "POLL_INTERVAL_S", 0.05)
    monkeypatch.setattr(health_templates, "DEFAULT_HEALTH_TIMEOUT_S", 0.3)
    hass.states.async_set(ONLINE, "on")
    await register_lights(gateway, "light1")
    light = sub("light1", flasher={"kind": "automation", "timeout_s": 10})
    light["data"] = dict(light["data"]) | {
        CONF_HEALTH_TEMPLATE: "{{ is_state('binary_sensor.light1_online', 'on') }}",
        CONF_ROLLBACK: True,
    }
    await setup_gateway(hass, gateway, [light])
    requests: list[dict[str, Any]] = []

    @callback
    def answer(event: Event) -> None:
        requests.append(dict(event.data) | {"bytes": Path(event.data["image_path"]).read_bytes()})
        if event.data["version"] == "V300":
            hass.states.async_set(ONLINE, "off")  # the new firmware never comes back online
        hass.async_create_task(
            hass.services.async_call(
                DOMAIN, "complete_flash", {"job_id": event.data["job_id"], "success": True}, blocking=True
            )
        )

    hass.bus.async_listen(EVENT_FLASH_REQUEST, answer)
    await push(gateway, GOOD, "light1", version="V200")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    await install_update(hass, ENTITY)
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "V200"

    await push(gateway, BAD, "light1", version="V300")
    await wait_for(hass, lambda: state(hass, ENTITY).attributes.get("latest_version") == "V300")
    with pytest.raises(HomeAssistantError) as caught:
        await install_update(hass, ENTITY)
    assert caught.value.translation_key == "failure_health_rolled_back"
    assert (caught.value.translation_placeholders or {})["actual"] == "V200"
    assert "rolled back to V200" in str(caught.value)
    detail = "the sub-device was not healthy after the flash and was rolled back to V200"

    assert [(r["version"], r["bytes"]) for r in requests] == [("V200", GOOD), ("V300", BAD), ("V200", GOOD)]
    assert state(hass, ENTITY).attributes[ATTR_INSTALLED_VERSION] == "V200"
    assert state(hass, ENTITY).attributes["latest_version"] == "V300"  # still offered

    async def settled() -> bool:
        return await _cloud(gateway) == ("V200", "fail", detail)

    await eventually(settled)


def test_a_rollback_needs_a_health_check() -> None:
    """Rollback alone is refused, naming its field; a timeout in minutes becomes seconds."""
    from custom_components.tencent_iot_gateway.engine.errors import InvalidFieldError

    with pytest.raises(InvalidFieldError) as caught:
        health_templates.HealthConfig.from_data({CONF_ROLLBACK: True})
    assert caught.value.field == CONF_ROLLBACK
    config = health_templates.HealthConfig.from_data(
        {CONF_HEALTH_TEMPLATE: "{{ true }}", CONF_HEALTH_TIMEOUT_MIN: 2}
    )
    assert config.timeout_s == 120
