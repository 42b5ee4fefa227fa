"""Spec §3a: every job's cadence markers reach the cloud, in order, whatever the uplink budget leaves.

The cloud sees `downloading "0"` (a download from byte 0 only), `downloading "100"`, `burning`, then the
outcome and the new version, for every device of a push; a download resumed after a restart starts at its
current percent. The emulator's task log checks the order too (`tencent_iot_emulator.tasks`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import hashlib
from pathlib import Path
from typing import Any

import aiohttp

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.download import STATE_KEY
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import image_file_stem
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import (
    GATEWAY,
    LIGHTS,
    Cloud,
    running_gateway,
    seed_cloud,
    stop_a_third_into_a_download,
)

N = 24
FLEET = [DeviceId("FLEETPID01", f"lamp{i:02d}") for i in range(N)]
IMAGE = bytes(range(256)) * 256  # 64 KiB
# Tight enough that the markers of 24 jobs (about 120 messages) wait for the budget for seconds.
RATE = 10.0


class InstantFlasher:
    """Flashes in no time: every job's `burning` and outcome follow its "100" at once."""

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        return firmware.version


def _cadence(messages: list[dict[str, Any]]) -> list[str]:
    """What the device told the cloud after the push, as the cloud's task log writes it, with the percents
    between the markers left out and repeats (keep-alives) folded."""
    told: list[str] = []
    for message in messages:
        if message.get("type") == "report_version":
            entry = f"report_version {message['report']['version']}"
        elif message.get("type") == "report_progress":
            progress = message["report"]["progress"]
            entry = progress["state"]
            if entry == "downloading":
                if progress["percent"] not in {"0", "100"}:
                    continue
                entry = f"downloading {progress['percent']}"
        else:
            continue
        if not told or told[-1] != entry:
            told.append(entry)
    return told


async def _after_push(cloud: Cloud, device: DeviceId) -> list[dict[str, Any]]:
    messages = [m for m in await cloud.console.messages(device.key) if isinstance(m.payload, dict)]
    first_push = next(
        i
        for i, m in enumerate(messages)
        if m.direction == "out" and m.payload.get("type") == "update_firmware"
    )
    return [m.payload for m in messages[first_push:] if m.direction == "in"]


async def test_every_device_of_a_push_reports_every_marker_in_order_under_the_budget(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """24 devices installed by one call with an instant flasher and the budget on: each reports "0", "100",
    `burning`, `done`, then its new version (old code: most reported "0" then `done`, some only `done`: the
    outcome replaced the markers waiting for the budget)."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.add_devices([(d.product_id, d.device_name) for d in FLEET])
    await cloud.console.bind_many(GATEWAY.key, [d.key for d in FLEET])
    flasher = InstantFlasher()
    # Slow enough (2 s) that every job joins the download while it runs from byte 0: a job that started after
    # it ended would find the image cached, and rightly say "100" without "0" (spec §3: "0" only for a
    # download from byte 0).
    await cloud.console.set_faults({"throttle_bps": len(IMAGE) // 2})
    async with running_gateway(
        cloud,
        tmp_path,
        sub_devices=[SubDevice(d, "0.1") for d in FLEET],
        flasher_for=lambda _device: flasher,
        uplink_rate=RATE,
        auto_install=False,
    ) as gateway:
        ota = gateway.engine.ota
        await cloud.console.upload_firmware(FLEET[0].product_id, "V2", IMAGE)
        task_id = await cloud.console.create_task(FLEET[0].product_id, "V2", "all", from_versions=["0.1"])

        async def all_offered() -> bool:
            return all(ota.snapshot(d).state is JobState.AVAILABLE for d in FLEET)

        await eventually(all_offered, within=30)
        installs = asyncio.gather(*(ota.install(d) for d in FLEET))  # one call for all, as "Update all"

        async def all_reported() -> bool:
            task = await cloud.console.get_task(task_id)
            return len(task.devices) == N and all(d.state == "done" for d in task.devices.values())

        await eventually(all_reported, within=60)
        assert {snapshot.installed_version for snapshot in await installs} == {"V2"}

        async def versions_reported() -> bool:
            for device in FLEET:
                if gateway.engine.ota.snapshot(device).state is not JobState.DONE:
                    return False
                if _cadence(await _after_push(cloud, device))[-1:] != ["report_version V2"]:
                    return False
            return True

        await eventually(versions_reported, within=20)
        expected = ["downloading 0", "downloading 100", "burning", "done", "report_version V2"]
        cadences = {d.device_name: _cadence(await _after_push(cloud, d)) for d in FLEET}
        assert cadences == {d.device_name: expected for d in FLEET}
        task = await cloud.console.get_task(task_id)
        assert {key: entry.history[-2:] for key, entry in task.devices.items()} == {
            d.key: ("burning", "done") for d in FLEET
        }
    assert [v for v in await cloud.console.violations() if v.raw.get("kind") == "protocol"] == []


async def test_a_download_resumed_after_a_restart_reports_its_percent_not_zero(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Stopped a third of the way, then started again on the same state: the resumed job's first report says
    where the download stands (old code: the admission's keep-alive said "0" again, and the cloud's progress
    jumped back to zero)."""
    cloud = await seed_cloud(emulator, http)
    big = bytes(range(256)) * 4096  # 1 MiB
    state = tmp_path / "state"
    light = LIGHTS[0]
    await stop_a_third_into_a_download(cloud, state, big, light)
    before = len(await cloud.console.messages(light.key))
    saved = await JsonFileStore(state / "downloads.json").async_load() or {}
    stem = image_file_stem((hashlib.md5(big).hexdigest(), len(big)))
    kept = int(saved[STATE_KEY][stem]["downloaded"])
    assert kept > 0
    await cloud.console.set_faults({"throttle_bps": 131072})
    async with running_gateway(cloud, state, sub_devices=[SubDevice(light, "0.1")]) as gateway:

        async def done() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.DONE

        await eventually(done, within=30)
    after = [
        m.payload["report"]["progress"]
        for m in (await cloud.console.messages(light.key))[before:]
        if m.direction == "in" and isinstance(m.payload, dict) and m.payload.get("type") == "report_progress"
    ]
    percents = [int(p["percent"]) for p in after if p["state"] == "downloading"]
    # Where it stood when it was first told: the kept part, or a little more if bytes arrived first.
    assert kept * 100 // len(big) <= percents[0] < 100
    assert percents == sorted(percents)  # never back to zero
    assert [v for v in await cloud.console.violations() if v.raw.get("kind") == "protocol"] == []
