"""The update entity's edges: release notes with nothing pending, and installs HA refuses before we see them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from homeassistant.components.update.const import ATTR_LATEST_VERSION
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobSnapshot, JobState
from custom_components.tencent_iot_gateway.update import progress_percentage

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT, VERSION, push, register_lights, setup_gateway, state, sub, wait_for

# pytest-homeassistant's `hass_ws_client` (its own type is not exported typed): hass in, a WS client out.
type WebSocketGenerator = Callable[[HomeAssistant], Awaitable[Any]]

ENTITY = "update.light1_firmware"
FIRMWARE = bytes(range(256)) * 16  # 4 KiB


async def _light(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> Path:
    """light1 with a file flasher; returns the flasher's (empty) directory."""
    flashed = tmp_path / "flashed"
    flashed.mkdir()
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(flashed)})])
    return flashed


async def _release_notes(hass_ws_client: WebSocketGenerator, hass: HomeAssistant) -> object:
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "update/release_notes", "entity_id": ENTITY})
    reply = await client.receive_json()
    assert reply["success"], reply
    return reply["result"]


async def test_release_notes_with_nothing_pending(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path, hass_ws_client: WebSocketGenerator
) -> None:
    """The frontend asks for notes of an up-to-date sub-device: none, not an error; after a push, the notes."""
    await _light(hass, gateway, tmp_path)
    assert state(hass, ENTITY).state == STATE_OFF
    assert await _release_notes(hass_ws_client, hass) is None
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    notes = await _release_notes(hass_ws_client, hass)
    assert isinstance(notes, str)
    assert VERSION in notes


@pytest.mark.parametrize(
    ("pushed", "data", "key"),
    [
        (False, {}, "no_update_available"),
        (True, {"version": "V999"}, "specific_version_not_supported"),
    ],
    ids=["nothing-pending", "another-version"],
)
async def test_installs_refused_by_home_assistant(
    hass: HomeAssistant,
    gateway: Gateway,
    tmp_path: Path,
    pushed: bool,
    data: dict[str, str],
    key: str,
) -> None:
    """`update.install` with nothing pending or naming a version: refused, nothing is downloaded or flashed.

    The entity relies on this: it offers no SPECIFIC_VERSION, so it always installs what is pending.
    """
    flashed = await _light(hass, gateway, tmp_path)
    if pushed:
        await push(gateway, FIRMWARE, "light1")
        await wait_for(hass, lambda: state(hass, ENTITY).attributes[ATTR_LATEST_VERSION] == VERSION)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: ENTITY} | data, blocking=True)
    assert caught.value.translation_key == key
    stats = await gateway.emulator.console.stats()
    assert all(counters.requests == 0 for counters in stats.firmware.values()), stats
    assert list(flashed.iterdir()) == []
    assert (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version == "0.1"


def test_the_bar_follows_the_bytes_of_a_slow_download() -> None:
    """At 2 KiB/s on 4 MiB a whole percent of the bar takes 40 s: the bar moves with each progress report."""
    device = DeviceId("LIGHTPID01", "light1")
    total = 4 * 1024 * 1024
    values = [
        progress_percentage(
            JobSnapshot(device, JobState.DOWNLOADING, "0.1", downloaded=downloaded, total=total, percent=0)
        )
        or 0.0
        for downloaded in (0, 2048 * 5, 2048 * 10)  # the reports of 0, 5 and 10 s
    ]
    assert values[0] == 0
    assert values[0] < values[1] < values[2] < 1
    assert progress_percentage(JobSnapshot(device, JobState.QUEUED, "0.1")) is None
    flashing = JobSnapshot(device, JobState.FLASHING, "0.1", downloaded=total, total=total, percent=75)
    assert progress_percentage(flashing) == 75
