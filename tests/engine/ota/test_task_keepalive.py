"""Issue 9 §1: the cloud's task never times out while the gateway works on it (spec §3a), against the emulator.

The emulator's task timeout is shrunk to about a second and the gateway's keep-alive interval to a fraction of
it; long flashes, trickling downloads, queues and retries each last longer than the task's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
import itertools
from pathlib import Path
import sys
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import OtaError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers.command import (
    CommandFlasher,
    CommandFlasherConfig,
)
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaSettings
from tencent_iot_emulator.console_client import MessageRecord
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, Cloud, Gateway, running_gateway, seed_cloud

PID = LIGHTS[0].product_id
TASK_TIMEOUT_S = 1.2
# Keep-alive well inside the task's timeout; 30 msg/s x 1/2 x 0.3 s keeps 4 jobs alive at once.
FAST = OtaSettings(report_interval_s=0.1, keepalive_interval_s=0.3)
SMALL_IMAGE = bytes(range(256)) * 16  # 4 KiB


def _reports(messages: list[MessageRecord]) -> Iterator[tuple[float, dict[str, Any]]]:
    for message in messages:
        payload = message.payload
        if (
            message.direction == "in"
            and isinstance(payload, dict)
            and payload.get("type") == "report_progress"
        ):
            yield message.time, payload["report"]["progress"]


async def _task_state(cloud: Cloud, task_id: str, key: str) -> str:
    return (await cloud.console.get_task(task_id)).devices[key].state


async def _ended(cloud: Cloud, task_id: str, key: str, within: float = 15.0) -> str:
    """The device's terminal state in the task, once it has one."""

    async def terminal() -> str | None:
        state = await _task_state(cloud, task_id, key)
        return state if state in {"done", "fail", "timeout"} else None

    return await eventually(terminal, within=within)


async def _done(gateway: Gateway, count: int = 1, within: float = 15.0) -> None:
    async def finished() -> bool:
        ended = [d for d in LIGHTS[:count] if gateway.engine.ota.snapshot(d).state is JobState.DONE]
        return len(ended) == count

    await eventually(finished, within=within)


@pytest.mark.parametrize("flasher", ["virtual device", "command"])
async def test_a_flash_longer_than_the_task_timeout_ends_done(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, flasher: str
) -> None:
    """`burning` is repeated during a flash, so the task survives it, even when one `burning` is lost."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    await cloud.console.set_virtual_device_fault(
        light.product_id, light.device_name, "none", reboot_delay_s=2.2
    )
    await cloud.console.set_drops([{"client": light.key, "type": "report_progress", "state": "burning"}])
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    # A Zigbee/serial tool as a command flasher: it takes 2.2 s, much longer than the task's timeout.
    slow_tool = CommandFlasher(
        CommandFlasherConfig(program=sys.executable, args=("-c", "import time; time.sleep(2.2)"))
    )
    async with running_gateway(
        cloud,
        tmp_path,
        settings=FAST,
        sub_devices=[SubDevice(light, "0.1")],
        flasher_for=(lambda _device: slow_tool) if flasher == "command" else None,
    ):
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[light.device_name], timeout_s=TASK_TIMEOUT_S
        )
        assert await _ended(cloud, task_id, light.key) == "done"
    messages = await cloud.console.messages(light.key)
    assert [m for m in messages if m.direction == "dropped"], "the first burning was lost on the way"
    burning = [when for when, progress in _reports(messages) if progress["state"] == "burning"]
    assert len(burning) >= 3
    assert max(later - earlier for earlier, later in itertools.pairwise(burning)) < TASK_TIMEOUT_S
    assert not await cloud.console.violations()


async def test_a_trickling_download_moves_the_bar_and_keeps_the_task_alive(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """At a few KiB/s the percent reaches HA and the cloud while bytes arrive, not per 256 KiB committed."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    image = bytes(range(256)) * 36  # 9 KiB at 4 KiB/s: over 2 s, well over the task's timeout
    await cloud.console.upload_firmware(PID, "V2", image)
    await cloud.console.set_faults({"throttle_bps": 4096})
    # The downloader tells the job every 50 ms; the reports to the cloud must still keep their own cadence.
    settings = replace(FAST, report_interval_s=0.4, keepalive_interval_s=0.8)
    async with running_gateway(
        cloud,
        tmp_path,
        settings=settings,
        sub_devices=[SubDevice(light, "0.1")],
        downloader_options={"progress_interval_s": 0.05},
    ) as gateway:
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[light.device_name], timeout_s=TASK_TIMEOUT_S
        )
        assert await _ended(cloud, task_id, light.key) == "done"
        bar = {s.percent for s in gateway.snapshots(light) if s.state is JobState.DOWNLOADING}
    assert len(bar) >= 4, f"HA's bar took only the steps {sorted(p for p in bar if p is not None)}"
    reports = [(when, p) for when, p in _reports(await cloud.console.messages(light.key))]
    percents = [int(p["percent"]) for _, p in reports if p["state"] == "downloading"]
    assert percents[0] == 0
    assert percents[-1] == 100
    assert len(set(percents)) >= 4
    # The cadence holds: percent reports about once per report interval, not at the downloader's 50 ms. Counted
    # over the download's span rather than timed gap by gap: a report delayed on the way (a loaded machine)
    # shortens the gap to the next one, which made a gap check fail now and then; the count cannot.
    times = [when for when, p in reports if p["state"] == "downloading"]
    span = times[-1] - times[0]
    between = [p for _, p in reports if p["state"] == "downloading" and p["percent"] not in {"0", "100"}]
    assert len(between) <= span / settings.report_interval_s + 2  # at 50 ms it would be about 45
    assert not await cloud.console.violations()


async def test_jobs_queued_for_the_flash_slot_keep_their_tasks_alive(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With one flash slot and three sub-devices, the waiting jobs report until their turn comes."""
    cloud = await seed_cloud(emulator, http)
    for light in LIGHTS:
        await cloud.console.set_virtual_device_fault(
            light.product_id, light.device_name, "none", reboot_delay_s=0.8
        )
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    settings = replace(FAST, max_flashes=1)
    async with running_gateway(
        cloud, tmp_path, settings=settings, sub_devices=[SubDevice(d, "0.1") for d in LIGHTS]
    ) as gateway:
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[d.device_name for d in LIGHTS], timeout_s=TASK_TIMEOUT_S
        )
        await _done(gateway, count=len(LIGHTS))
        assert [await _ended(cloud, task_id, d.key) for d in LIGHTS] == ["done"] * len(LIGHTS)
    last = LIGHTS[-1]
    assert JobState.QUEUED in gateway.states(last) or JobState.VERIFYING in gateway.states(last)
    assert not await cloud.console.violations()


async def test_jobs_queued_for_the_download_slot_keep_their_tasks_alive(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With one download slot and three different images of about 0.8 s each, the jobs waiting for the slot
    say `downloading` "0" until their download starts, and their tasks end done."""
    cloud = await seed_cloud(emulator, http)
    versions = ["V2", "V3", "V4"]
    for index, version in enumerate(versions):
        await cloud.console.upload_firmware(PID, version, bytes([index]) * 6144)
    await cloud.console.set_faults({"throttle_bps": 8192})
    settings = replace(FAST, max_downloads=1)
    async with running_gateway(
        cloud, tmp_path, settings=settings, sub_devices=[SubDevice(d, "0.1") for d in LIGHTS]
    ) as gateway:
        tasks = [
            await cloud.console.create_task(
                PID, version, "list", devices=[light.device_name], timeout_s=TASK_TIMEOUT_S
            )
            for light, version in zip(LIGHTS, versions, strict=True)
        ]
        await _done(gateway, count=len(LIGHTS), within=20)
        ended = [await _ended(cloud, task, light.key) for light, task in zip(LIGHTS, tasks, strict=True)]
    assert ended == ["done"] * len(LIGHTS)
    last = LIGHTS[-1]
    before_download = gateway.states(last)[: gateway.states(last).index(JobState.DOWNLOADING)]
    assert JobState.QUEUED in before_download
    waiting = [p for _, p in _reports(await cloud.console.messages(last.key))][:3]
    assert [p["percent"] for p in waiting] == ["0", "0", "0"]  # kept alive while waiting for the slot
    assert not await cloud.console.violations()


async def test_download_retries_keep_the_task_alive_until_the_real_outcome(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The downloader retrying a failing server for longer than the task's timeout: the cloud hears -1, not
    silence followed by its own timeout."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    await cloud.console.set_faults({"status": 503})
    async with running_gateway(
        cloud,
        tmp_path,
        settings=FAST,
        auto_install=False,
        sub_devices=[SubDevice(light, "0.1")],
        # Five attempts with backoffs of at least 0.25 + 3 x 0.5 s: longer than the task's timeout.
        downloader_options={"backoff_s": 0.5, "backoff_max_s": 1.0, "max_attempts": 5},
    ) as gateway:
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[light.device_name], timeout_s=TASK_TIMEOUT_S
        )

        async def available() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.AVAILABLE

        await eventually(available)
        with pytest.raises(OtaError) as failure:
            await gateway.engine.ota.install(light)
        assert failure.value.code == -1
        assert await _ended(cloud, task_id, light.key) == "fail"
        assert (await cloud.console.get_task(task_id)).devices[light.key].result_code == -1


class GatedFlasher:
    """Flashes a device once its gate is open: the test, not the machine's speed, says when a flash ends."""

    def __init__(self) -> None:
        self.gates: dict[DeviceId, asyncio.Event] = {}

    def gate(self, device: DeviceId) -> asyncio.Event:
        return self.gates.setdefault(device, asyncio.Event())

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        await self.gate(target).wait()
        return firmware.version


async def test_the_keepalive_budget_holds_back_jobs_it_cannot_keep_alive(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """When the keep-alive share of the uplink budget has room for one job only, the second one waits, queued
    and silent, until the first has ended; then it runs."""
    cloud = await seed_cloud(emulator, http)
    first, second = LIGHTS[0], LIGHTS[1]
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    # The first flash lasts until the test ends it (before: a 1 s reboot delay, which a loaded machine could
    # outlast while the second push was still on its way, so the second job was never seen queued).
    flasher = GatedFlasher()
    flasher.gate(second).set()
    # 2 msg/s x 1/2 x 1 s: one job at a time. The engine gives its session's budget to the keep-alives.
    settings = replace(FAST, keepalive_interval_s=1.0)
    async with running_gateway(
        cloud,
        tmp_path,
        settings=settings,
        uplink_rate=2.0,
        sub_devices=[SubDevice(first, "0.1"), SubDevice(second, "0.1")],
        flasher_for=lambda _device: flasher,
    ) as gateway:
        ota = gateway.engine.ota
        await cloud.console.create_task(PID, "V2", "list", devices=[first.device_name])

        async def flashing() -> bool:
            return ota.snapshot(first).state is JobState.FLASHING

        await eventually(flashing)
        await cloud.console.create_task(PID, "V2", "list", devices=[second.device_name])

        async def queued() -> bool:
            return ota.snapshot(second).state is JobState.QUEUED and ota.snapshot(second).target is not None

        await eventually(queued)
        await asyncio.sleep(settings.keepalive_interval_s)  # a job let in would have reported by now
        assert ota.snapshot(first).state is JobState.FLASHING
        assert ota.snapshot(second).state is JobState.QUEUED
        assert list(_reports(await cloud.console.messages(second.key))) == []
        flasher.gate(first).set()
        await _done(gateway, count=2)

        async def second_reported_done() -> list[tuple[float, dict[str, Any]]] | None:
            reports = list(_reports(await cloud.console.messages(second.key)))
            return reports if reports and reports[-1][1]["state"] == "done" else None

        # At 2 msg/s the outcome reaches the cloud a moment after the job ended.
        second_reports = await eventually(second_reported_done)
    first_done = next(w for w, p in _reports(await cloud.console.messages(first.key)) if p["state"] == "done")
    assert second_reports[0][0] >= first_done
    assert second_reports[-1][1]["state"] == "done"


async def test_under_the_absolute_timeout_a_long_flash_ends_timeout_in_the_console(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """If Tencent counts the timeout from the push, no report can save a flash longer than it: the console says
    `timeout`; the gateway still finishes the flash, reports `done` (refused: the task has ended) and the new
    version, which the console then shows as the device's version."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    await cloud.console.set_virtual_device_fault(
        light.product_id, light.device_name, "none", reboot_delay_s=2.0
    )
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    async with running_gateway(
        cloud, tmp_path, settings=FAST, sub_devices=[SubDevice(light, "0.1")]
    ) as gateway:
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[light.device_name], timeout_s=TASK_TIMEOUT_S, timeout_from="push"
        )
        assert await _ended(cloud, task_id, light.key) == "timeout"
        await _done(gateway)
        assert gateway.engine.ota.snapshot(light).installed_version == "V2"

        async def reported() -> bool:
            return (await cloud.console.get_device(light.product_id, light.device_name)).version == "V2"

        await eventually(reported)
    task = await cloud.console.get_task(task_id)
    assert task.devices[light.key].state == "timeout"
    assert "after the push" in (task.devices[light.key].result_msg or "")
    refused = [v.reason for v in await cloud.console.violations() if v.client == light.key]
    assert any("after the task ended (timeout)" in reason for reason in refused)
    burning = [p for _, p in _reports(await cloud.console.messages(light.key)) if p["state"] == "burning"]
    assert len(burning) >= 2  # the gateway kept reporting: under this reading it cannot help


async def test_the_timeout_model_is_part_of_the_task(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """The console accepts `timeout_from` progress (default) or push, shows it, and refuses anything else."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", SMALL_IMAGE)
    default = await cloud.console.create_task(PID, "V2", "list", devices=[LIGHTS[0].device_name])
    strict = await cloud.console.create_task(
        PID, "V2", "list", devices=[LIGHTS[1].device_name], timeout_from="push"
    )
    assert (await cloud.console.get_task(default)).raw["timeout_from"] == "progress"
    assert (await cloud.console.get_task(strict)).raw["timeout_from"] == "push"
    async with http.post(
        emulator.http_url + "/api/tasks",
        json={"product_id": PID, "version": "V2", "mode": "list", "devices": ["light1"], "timeout_from": "x"},
    ) as response:
        assert response.status == 400
        assert "timeout_from" in await response.text()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"drops": [{"client": "light1", "type": "report_progress"}]}, "client"),
        ({"drops": [{"client": "P/D", "type": "report_progress", "count": 0}]}, "count"),
        ({"drops": [{"client": "P/D", "type": "report_progress", "when": 1}]}, "unknown"),
        ({"rules": []}, "drops"),
    ],
)
async def test_drop_rules_are_validated(
    emulator: Emulator, http: aiohttp.ClientSession, body: dict[str, Any], reason: str
) -> None:
    """`PUT /api/drops` names what is wrong; `DELETE` clears the rules."""
    async with http.put(emulator.http_url + "/api/drops", json=body) as response:
        assert response.status == 400
        assert reason in await response.text()
    async with http.put(
        emulator.http_url + "/api/drops", json={"drops": [{"client": "P/D", "type": "report_version"}]}
    ) as response:
        assert (await response.json())["drops"] == [{"client": "P/D", "type": "report_version", "count": 1}]
    async with http.delete(emulator.http_url + "/api/drops") as response:
        assert (await response.json()) == {"drops": []}


@pytest.mark.parametrize("uplink_rate", [2.0, None])
async def test_the_keepalives_share_the_sessions_budget_whatever_the_settings_say(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, uplink_rate: float | None
) -> None:
    """The keep-alive share is half of the budget the session enforces: the engine's one `uplink_rate`.

    Settings that name another rate (or the default 30/s when the session has no budget) would hold back
    jobs the connection could report, or promise keep-alives it cannot send.
    """
    cloud = await seed_cloud(emulator, http)
    settings = replace(FAST, uplink_rate=30.0, keepalive_interval_s=1.0)
    async with running_gateway(
        cloud, tmp_path, settings=settings, uplink_rate=uplink_rate, start=False
    ) as gateway:
        assert gateway.engine.ota.settings.uplink_rate == uplink_rate
        assert gateway.engine.ota.keepalive_capacity == (1 if uplink_rate else sys.maxsize)
