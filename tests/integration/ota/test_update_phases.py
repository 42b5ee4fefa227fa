"""The update dialog says what a running job is doing: its phase, or why it waits, in the server's language.

HA's dialog shows the release notes (fetched once, when it opens) or, for an entity without them, the release
summary (live). While a job runs the entity offers no release notes, so the summary, which leads with the
phase, is what the dialog shows.
"""

# ruff: noqa: RUF001  (Chinese texts use full-width punctuation)

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from homeassistant.components.update import UpdateEntityFeature
from homeassistant.components.update.const import ATTR_RELEASE_SUMMARY
from homeassistant.const import ATTR_ENTITY_ID, ATTR_SUPPORTED_FEATURES
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_PREFLIGHT_CONDITION,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    DOMAIN,
)
from custom_components.tencent_iot_gateway.engine import (
    DeviceId,
    FirmwareSpec,
    JobHold,
    JobPhase,
    JobSnapshot,
    JobState,
)
from custom_components.tencent_iot_gateway.ota import phase_texts
from tests.integration.gateway_rig import Gateway
from tests.integration.helpers import (
    LIGHT_PRODUCT,
    VERSION,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(256)) * 400  # 100 KiB
ENTITY = "update.light1_firmware"
SWITCH = "input_boolean.light1_ready"
OFFER_EN = "100 KiB from 127.0.0.1"
OFFER_ZH = "100 KiB，来自 127.0.0.1"


async def _set_language(hass: HomeAssistant, language: str) -> None:
    """As the user's Settings > General does: HA reloads its translation cache for the new language."""
    await hass.config.async_update(language=language)
    await async_get_translations(hass, language, "exceptions", [DOMAIN])
    await hass.async_block_till_done()


def _release_notes_offered(hass: HomeAssistant) -> bool:
    features = UpdateEntityFeature(state(hass, ENTITY).attributes[ATTR_SUPPORTED_FEATURES])
    return UpdateEntityFeature.RELEASE_NOTES in features


@pytest.mark.parametrize(
    ("language", "held", "offer"),
    [
        ("en", "Waiting: the pre-flight condition of light1 is false", OFFER_EN),
        ("zh-Hans", "等待中：light1 的预检条件未满足", OFFER_ZH),
    ],
)
async def test_a_held_install_shows_its_reason_where_the_dialog_shows_it(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path, language: str, held: str, offer: str
) -> None:
    """Pre-flight false: the summary leads with the reason, keeps what is on offer, and the release notes
    step aside while the job runs (old code: the notes hid the summary, and it had the reason alone)."""
    await _set_language(hass, language)
    hass.states.async_set(SWITCH, "off")
    await register_lights(gateway, "light1")
    light = sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})
    light["data"] = dict(light["data"]) | {
        CONF_PREFLIGHT_CONDITION: "{{ is_state('input_boolean.light1_ready', 'on') }}",
        CONF_PREFLIGHT_TIMEOUT_MIN: 5,
    }
    await setup_gateway(hass, gateway, [light])
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    assert _release_notes_offered(hass)

    install = hass.async_create_task(
        hass.services.async_call("update", "install", {ATTR_ENTITY_ID: ENTITY}, blocking=True)
    )
    await wait_for(hass, lambda: state(hass, ENTITY).attributes[ATTR_RELEASE_SUMMARY] == f"{held}\n\n{offer}")
    assert state(hass, ENTITY).attributes["in_progress"]
    assert not _release_notes_offered(hass)

    hass.states.async_set(SWITCH, "on")
    async with asyncio.timeout(30):
        await install
    assert state(hass, ENTITY).attributes["installed_version"] == VERSION
    assert _release_notes_offered(hass)  # back once the job has ended


async def test_a_running_install_shows_each_phase_with_the_download_percent(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """A real install against the emulator: the summary goes queued, downloading (with its percent),
    flashing, each line above what is on offer."""
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})])
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == "on")
    summaries: list[str] = []

    @callback
    def record(event: Event[Any]) -> None:
        new = event.data["new_state"]
        if new is not None and new.entity_id == ENTITY and new.attributes.get("in_progress"):
            summaries.append(new.attributes[ATTR_RELEASE_SUMMARY])

    unsubscribe = hass.bus.async_listen("state_changed", record)
    await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: ENTITY}, blocking=True)
    unsubscribe()
    lines = [summary.split("\n\n") for summary in summaries]
    assert all(offer == OFFER_EN for _, offer in lines), summaries
    phases = [line for line, _ in lines]
    assert phases[0] == "Queued: waiting for a free download or flash slot", phases
    downloading = [p for p in phases if p.startswith("Downloading the image: ")]
    assert downloading, phases
    assert all(p.removeprefix("Downloading the image: ").removesuffix(" %").isdigit() for p in downloading)
    assert phases[-1] == "Flashing the sub-device", phases


LIGHT = DeviceId(LIGHT_PRODUCT, "light3")
TARGET = FirmwareSpec("https://127.0.0.1/fw.bin?sign=secret", "0" * 32, 3 * 1024 * 1024, "V2")


def _running(**changes: Any) -> JobSnapshot:
    return JobSnapshot(LIGHT, changes.pop("state", JobState.QUEUED), "V1", TARGET, **changes)


PHASES: list[tuple[JobSnapshot, str, str]] = [
    (
        _running(phase=JobPhase.QUEUED),
        "Queued: waiting for a free download or flash slot",
        "排队中：等待空闲的下载或刷写名额",
    ),
    (
        _running(state=JobState.DOWNLOADING, phase=JobPhase.DOWNLOADING, downloaded=1024, total=4096),
        "Downloading the image: 25 %",
        "正在下载固件：25%",
    ),
    (
        _running(state=JobState.VERIFYING, phase=JobPhase.VERIFYING),
        "Checking the image's MD5 checksum",
        "正在校验固件的 MD5",
    ),
    (
        _running(state=JobState.VERIFYING, phase=JobPhase.FLASH_SLOT),
        "Downloaded: waiting for a free flash slot",
        "已下载：等待空闲的刷写名额",
    ),
    (
        _running(hold=JobHold.canary(1, 3)),
        "Waiting: the canary group installs first (1 of 3 done)",
        "等待中：金丝雀组先安装（已完成 1/3）",
    ),
    (
        _running(hold=JobHold.canary_soak(61)),
        "Waiting: the canary group must stay healthy for its soak time (at most 2 min more)",
        "等待中：金丝雀组须在观察时间内保持正常（最多还需 2 分钟）",
    ),
    (
        _running(hold=JobHold.rollout_batch()),
        "Waiting: the batch before this one is still installing",
        "等待中：上一批设备仍在安装",
    ),
    (
        # The maintenance window and the condition are the pre-flight gate's own words (preflight_templates).
        _running(hold=JobHold.preflight("outside the maintenance window of light3 (02:00 to 04:00)")),
        "Waiting: outside the maintenance window of light3 (02:00 to 04:00)",
        "等待中：outside the maintenance window of light3 (02:00 to 04:00)",
    ),
    (
        _running(state=JobState.FLASHING, phase=JobPhase.FLASHING),
        "Flashing the sub-device",
        "正在刷写子设备",
    ),
    (
        _running(state=JobState.FLASHING, phase=JobPhase.HEALTH_CHECK),
        "Flashed: waiting for Light 3 to prove healthy",
        "已刷写：等待 Light 3 通过健康检查",
    ),
    (
        _running(state=JobState.FLASHING, phase=JobPhase.ROLLING_BACK),
        "Light 3 is unhealthy after the flash: flashing its last good image back",
        "Light 3 刷写后未通过健康检查：正在刷回上一个正常的固件",
    ),
    (
        _running(state=JobState.FLASHING, phase=JobPhase.ROLLED_BACK),
        "Light 3 is unhealthy after the flash: rolled back to V1",
        "Light 3 刷写后未通过健康检查：已回滚到 V1",
    ),
]


async def test_every_phase_reads_in_english_and_chinese(hass: HomeAssistant) -> None:
    """Each phase and each gate's wait has its own line in both languages, above the offer."""
    assert {s.phase for s, _, _ in PHASES if s.phase} == set(JobPhase)
    for language, index, offer in (
        ("en", 1, "3.0 MiB from 127.0.0.1"),
        ("zh-Hans", 2, "3.0 MiB，来自 127.0.0.1"),
    ):
        await _set_language(hass, language)
        for case in PHASES:
            snapshot, expected = case[0], case[index]
            assert phase_texts.release_summary(hass, "Light 3", snapshot) == f"{expected}\n\n{offer}", (
                language,
                snapshot,
            )


async def test_a_long_reason_is_cut_and_the_offer_kept(hass: HomeAssistant) -> None:
    """HA keeps 255 characters of a summary: the reason's end goes, the phase and the offer stay."""
    summary = phase_texts.release_summary(hass, "Light 3", _running(hold=JobHold.preflight("x" * 400)))
    assert summary is not None
    assert len(summary) <= 255
    assert summary.startswith("Waiting: xxx")
    assert summary.endswith("…\n\n3.0 MiB from 127.0.0.1")
