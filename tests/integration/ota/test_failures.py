"""Failures that stay visible and read in the user's language: release summary, repair issue, one log line."""

from __future__ import annotations

from hashlib import md5
import json
import logging
from pathlib import Path
from typing import Any

from homeassistant.auth.models import User
from homeassistant.const import STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.tencent_iot_gateway.const import CONF_INSTALL_POLICY, DOMAIN
from custom_components.tencent_iot_gateway.engine import errors
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.ota import failures
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import (
    LIGHT_PRODUCT,
    VERSION,
    install_update,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(256)) * 400  # 100 KiB
ENTITY = "update.light1_firmware"


async def _md5_fault(gateway: Gateway) -> None:
    """The emulator flips one byte of the image on its way: the download's MD5 cannot match."""
    await gateway.emulator.console.set_faults(
        {"firmware": {f"{LIGHT_PRODUCT}/{VERSION}": {"flip_byte_at": 10}}}
    )


async def _light(hass: HomeAssistant, gateway: Gateway, tmp_path: Path, **options: Any) -> Any:
    await register_lights(gateway, "light1")
    return await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})], **options
    )


def test_every_engine_failure_has_texts_in_every_language() -> None:
    """Each failure reason has its install text and repair-issue text; every error class's own reason too."""
    base = Path(failures.__file__).parent.parent  # the integration folder
    assert set(failures.FAILURE_KEYS) == {reason.value for reason in errors.FailureReason}
    assert errors.PreflightTimeoutError().translation_key in failures.FAILURE_KEYS
    assert errors.TaskEndedError().translation_key == "task_ended"
    assert errors.Md5MismatchError().translation_key == "md5_mismatch"
    for name in ("strings.json", "translations/en.json", "translations/zh-Hans.json"):
        strings = json.loads((base / name).read_text(encoding="utf-8"))
        for key in failures.FAILURE_KEYS:
            assert strings["exceptions"][f"failure_{key}"]["message"], (name, key)
            assert strings["issues"][f"install_failed_{key}"]["description"], (name, key)
        for key in ("firmware_not_found", "url_expired", "download_refused"):
            # The status the server answered, not a fixed number: 401 also means an expired signature.
            assert "HTTP {http_status}" in strings["exceptions"][f"failure_{key}"]["message"], (name, key)
            assert "HTTP {http_status}" in strings["issues"][f"install_failed_{key}"]["description"], (
                name,
                key,
            )
        for phase in ("queued", "held", "downloading", "verifying", "flashing"):
            assert strings["exceptions"][f"phase_{phase}"]["message"], (name, phase)


async def test_md5_failure_is_translated_shown_and_logged_once(
    hass: HomeAssistant,
    gateway: Gateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hass_admin_user: User,
) -> None:
    """An MD5 fault from the emulator: a translated error with the human size, the failure in the release
    summary until the next attempt, one WARNING line; a user's own install raises no repair issue."""
    await _light(hass, gateway, tmp_path)
    await _md5_fault(gateway)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    assert state(hass, ENTITY).attributes["release_summary"] == "100 KiB from 127.0.0.1"

    caplog.clear()
    with pytest.raises(HomeAssistantError) as caught:
        await install_update(hass, ENTITY, context=Context(user_id=hass_admin_user.id))
    error = caught.value
    assert error.translation_key == "failure_md5_mismatch"
    placeholders = error.translation_placeholders or {}
    assert {k: placeholders[k] for k in ("device", "version", "code", "size", "http_status")} == {
        "device": "light1",
        "version": VERSION,
        "code": "-4",
        "size": "100 KiB",
        "http_status": "?",  # not a failure of the server's answer
    }
    assert placeholders["expected"] == md5(FIRMWARE).hexdigest()  # what the cloud announced
    assert str(error).startswith(f"The downloaded image of {VERSION} (100 KiB) for light1 does not match")
    summary = state(hass, ENTITY).attributes["release_summary"]
    assert summary.startswith(f"The downloaded image of {VERSION} (100 KiB) for light1 does not match")
    assert state(hass, ENTITY).attributes["latest_version"] == VERSION  # still offered
    # The dialog shows release notes rather than the summary: they lead with the failure too.
    entity = hass.data["update"].get_entity(ENTITY)
    assert entity is not None
    notes = await entity.async_release_notes()
    assert notes is not None
    assert notes.startswith(f"> The downloaded image of {VERSION}")
    ours = [
        r for r in caplog.records if r.name.startswith("custom_components") and r.levelno >= logging.WARNING
    ]
    assert [r.levelno for r in ours] == [logging.WARNING], [r.getMessage() for r in ours]
    assert ir.async_get(hass).async_get_issue(DOMAIN, failures.issue_id(_entry_id(hass), _light1())) is None

    # The next attempt replaces the failure with its phase, and succeeds.
    await gateway.emulator.console.reset_faults()
    await install_update(hass, ENTITY)
    assert state(hass, ENTITY).attributes["release_summary"] is None  # nothing offered any more


async def test_failed_automatic_install_raises_a_repair_issue_cleared_by_success(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Under `auto` nobody watches: the failure is a repair issue (device, version, code, reason), until the
    sub-device is updated."""
    entry = await _light(hass, gateway, tmp_path, **{CONF_INSTALL_POLICY: "auto"})
    await _md5_fault(gateway)
    await push(gateway, FIRMWARE, "light1")
    registry = ir.async_get(hass)
    issue_id = failures.issue_id(entry.entry_id, _light1())
    await wait_for(hass, lambda: registry.async_get_issue(DOMAIN, issue_id) is not None)
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "install_failed_md5_mismatch"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert {k: issue.translation_placeholders[k] for k in ("device", "version", "code")} == {
        "device": "light1",
        "version": VERSION,
        "code": "-4",
    }
    zh = await async_get_translations(hass, "zh-Hans", "issues", [DOMAIN])
    description = zh[f"component.{DOMAIN}.issues.install_failed_md5_mismatch.description"]
    assert "MD5" in description
    assert description.format(**issue.translation_placeholders).startswith("为 light1 下载的 V200R0001 固件")

    await gateway.emulator.console.reset_faults()
    # The cloud may push again after the failure, and `auto` installs that at once: let it end first.
    await wait_for(hass, lambda: not state(hass, ENTITY).attributes["in_progress"])
    # The job task outlives its `failed` state while it reports the failure: an install in that window joins
    # the failed job (an engine race, reported to the lead); wait for the task itself.
    await wait_for(hass, lambda: entry.runtime_data.engine.ota._states.entry(_light1()).job is None)
    if state(hass, ENTITY).state == STATE_ON:
        await install_update(hass, ENTITY)
    await wait_for(hass, lambda: registry.async_get_issue(DOMAIN, issue_id) is None)


async def test_an_automation_install_failure_raises_a_repair_issue(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """`update.install` without a user (as an automation calls it) under the manual policy."""
    entry = await _light(hass, gateway, tmp_path)
    await _md5_fault(gateway)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await install_update(hass, ENTITY, context=Context())
    issue = ir.async_get(hass).async_get_issue(DOMAIN, failures.issue_id(entry.entry_id, _light1()))
    assert issue is not None


async def test_release_summary_names_the_phase_while_running(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Queued, downloading, verifying, flashing: readable where the dialog shows text."""
    await _light(hass, gateway, tmp_path)
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    summaries: list[str] = []

    def record(event: Any) -> None:
        new = event.data["new_state"]
        if new is not None and new.entity_id == ENTITY and new.attributes.get("in_progress"):
            summaries.append(new.attributes["release_summary"])

    unsubscribe = hass.bus.async_listen("state_changed", record)
    await install_update(hass, ENTITY)
    unsubscribe()
    phases = [summary.split("\n\n")[0] for summary in summaries]  # the phase line leads the summary
    assert "Queued: waiting for a free download or flash slot" in phases
    assert "Flashing the sub-device" in phases


def _light1() -> DeviceId:
    return DeviceId(LIGHT_PRODUCT, "light1")


def _entry_id(hass: HomeAssistant) -> str:
    [entry] = hass.config_entries.async_entries(DOMAIN)
    return entry.entry_id
